"""Compare free-energy surfaces on (possibly different) regular grids."""

import itertools

import numpy as np

from ..io import read_grid_file

__all__ = ["interpolate_grid", "fes_rmse", "region_points", "compare_files"]


def _axes(points: np.ndarray):
    return [np.unique(points[:, j]) for j in range(points.shape[1])]


def interpolate_grid(axes, values, query, periodic):
    """Multilinear interpolation of a regular grid (periodic axes wrap) at ``query`` (m, d).

    Periodic axes are assumed to be evenly spaced and to cover one period without repeating
    the endpoint (period = n·spacing).
    """
    values = np.asarray(values, dtype=float).reshape([len(a) for a in axes])
    query = np.atleast_2d(query)
    idx0, frac = [], []
    for j, a in enumerate(axes):
        n, h = len(a), a[1] - a[0]
        u = (query[:, j] - a[0]) / h
        if periodic[j]:
            u = np.mod(u, n)
        else:
            u = np.clip(u, 0, n - 1 - 1e-12)
        i = np.floor(u).astype(int)
        idx0.append(i)
        frac.append(u - i)
    out = np.zeros(len(query))
    for corner in itertools.product((0, 1), repeat=len(axes)):
        w = np.ones(len(query))
        index = []
        for j, c in enumerate(corner):
            n = len(axes[j])
            i = idx0[j] + c
            i = np.mod(i, n) if periodic[j] else np.minimum(i, n - 1)
            index.append(i)
            w = w * (frac[j] if c else 1 - frac[j])
        v = values[tuple(index)]
        out += np.where(w > 0, w * np.where(np.isfinite(v), v, np.inf), 0.0)
    return out


def fes_rmse(fes, reference, cutoff):
    """RMSE after removing the best constant offset, over points with ``reference < cutoff``.

    Both arrays are on the same points; points where either is non-finite are left out.
    Returns (rmse, number of points used).
    """
    fes, reference = np.asarray(fes, float), np.asarray(reference, float)
    mask = (reference - np.nanmin(reference[np.isfinite(reference)]) < cutoff) & np.isfinite(fes) & np.isfinite(reference)
    if not mask.any():
        raise ValueError("no grid point lies in the comparison region")
    d = fes[mask] - reference[mask]
    return float(np.sqrt(np.mean((d - d.mean()) ** 2))), int(mask.sum())


def region_points(reference, cutoff: float) -> int:
    """Number of points with ``reference`` − its minimum < ``cutoff``: the region an RMSE should cover."""
    reference = np.asarray(reference, float)
    return int(np.sum(reference - np.nanmin(reference[np.isfinite(reference)]) < cutoff))


def compare_files(fes_path: str, reference_path: str, cutoff: float = 20.0, periodic=None):
    """RMSE of the FES in ``fes_path`` against ``reference_path`` (kJ/mol), over F_ref < cutoff.

    The FES is interpolated onto the reference grid points. Points where the FES has no value
    (e.g. bins a reweighted run never visited) are left out; a ``RuntimeWarning`` says so when they
    are more than 5 % of the region F_ref < cutoff, as the RMSE then describes only part of it.
    Returns ``(rmse, points used)``.
    """
    pts, fes, names = read_grid_file(fes_path)
    rpts, ref, rnames = read_grid_file(reference_path)
    if names != rnames:
        raise ValueError(f"CV names differ: {names} vs reference {rnames}")
    if periodic is None:
        periodic = _periodic_flags(fes_path, names)
    axes = _axes(pts)
    interp = interpolate_grid(axes, fes, rpts, periodic)
    rmse, n = fes_rmse(interp, ref, cutoff)
    region = region_points(ref, cutoff)
    if n < 0.95 * region:
        import warnings

        warnings.warn(f"{fes_path} has values at only {n} of the {region} reference points with F_ref < {cutoff:g} "
                      f"kJ/mol: the RMSE covers those only", RuntimeWarning, stacklevel=2)
    return rmse, n


def _periodic_flags(path, names):
    flags = {n: False for n in names}
    with open(path) as fh:
        for line in fh:
            if line.startswith("#! SET periodic_"):
                key, val = line.split()[2:4]
                flags[key[len("periodic_"):]] = val == "true"
    return [flags[n] for n in names]
