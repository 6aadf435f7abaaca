"""Free-energy analysis: PLUMED-style grid/COLVAR files, FES comparison, plots."""

from .fes_io import atomic_write_text, read_colvar, read_grid_file, write_grid_file

__all__ = ["atomic_write_text", "write_grid_file", "read_grid_file", "read_colvar"]
