"""Free-energy analysis: PLUMED-style grid/COLVAR files, FES comparison, plots."""

from .compare import compare_files, fes_rmse, interpolate_grid
from ..io import atomic_write_text, read_colvar, read_grid_file, write_grid_file
from .plots import plot_fes, plot_run
from .reweight import reweight_colvar, reweight_marginals_run, reweight_run
from .bias_fes import bias_marginals, bias_marginals_run

__all__ = ["atomic_write_text", "write_grid_file", "read_grid_file", "read_colvar",
           "interpolate_grid", "fes_rmse", "compare_files", "plot_fes", "plot_run", "reweight_colvar",
           "reweight_run", "reweight_marginals_run", "bias_marginals", "bias_marginals_run"]
