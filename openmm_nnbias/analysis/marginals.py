"""Free-energy marginals over three periodic torsions (alanine tetrapeptide φ1, φ2, φ3).

* :func:`marginals_from_fes3d` — marginals of a 3-D FES by integrating exp(−βF) over the other angles.
* :func:`weighted_marginals` / :func:`reweighted_marginals` — the same marginals from weighted
  samples or from a Deep-VES ``colvar`` (weights exp(rbias/kT)).
* :func:`compare_ala4` — RMSE of those marginals against a reference folder written by
  :func:`openmm_nnbias.runners.reference.run_reference_ala4`.

MD units: rad, kJ/mol, K, ps.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .._units import KB
from ..io import read_colvar, read_grid_file, write_grid_file
from .compare import fes_rmse
from .histogram import histogram_fes

__all__ = ["MARGINALS", "PHI_NAMES", "marginals_from_fes3d", "weighted_marginals", "reweighted_marginals",
           "write_marginals", "compare_ala4"]

#: marginals written and compared (indices into φ1, φ2, φ3)
MARGINALS = [(0, 1), (1, 2), (0,), (1,), (2,)]
#: CV names of the three φ, in order
PHI_NAMES = ["phi1", "phi2", "phi3"]


def _tag(keep) -> str:
    return "_".join(PHI_NAMES[k] for k in keep)


def marginals_from_fes3d(fes3d: np.ndarray, kT: float) -> dict:
    """Marginal free energies (kJ/mol, min 0) of a 3-D FES ``[φ1, φ2, φ3]`` (kJ/mol) by summing exp(−βF).

    Examples
    --------
    >>> marginals_from_fes3d(np.zeros((4, 4, 4)), 2.5)[(0,)].tolist()
    [0.0, 0.0, 0.0, 0.0]
    """
    f = np.asarray(fes3d, float)
    logp = -(f - np.nanmin(f)) / kT
    out = {}
    for keep in MARGINALS:
        axes = tuple(a for a in range(3) if a not in keep)
        m = np.max(logp, axis=axes, keepdims=True)
        lm = np.log(np.exp(logp - m).sum(axis=axes)) + np.squeeze(m, axis=axes)
        fm = -kT * lm
        out[keep] = fm - fm.min()
    return out


def weighted_marginals(phi: np.ndarray, logw: np.ndarray, kT: float, n: int = 36) -> dict:
    """Free-energy marginals :data:`MARGINALS` (kJ/mol, min 0) of samples ``phi`` (N, 3; rad) with
    log-weights ``logw`` (N,); bins centred on −π + i·2π/n (periodic); empty bins are ``inf``."""
    phi = np.asarray(phi, float)
    half = math.pi / n  # bin centres on the reference grid points −π + i·2π/n
    return {m: histogram_fes(phi[:, list(m)], logw, kT, [-math.pi - half] * len(m), [math.pi - half] * len(m),
                             [n] * len(m), [True] * len(m)) for m in MARGINALS}


def reweighted_marginals(colvar, kT: float, n: int = 36, t_min: float = 0.0, column: str = "rbias",
                         t_max: float = math.inf) -> dict:
    """Marginals of φ1, φ2, φ3 from a Deep-VES ``colvar`` (weights exp(column/kT), ``t_min`` ≤ t < ``t_max`` ps).

    ``colvar`` is a path or the dict of columns that :func:`openmm_nnbias.io.read_colvar` returns;
    ``kT`` in kJ/mol. Histogram bins are centred on the reference grid points −π + i·2π/n (periodic).
    """
    data = read_colvar(colvar) if isinstance(colvar, (str, os.PathLike)) else colvar
    keep = (data["time"] >= t_min) & (data["time"] < t_max)
    if not keep.any():
        where = repr(colvar) if isinstance(colvar, (str, os.PathLike)) else "the colvar data"
        raise ValueError(f"no colvar frame with {t_min} <= t < {t_max} ps in {where}")
    phi = np.column_stack([data[k][keep] for k in PHI_NAMES])
    return weighted_marginals(phi, data[column][keep] / kT, kT, n)


def write_marginals(out: str, marg: dict, n: int, prefix: str = "fes_reference") -> None:
    """Write each marginal of ``marg`` as ``out/<prefix>_<phi...>.dat`` on the grid −π + i·2π/n."""
    axis = -math.pi + 2 * math.pi * np.arange(n) / n
    for keep, f in marg.items():
        d = len(keep)
        write_grid_file(os.path.join(out, f"{prefix}_{_tag(keep)}.dat"), [PHI_NAMES[k] for k in keep],
                        [axis] * d, f, [True] * d, lower=[-math.pi] * d, upper=[math.pi] * d, units=["rad"] * d)


def compare_ala4(colvar: str, reference_dir: str, t_min: float = 0.0, cutoff: float = 20.0,
                 temperature: float = 300.0) -> dict:
    """RMSE (kJ/mol, best constant offset, over F_ref < ``cutoff`` kJ/mol) of every marginal: {name: (rmse, n)}.

    ``temperature`` in K, ``t_min`` in ps.
    """
    n = len(read_grid_file(os.path.join(reference_dir, "fes_reference_phi1.dat"))[1])
    ref_marg = {}
    for m in MARGINALS:  # grid files: first CV slowest, as the arrays here
        path = os.path.join(reference_dir, f"fes_reference_{_tag(m)}.dat")
        ref_marg[m] = read_grid_file(path)[1].reshape([n] * len(m))
    rw = reweighted_marginals(colvar, KB * temperature, n=n, t_min=t_min)
    return {_tag(m): fes_rmse(rw[m], ref_marg[m], cutoff) for m in MARGINALS}
