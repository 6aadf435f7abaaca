"""Reweighting of a COLVAR file (Eq. 11 with the time-dependent bias V − c(t))."""

import math
import os
import warnings
from typing import Optional, Sequence

import numpy as np

from ..io import read_colvar, read_grid_domain, read_units, warn_uneven_spacing, write_grid_file
from .histogram import histogram_fes

__all__ = ["reweight_colvar", "reweight_run", "reweight_marginals_run", "MAX_REWEIGHT_CVS"]

#: the most CVs a reweighted FES histogram is made over (a run with more reweights a chosen subset, or each marginal)
MAX_REWEIGHT_CVS = 3
_NOT_CVS = ("time", "bias", "rbias")


def _select(col: dict, path: str, cvs: Optional[Sequence[str]]) -> list:
    names = [k for k in col if k not in _NOT_CVS]
    if cvs is None:
        return names
    cvs = [cvs] if isinstance(cvs, str) else list(cvs)
    unknown = [c for c in cvs if c not in names]
    if not cvs or unknown or len(set(cvs)) != len(cvs):
        raise ValueError(f"cvs: {cvs} must be distinct CVs of {path} ({', '.join(names)})")
    return cvs


def _window(col: dict, path: str, column: str, t_min: float, t_max: float) -> np.ndarray:
    if column not in col:
        raise ValueError(f"{path} has no column {column!r} (columns: {list(col)})")
    keep = (col["time"] >= t_min) & (col["time"] <= t_max)
    if not keep.any():
        raise ValueError(f"no frames of {path} in the time window [{t_min}, {t_max}] ps")
    return keep


def reweight_colvar(path: str, kT: float, bins=50, column: str = "rbias", t_min: float = 0.0,
                    t_max: float = math.inf, periodic=None, lower=None, upper=None, every: float = None,
                    cvs: Optional[Sequence[str]] = None):
    """Reweighted FES from a PLUMED-style colvar, frames with ``t_min ≤ time ≤ t_max`` (ps).

    Each frame gets the weight exp(column/kT); with ``rbias`` = V − c(t) this also uses frames
    from the learning phase (the usual Deep-VES / metadynamics reweighting), with ``bias`` and
    ``t_min`` after freezing it is Eq. 11 proper. ``cvs`` (names) histograms a subset of the CVs:
    the marginal FES over them (default: every CV). Periodic CVs default to [−π, π).
    ``every`` (ps) keeps only frames at multiples of it (:func:`~openmm_nnbias.io.read_colvar`);
    frames that are not evenly spaced in time would weight the densely written stretches more,
    so that case warns.

    Returns ``(axes, F)`` with F in kJ/mol (min 0, empty bins +inf) on bin centres.
    """
    col = read_colvar(path, every=every)
    warn_uneven_spacing(col["time"], path)
    names = _select(col, path, cvs)
    keep = _window(col, path, column, t_min, t_max)
    n = len(names)
    periodic = [True] * n if periodic is None else list(periodic)
    lower = [-math.pi] * n if lower is None else list(lower)
    upper = [math.pi] * n if upper is None else list(upper)
    return _histogram(col, names, keep, column, kT, bins, periodic, lower, upper)


def _histogram(col, names, keep, column, kT, bins, periodic, lower, upper):
    """``(axes, F)`` of the kept frames over ``names``, weights exp(column/kT)."""
    bins = [int(bins)] * len(names) if np.isscalar(bins) else list(bins)
    s = np.column_stack([col[k][keep] for k in names])
    fes = histogram_fes(s, col[column][keep] / kT, kT, lower, upper, bins, periodic)
    axes = [lo + (np.arange(b) + 0.5) * (hi - lo) / b for lo, hi, b in zip(lower, upper, bins)]
    return axes, fes


def _domain(run: str, colvar: str, col: dict, names: list, keep: np.ndarray):
    """(periodic, lower, upper) of ``names``: from ``RUN/fes_bias.dat``, else the colvar's ``#! SET min_/max_``
    lines (periodic CVs), else the range of the frames (not periodic)."""
    grid = os.path.join(run, "fes_bias.dat")
    dom = read_grid_domain(grid) if os.path.exists(grid) else {}
    head = read_grid_domain(colvar)
    periodic, lower, upper, undeclared = [], [], [], []
    for n in names:
        if n in dom:
            periodic.append(bool(dom[n].get("periodic", False)))
            lower.append(dom[n]["min"])
            upper.append(dom[n]["max"])
        elif "min" in head.get(n, {}) and "max" in head[n]:
            periodic.append(True)
            lower.append(head[n]["min"])
            upper.append(head[n]["max"])
        else:
            x = col[n][keep]
            lo, hi = float(x.min()), float(x.max())
            pad = 1e-9 * max(1.0, abs(lo), abs(hi))
            periodic.append(False)
            lower.append(lo - pad)
            upper.append(hi + pad)
            undeclared.append(n)
    if undeclared:
        warnings.warn(f"{colvar} declares no domain for {', '.join(undeclared)} (and {run} has no fes_bias.dat): "
                      "histogrammed over the range of the frames, as not periodic", stacklevel=3)
    return periodic, lower, upper


