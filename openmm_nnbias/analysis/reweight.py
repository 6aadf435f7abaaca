"""Reweighting of a COLVAR file (Eq. 11 with the time-dependent bias V − c(t))."""

import math

import numpy as np

from ..io import read_colvar, read_grid_domain, warn_uneven_spacing, write_grid_file
from .histogram import histogram_fes

__all__ = ["reweight_colvar", "reweight_run"]


def reweight_colvar(path: str, kT: float, bins=50, column: str = "rbias", t_min: float = 0.0,
                    t_max: float = math.inf, periodic=None, lower=None, upper=None, every: float = None):
    """Reweighted FES from a PLUMED-style colvar, frames with ``t_min ≤ time ≤ t_max`` (ps).

    Each frame gets the weight exp(column/kT); with ``rbias`` = V − c(t) this also uses frames
    from the learning phase (the usual Deep-VES / metadynamics reweighting), with ``bias`` and
    ``t_min`` after freezing it is Eq. 11 proper. Periodic CVs default to [−π, π).
    ``every`` (ps) keeps only frames at multiples of it (:func:`~openmm_nnbias.io.read_colvar`);
    frames that are not evenly spaced in time would weight the densely written stretches more,
    so that case warns.

    Returns ``(axes, F)`` with F in kJ/mol (min 0, empty bins +inf) on bin centres.
    """
    col = read_colvar(path, every=every)
    warn_uneven_spacing(col["time"], path)
    names = [k for k in col if k not in ("time", "bias", "rbias")]
    if column not in col:
        raise ValueError(f"{path} has no column {column!r} (columns: {list(col)})")
    keep = (col["time"] >= t_min) & (col["time"] <= t_max)
    if not keep.any():
        raise ValueError(f"no frames of {path} in the time window [{t_min}, {t_max}] ps")
    n = len(names)
    periodic = [True] * n if periodic is None else list(periodic)
    lower = [-math.pi] * n if lower is None else list(lower)
    upper = [math.pi] * n if upper is None else list(upper)
    bins = [int(bins)] * n if np.isscalar(bins) else list(bins)
    s = np.column_stack([col[k][keep] for k in names])
    fes = histogram_fes(s, col[column][keep] / kT, kT, lower, upper, bins, periodic)
    axes = [lo + (np.arange(b) + 0.5) * (hi - lo) / b for lo, hi, b in zip(lower, upper, bins)]
    return axes, fes


def reweight_run(run: str, kT: float, bins: int = 50, column: str = "rbias", t_min: float = 0.0,
                 t_max: float = math.inf, output: str = None) -> str:
    """Reweighted FES of a run folder (``openmm-nnbias reweight``): ``RUN/colvar`` on the CV domain of
    ``RUN/fes_bias.dat`` (:func:`reweight_colvar`), written to ``output`` (default
    ``RUN/fes_colvar_reweighted.dat``). ``kT`` in kJ/mol, ``t_min``/``t_max`` in ps; returns the path written.
    """
    import os

    names = [k for k in read_colvar(os.path.join(run, "colvar")) if k not in ("time", "bias", "rbias")]
    dom = read_grid_domain(os.path.join(run, "fes_bias.dat"))
    periodic = [dom[n]["periodic"] for n in names]
    lower, upper = [dom[n]["min"] for n in names], [dom[n]["max"] for n in names]
    axes, fes = reweight_colvar(os.path.join(run, "colvar"), kT, bins=bins, column=column, t_min=t_min, t_max=t_max,
                                periodic=periodic, lower=lower, upper=upper)
    path = output or os.path.join(run, "fes_colvar_reweighted.dat")
    write_grid_file(path, names, axes, fes, periodic, lower=lower, upper=upper)
    return path
