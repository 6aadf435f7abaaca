"""Estimates and scores of the tetrapeptide race (``benchmarks/race4.py``): six 1-D marginals from a colvar, RMSE.

A set of marginals is a ``(6, n)`` array, rows F(φ1), F(ψ1), F(φ2), F(ψ2), F(φ3), F(ψ3) (kJ/mol, min 0
per row, ``inf`` in empty bins) on ``n`` bins centred at −π + i·2π/n (rad).

Estimates (each over the frames of one window of the run's colvar, ``time`` in ps):

* ``reweighted``: weights exp(β·rbias) = exp(β(V(s, t) − c(t))), the bias and c(t) in force when
  each frame was drawn, over the frames of the last half of the run so far (t ≥ t_now/2). The rule
  of the package's own ``fes.dat`` (``ves.outputs.BEST_WINDOW``): it forgets the early transient
  whatever its length and keeps half the data; c(t) makes frames drawn under different biases
  comparable, so no method needs a quasi-static bias for it.
* ``final`` (WT-metaD, OPES): the same window, weights exp(β·V_final(s)), the bias in force at the end
  (interpolated multilinearly on its φ grid): the static-bias approximation, exact only once the
  bias stops changing; kept as the second estimate to show which of the two converges first.
* ``decay`` (Deep-VES): weights exp(β·rbias) over the frames from the start of the learning-rate decay
  (``ves.log``; ``benchmarks/ala4_accuracy.py --from decay``); before the decay starts, the
  ``reweighted`` window.

Score: per marginal the RMSE against the reference over its bins with F_ref < 20 kJ/mol after the
best constant shift; ``rmse_mean`` is the mean over the six. Bins of the scored region without an
estimate are left out of the RMSE but make ``covered`` 0: such a row never counts as converged.
"""

from __future__ import annotations

import math
import os

import numpy as np

from race4_methods import KT, TORSIONS

N_BINS = 36  # 10° bins, as the package's Ala4 marginals
CUTOFF = 20.0  # kJ/mol


def axis(n=N_BINS):
    return -math.pi + 2 * math.pi * np.arange(n) / n


def read_colvar(path):
    """``{field: array}`` of a ``#! FIELDS`` colvar (empty arrays when it has no rows)."""
    with open(path) as fh:
        names = fh.readline().split()[2:]
    data = np.loadtxt(path, comments="#", ndmin=2)
    if data.size == 0:
        data = np.zeros((0, len(names)))
    return {n: data[:, i] for i, n in enumerate(names)}


def marginals(samples, logw, n=N_BINS, kT=KT):
    """Six 1-D free energies (6, n) of torsion samples (N, 6) with log-weights (N,); empty bins inf."""
    samples = np.asarray(samples, float)
    logw = np.asarray(logw, float)
    h = 2 * math.pi / n
    out = np.full((samples.shape[1], n), np.inf)
    if not len(logw):
        return out
    w = np.exp(logw - logw.max())
    for j in range(samples.shape[1]):
        k = np.mod(np.rint((samples[:, j] + math.pi) / h).astype(int), n)
        hist = np.bincount(k, weights=w, minlength=n)
        with np.errstate(divide="ignore"):
            f = -kT * np.log(hist)
        out[j] = f - f[np.isfinite(f)].min()
    return out


def window(data, t_from, t_to=math.inf):
    keep = (data["time"] >= t_from - 1e-9) & (data["time"] <= t_to + 1e-9)
    return np.column_stack([data[c][keep] for c in TORSIONS]), keep


def reweighted(data, t_now, t_from=None):
    """Marginals with exp(β·rbias) over frames t_from ≤ t ≤ t_now (default t_from = t_now/2)."""
    s, keep = window(data, t_now / 2 if t_from is None else t_from, t_now)
    return marginals(s, data["rbias"][keep] / KT)


def final_bias(data, t_now, grid_axis, v_grid):
    """Marginals with exp(β·V_final(φ1, φ2, φ3)) over frames t ≥ t_now/2; ``v_grid[φ1, φ2, φ3]`` kJ/mol."""
    from openmm_nnbias.analysis import interpolate_grid

    s, keep = window(data, t_now / 2, t_now)
    phi = s[:, [0, 2, 4]]
    v = interpolate_grid([grid_axis] * 3, v_grid, phi, [True] * 3) if len(phi) else np.zeros(0)
    return marginals(s, v / KT)


def rmse_shift(f, ref, cutoff=CUTOFF):
    """(RMSE after the best constant shift over ref − min < cutoff, scored bins, bins without an estimate)."""
    f, ref = np.asarray(f, float), np.asarray(ref, float)
    region = np.isfinite(ref) & (ref - np.min(ref[np.isfinite(ref)]) < cutoff)
    ok = region & np.isfinite(f)
    if not ok.any():
        return math.nan, int(region.sum()), int(region.sum())
    d = f[ok] - ref[ok]
    return float(np.sqrt(np.mean((d - d.mean()) ** 2))), int(region.sum()), int((region & ~ok).sum())


def score(est, ref, cutoff=CUTOFF):
    """``{"rmse_<cv>": …, "rmse_mean": …, "covered": 0/1}`` of marginals ``est`` against ``ref`` (both (6, n))."""
    out, missing = {}, 0
    for j, name in enumerate(TORSIONS):
        r, _, miss = rmse_shift(est[j], ref[j], cutoff)
        out[f"rmse_{name}"] = r
        missing += miss
    vals = [out[f"rmse_{n}"] for n in TORSIONS]
    out["rmse_mean"] = float(np.mean(vals)) if all(np.isfinite(vals)) else math.nan
    out["covered"] = int(missing == 0)
    return out


def save_snapshot(path, est, **info):
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, F=np.asarray(est, np.float64), names=np.array(TORSIONS), **info)
    os.replace(tmp, path)


def load_snapshot(path):
    with np.load(path) as z:
        return z["F"]


# ----------------------------------------------------------------------------------------------- reference files
def write_reference(folder, est, prefix="fes_reference"):
    """One PLUMED-style 1-D grid file per torsion (``<prefix>_<cv>.dat``) and ``<prefix>.npz``."""
    from openmm_nnbias.io import write_grid_file

    os.makedirs(folder, exist_ok=True)
    n = est.shape[1]
    for j, name in enumerate(TORSIONS):
        write_grid_file(os.path.join(folder, f"{prefix}_{name}.dat"), [name], [axis(n)], est[j], [True],
                        lower=[-math.pi], upper=[math.pi], units=["rad"])
    save_snapshot(os.path.join(folder, f"{prefix}.npz"), est)


def load_reference(path):
    """The reference marginals of ``path`` (:func:`read_reference`), or None when there is none yet."""
    if path and os.path.exists(path if not os.path.isdir(path) else os.path.join(path, "fes_reference.npz")):
        return read_reference(path)
    return None


def read_reference(path):
    """The (6, n) reference marginals from a folder (``fes_reference.npz``) or an ``.npz`` file."""
    if os.path.isdir(path):
        path = os.path.join(path, "fes_reference.npz")
    return load_snapshot(path)