def reweight_run(run: str, kT: float, bins: int = 50, column: str = "rbias", t_min: float = 0.0,
                 t_max: float = math.inf, output: str = None, cvs: Optional[Sequence[str]] = None) -> str:
    """Reweighted FES of a run folder (``openmm-nnbias reweight``), written to a grid file.

    The frames of ``RUN/colvar`` with ``t_min ≤ time ≤ t_max`` (ps), weights exp(column/kT) (``kT`` in kJ/mol),
    histogrammed over ``cvs`` (default: every CV of the colvar; at most :data:`MAX_REWEIGHT_CVS`: a run with
    more, e.g. the six torsions of alanine tetrapeptide, names the ones wanted, and a single name gives that
    CV's 1-D marginal). The CV domain: that of ``RUN/fes_bias.dat`` where the run has one, else the periodic
    domain the colvar header declares (``#! SET min_<cv>``/``max_<cv>``), else the range of the frames.
    Written to ``output`` (default ``RUN/fes_colvar_reweighted.dat``, or ``RUN/fes_colvar_reweighted_<cvs>.dat``
    for a subset); returns the path written.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> run = tempfile.mkdtemp()
    >>> rows = "".join(f"{t}.0 {a:.3f} {b:.3f} 0.0 0.0\\n" for t, (a, b) in enumerate(np.random.default_rng(0).uniform(-3, 3, (500, 2))))
    >>> _ = open(os.path.join(run, "colvar"), "w").write(
    ...     "#! FIELDS time phi psi bias rbias\\n#! SET min_phi -3.14159\\n#! SET max_phi 3.14159\\n" + rows)
    >>> os.path.basename(reweight_run(run, 2.494, bins=10, cvs=["phi"]))
    'fes_colvar_reweighted_phi.dat'
    """
    colvar, col = _read_run(run)
    names = _select(col, colvar, cvs)
    if len(names) > MAX_REWEIGHT_CVS:
        raise ValueError(f"{colvar} has {len(names)} CVs ({', '.join(names)}); a reweighted FES is made over at "
                         f"most {MAX_REWEIGHT_CVS} of them: choose them with cvs")
    keep = _window(col, colvar, column, t_min, t_max)
    periodic, lower, upper = _domain(run, colvar, col, names, keep)
    default = "fes_colvar_reweighted.dat" if cvs is None else f"fes_colvar_reweighted_{'_'.join(names)}.dat"
    return _write(output or os.path.join(run, default), colvar, col, names, keep, column, kT, bins,
                  periodic, lower, upper)


def reweight_marginals_run(run: str, kT: float, bins: int = 50, column: str = "rbias", t_min: float = 0.0,
                           t_max: float = math.inf) -> list:
    """Each CV's reweighted 1-D marginal of a run folder, ``RUN/fes_colvar_reweighted_<cv>.dat`` (what
    ``openmm-nnbias reweight`` writes for a run with more than :data:`MAX_REWEIGHT_CVS` CVs): the frames, window,
    weights and domains of :func:`reweight_run`, the colvar read once. Returns the paths written."""
    colvar, col = _read_run(run)
    names = _select(col, colvar, None)
    keep = _window(col, colvar, column, t_min, t_max)
    periodic, lower, upper = _domain(run, colvar, col, names, keep)
    return [_write(os.path.join(run, f"fes_colvar_reweighted_{n}.dat"), colvar, col, [n], keep, column, kT, bins,
                   [periodic[k]], [lower[k]], [upper[k]]) for k, n in enumerate(names)]


def _read_run(run: str) -> tuple:
    colvar = os.path.join(run, "colvar")
    col = read_colvar(colvar)
    warn_uneven_spacing(col["time"], colvar)
    return colvar, col


def _write(path, colvar, col, names, keep, column, kT, bins, periodic, lower, upper) -> str:
    """Histogram the kept frames over ``names`` and write the grid file ``path`` (with the colvar's units)."""
    axes, fes = _histogram(col, names, keep, column, kT, bins, periodic, lower, upper)
    units = read_units(colvar)
    write_grid_file(path, names, axes, fes, periodic, lower=lower, upper=upper,
                    units=[units[n] for n in names] if all(n in units for n in names) else None)
    return path
