"""Weighted histograms of CV samples → free energies (NumPy; no dependency on :mod:`openmm_nnbias.ves`)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["histogram_fes"]


def histogram_fes(samples: np.ndarray, logw: np.ndarray, kT: float, lower: Sequence[float],
                  upper: Sequence[float], bins: Sequence[int], periodic: Sequence[bool]) -> np.ndarray:
    """Free energy ``F = −kT ln Σ_bin exp(logw)`` (kJ/mol, min 0) of weighted samples on a regular grid.

    Bin ``i`` of CV ``k`` spans ``[lower_k + i·w_k, lower_k + (i+1)·w_k)``, ``w_k = (upper_k −
    lower_k)/bins_k`` (the binning of :class:`openmm_nnbias.ves.CVGrid`). Periodic CVs are
    wrapped into ``[lower, upper)``; samples outside a non-periodic range or with NaN are left
    out; a non-periodic value equal to ``upper`` goes to the last bin. Empty bins are ``+inf``.

    Parameters
    ----------
    samples : numpy.ndarray
        CV values ``(N, n_cv)`` in the CVs' units (nm, rad, ...).
    logw : numpy.ndarray
        Log-weight of each sample ``(N,)``, e.g. ``rbias / kT`` (dimensionless).
    kT : float
        Thermal energy in kJ/mol (> 0).
    lower, upper : sequence of float
        Grid bounds per CV (CV units).
    bins : sequence of int
        Bins per CV.
    periodic : sequence of bool
        Whether each CV is periodic (period ``upper − lower``).

    Returns
    -------
    numpy.ndarray
        F of shape ``tuple(bins)`` (first CV slowest), kJ/mol.

    Raises
    ------
    ValueError
        If ``kT <= 0``, the shapes disagree, ``logw`` is not finite, or no sample falls inside the grid.

    Examples
    --------
    >>> histogram_fes(np.array([[0.5], [1.5], [1.6]]), np.zeros(3), 1.0, [0.0], [2.0], [2], [False]).round(4).tolist()
    [0.6931, 0.0]
    """
    kT = float(kT)
    if not kT > 0:
        raise ValueError(f"kT must be > 0 (kJ/mol), got {kT}")
    s = np.asarray(samples, dtype=float)
    s = s.reshape(len(s), -1)
    logw = np.asarray(logw, dtype=float).reshape(-1)
    lo, hi = np.asarray(lower, float), np.asarray(upper, float)
    n, per = np.asarray(bins, int), np.asarray(periodic, bool)
    if not (s.shape[1] == len(lo) == len(hi) == len(n) == len(per)) or len(logw) != len(s):
        raise ValueError(f"samples {s.shape}, logw ({len(logw)},), lower/upper/bins/periodic "
                         f"({len(lo)}, {len(hi)}, {len(n)}, {len(per)}) do not match")
    if not np.isfinite(logw).all():
        raise ValueError("logw contains NaN or inf")
    vals = np.where(per, lo + np.mod(s - lo, hi - lo), s)
    keep = np.isfinite(vals).all(axis=1) & (per | ((vals >= lo) & (vals <= hi))).all(axis=1)
    if not keep.any():
        raise ValueError("no sample falls inside the grid")
    idx = np.floor((vals[keep] - lo) / ((hi - lo) / n)).astype(int)
    idx = np.minimum(np.maximum(idx, 0), n - 1)
    flat = np.ravel_multi_index(tuple(idx.T), tuple(n))
    w = np.exp(logw[keep] - logw[keep].max())
    h = np.bincount(flat, weights=w, minlength=int(np.prod(n))).reshape(tuple(n))
    with np.errstate(divide="ignore"):
        f = -kT * np.log(h)
    return f - f[np.isfinite(f)].min()
