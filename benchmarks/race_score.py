"""Scoring helpers of the convergence race (``benchmarks/race.py``): FES grids, F(φ) and RMSE after the best shift.

A FES is held as ``(phi_axis, psi_axis, F)`` with ``F[i, j] = F(phi_i, psi_j)`` in kJ/mol; the axes
(rad) are evenly spaced over one period without the repeated endpoint. Non-finite F values are
points without an estimate (left out of the RMSE, zero weight in the marginal).
"""

from __future__ import annotations

import math
import os

import numpy as np

from openmm_nnbias._units import KB
from openmm_nnbias.analysis import interpolate_grid
from openmm_nnbias.analysis.compare import fes_rmse, region_points
from openmm_nnbias.io import read_grid_file, write_grid_file

KT = KB * 300.0  # kJ/mol at 300 K
CUTOFF = 20.0  # kJ/mol: points with F_ref - min F_ref < CUTOFF are scored
#: an estimate is scored only where it covers this fraction of the scored region (else its RMSE is NaN): a
#: reweighted FES of a short run knows only the visited basins, and an RMSE over them alone would flatter it
COVERAGE = 0.95


def rmse_best_shift(fes, reference, cutoff=CUTOFF):
    """(RMSE kJ/mol, points) of ``fes`` − ``reference`` after the best constant shift, over F_ref − min < ``cutoff``."""
    return fes_rmse(np.where(np.isfinite(fes), fes, np.nan), reference, cutoff)


def grid_from_openmm(fes_last_cv_first):
    """``(phi, psi, F)`` from a ``[psi, phi]`` array on ``linspace(−π, π, n)`` (``app.Metadynamics``, OPES)."""
    f = np.asarray(fes_last_cv_first, float)[:-1, :-1].T
    n = f.shape[0]
    axis = -math.pi + 2 * math.pi * np.arange(n) / n
    return axis, axis.copy(), f - np.nanmin(f)


def read_fes(path):
    """``(phi, psi, F)`` of a 2-D PLUMED-style grid file with the first CV (φ) slowest."""
    pts, f, names = read_grid_file(path)
    if len(names) != 2:
        raise ValueError(f"{path}: a 2-D (phi, psi) FES is needed, got CVs {names}")
    phi, psi = np.unique(pts[:, 0]), np.unique(pts[:, 1])
    return phi, psi, f.reshape(len(phi), len(psi))


def write_fes(path, phi, psi, f):
    """Write ``(phi, psi, F)`` as a PLUMED-style grid file (rad, kJ/mol)."""
    write_grid_file(path, ["phi", "psi"], [phi, psi], f, [True, True], lower=[-math.pi] * 2,
                    upper=[math.pi] * 2, units=["rad", "rad"])


def marginal_phi(f, kT=KT):
    """F(φ) = −kT ln Σ_ψ exp(−F(φ, ψ)/kT) (kJ/mol, min 0) of ``F[phi, psi]``; non-finite F weigh 0."""
    g = np.where(np.isfinite(f), -np.asarray(f, float) / kT, -np.inf)
    m = np.max(g)
    with np.errstate(divide="ignore"):
        out = -kT * (np.log(np.exp(g - m).sum(axis=1)) + m)
    return out - np.min(out[np.isfinite(out)])


def _wrap_axis(axis):
    return -math.pi + np.mod(np.asarray(axis) + math.pi, 2 * math.pi)


def score(fes, reference, cutoff=CUTOFF):
    """``{"rmse_phi", "rmse_2d", "n_phi", "n_2d"}`` (kJ/mol) of ``fes`` against ``reference`` (both ``(phi, psi, F)``).

    The run's FES is interpolated (periodic multilinear) onto the reference points; F(φ) of each is
    its own marginal, the run's then interpolated onto the reference φ points. An RMSE is NaN (not
    scored) when the estimate covers less than :data:`COVERAGE` of the region F_ref < ``cutoff``.
    """
    phi, psi, f = fes
    rphi, rpsi, rf = reference
    with np.errstate(invalid="ignore", divide="ignore"):
        return _score(phi, psi, f, rphi, rpsi, rf, cutoff)


def _safe_rmse(f, ref, cutoff):
    """(RMSE, points) over the scored region; NaN when the estimate covers less than :data:`COVERAGE` of it."""
    region = region_points(ref, cutoff)
    try:
        rmse, n = rmse_best_shift(f, ref, cutoff)
    except ValueError:  # no overlap of the estimate with the scored region
        return math.nan, 0
    return (rmse if n >= COVERAGE * region else math.nan), n


def _score(phi, psi, f, rphi, rpsi, rf, cutoff):
    q = np.stack(np.meshgrid(rphi, rpsi, indexing="ij"), axis=-1).reshape(-1, 2)
    f2 = interpolate_grid([_wrap_axis(phi), _wrap_axis(psi)], np.where(np.isfinite(f), f, np.inf), q, [True, True])
    r2d, n2d = _safe_rmse(f2, rf.reshape(-1), cutoff)
    m = marginal_phi(f)
    m_ref = marginal_phi(rf)
    m_on_ref = interpolate_grid([_wrap_axis(phi)], m, rphi[:, None], [True])
    r1d, n1d = _safe_rmse(m_on_ref, m_ref, cutoff)
    return {"rmse_phi": r1d, "rmse_2d": r2d, "n_phi": n1d, "n_2d": n2d}


def save_snapshot(path, fes):
    """Keep a FES estimate ``(phi, psi, F)`` compactly (npz, float32 F) for later rescoring."""
    phi, psi, f = fes
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, phi=phi, psi=psi, F=np.asarray(f, np.float32))
    os.replace(tmp, path)


def load_snapshot(path):
    with np.load(path) as z:
        return z["phi"], z["psi"], z["F"].astype(float)
