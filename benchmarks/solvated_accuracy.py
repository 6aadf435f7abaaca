"""Solvated alanine dipeptide: Deep-VES against the WT-metadynamics reference (issue 15).

    python benchmarks/solvated_accuracy.py benchmarks/out/solv_hmr_deepves benchmarks/out/solv_hmr_ref \\
        [--from 1ns] [--blocks 4] [--ref-from 0.5ns] [--png benchmarks/figures/solvated_fes.png]

Prints, for both runs: simulated time, φ transitions between β/C7eq and αL (hysteresis states
``PHI_STATES``), the fraction of frames in αL; for Deep-VES the KL, learning rate and phase at the
end. Then the RMSE (kJ/mol, best constant offset removed, region F_ref < 20 kJ/mol, as the issue
asks) against the reference's FES of

* the FES from the Deep-VES bias (Eq. 4, ``fes_bias.dat``),
* the reweighted Deep-VES FES (``rbias`` weights, frames from ``--from``),

and landmark free energies (C5, PII, αR, αL relative to C7eq) of all three.

The reference's own uncertainty, two ways:

* **blocks**: the reference frames from ``--ref-from`` in ``--blocks`` consecutive blocks, each
  reweighted with the reference's final bias V = −(1 − 1/γ)·F_ref (exact for WT-metadynamics once
  the bias is quasi-static; early frames overweight the basins, so ``--ref-from`` should skip the
  filling). Printed: each block's RMSE against F_ref and the block standard error (RMS over the
  region of std/√B);
* **drift**: with ``OUT/snapshots/<t ps>.dat`` copies of ``fes_reference.dat`` taken while the
  reference ran, the RMS deviation of those from the second half of the run against the final one.

With ``--png`` it draws F(φ, ψ) of the reference, the Deep-VES bias FES and the reweighted one.
"""

from __future__ import annotations

import argparse
import glob
import math
import os

import numpy as np

from openmm_nnbias._units import KB, parse_time
from openmm_nnbias.analysis import compare_files, interpolate_grid, read_grid_file
from openmm_nnbias.analysis.compare import fes_rmse
from openmm_nnbias.analysis.histogram import histogram_fes
from openmm_nnbias.io import read_colvar, warn_uneven_spacing
from openmm_nnbias.recipes import METAD_RECIPES, PHI_STATES, count_transitions

KT = KB * 300.0
LANDMARKS = {"C7eq": (-82, 60), "C5": (-147, 158), "PII": (-85, 129), "alphaR": (-70, -40), "alphaL": (64, 40)}
CUTOFF = 20.0


def landmarks(path):
    pts, f, _ = read_grid_file(path)
    axes = [np.unique(pts[:, 0]), np.unique(pts[:, 1])]
    q = np.radians(np.array(list(LANDMARKS.values()), float))
    v = interpolate_grid(axes, f, q, [True, True])
    return {k: float(x - v[0]) for k, x in zip(LANDMARKS, v)}


def describe(label, colvar, every=None):
    col = read_colvar(colvar, every=every)
    warn_uneven_spacing(col["time"], colvar)  # then pass --every-ps
    phi = col["phi"]
    n = count_transitions(phi[:, None])[0]
    lo, hi = PHI_STATES[1]
    alpha_l = float(np.mean((phi > lo) & (phi < hi)))
    print(f"{label}: {col['time'][-1] / 1000:.3f} ns simulated, {n} φ transitions (β/C7eq ↔ αL), "
          f"{100 * alpha_l:.1f} % of frames in αL")
    return col


def ves_state(run):
    rows = [ln.split() for ln in open(os.path.join(run, "ves.log")) if not ln.startswith("#")]
    r = rows[-1]
    kl = np.array([float(x[3]) for x in rows])
    below = np.nonzero(kl < 0.5)[0]
    t_kl = float(rows[below[0]][1]) / 1000 if len(below) else math.nan
    print(f"Deep-VES at {float(r[1]) / 1000:.3f} ns: KL {float(r[3]):.3f}, lr {float(r[4]):.2e}, phase {r[6]}; "
          f"KL < 0.5 first at {t_kl:.2f} ns")


def reweighted(col, t_min, bins, column="rbias", weights=None):
    """Histogram FES (kJ/mol, flattened, φ slowest) of the frames with time ≥ t_min on ``bins``² bins."""
    keep = col["time"] >= t_min
    s = np.column_stack([col["phi"][keep], col["psi"][keep]])
    logw = (col[column][keep] / KT) if weights is None else weights[keep]
    fes = histogram_fes(s, logw, KT, [-math.pi] * 2, [math.pi] * 2, [bins, bins], [True, True])
    return np.asarray(fes, float).reshape(-1)


def bin_centres(bins):
    c = -math.pi + (np.arange(bins) + 0.5) * 2 * math.pi / bins
    return np.array([(x, y) for x in c for y in c])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("deepves")
    p.add_argument("reference")
    p.add_argument("--from", dest="t_min", default="1ns", help="first Deep-VES frame reweighted (default 1ns)")
    p.add_argument("--ref-from", default="0.5ns", help="first reference frame of the blocks (default 0.5ns)")
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--bins", type=int, default=36, help="histogram bins per torsion of the reweighted FES (36)")
    p.add_argument("--block-bins", type=int, default=18,
                   help="bins per torsion of the reference blocks (18: a block holds few frames)")
    p.add_argument("--system", default="alanine-dipeptide-solvated-hmr")
    p.add_argument("--png", default=None)
    p.add_argument("--every-ps", type=float, default=None,
                   help="use only colvar rows at multiples of this time (ps); 1 for runs restored from their archives")
    a = p.parse_args(argv)
    ref_path = os.path.join(a.reference, "fes_reference.dat")
    ref_pts, ref_f, _ = read_grid_file(ref_path)
    ref_f = ref_f - ref_f.min()
    dv = describe("Deep-VES", os.path.join(a.deepves, "colvar"), a.every_ps)
    ves_state(a.deepves)
    rc = describe("WT-metaD reference", os.path.join(a.reference, "colvar"), a.every_ps)
    t_min = parse_time(a.t_min)
    rmse_b, n_b = compare_files(os.path.join(a.deepves, "fes_bias.dat"), ref_path)
    print(f"FES from the bias (Eq. 4) vs reference: RMSE {rmse_b:.2f} kJ/mol over {n_b} points (F_ref < {CUTOFF:g})")
    axes = [np.unique(ref_pts[:, 0]), np.unique(ref_pts[:, 1])]
    centres = bin_centres(a.bins)
    ref_c = interpolate_grid(axes, ref_f, centres, [True, True])
    rw = reweighted(dv, t_min, a.bins)
    rmse_r, n_r = fes_rmse(rw, ref_c, CUTOFF)
    print(f"reweighted Deep-VES (rbias, t >= {t_min / 1000:g} ns) vs reference: RMSE {rmse_r:.2f} kJ/mol "
          f"over {n_r} points")
    for label, lm in (("reference", landmarks(ref_path)), ("Deep-VES bias", landmarks(os.path.join(a.deepves, "fes_bias.dat")))):
        print(f"landmarks vs C7eq ({label}): " + ", ".join(f"{k} {v:.1f}" for k, v in lm.items()))
    # reference blocks, reweighted with its own final bias
    gamma = METAD_RECIPES[a.system].biasFactor
    v_final = -(1.0 - 1.0 / gamma) * interpolate_grid(axes, ref_f, np.column_stack([rc["phi"], rc["psi"]]), [True, True])
    t0 = parse_time(a.ref_from)
    idx = np.nonzero(rc["time"] >= t0)[0]
    blocks = np.array_split(idx, a.blocks)
    ref_cb = interpolate_grid(axes, ref_f, bin_centres(a.block_bins), [True, True])
    fb = []
    for k, b in enumerate(blocks):
        mask = np.zeros(len(rc["time"]), bool)
        mask[b] = True
        sub = {key: val[mask] for key, val in rc.items()}
        f_k = reweighted(sub, -math.inf, a.block_bins, weights=v_final[mask] / KT)
        r_k, n_k = fes_rmse(f_k, ref_cb, CUTOFF)
        fb.append(f_k)
        print(f"reference block {k + 1} ({rc['time'][b[0]] / 1000:.2f}–{rc['time'][b[-1]] / 1000:.2f} ns), "
              f"final-bias reweighted vs its bias FES: RMSE {r_k:.2f} kJ/mol ({n_k} points)")
    fb = np.array(fb)
    region = (ref_cb < CUTOFF) & np.all(np.isfinite(fb), axis=0)
    aligned = fb[:, region] - (fb[:, region] - ref_cb[region]).mean(axis=1, keepdims=True)
    se = float(np.sqrt(np.mean(aligned.std(axis=0, ddof=1) ** 2 / len(fb))))
    print(f"reference block standard error ({a.blocks} blocks from {t0 / 1000:g} ns): {se:.2f} kJ/mol "
          f"(RMS over {int(region.sum())} points)")
    snaps = sorted(glob.glob(os.path.join(a.reference, "snapshots", "*.dat")),
                   key=lambda q: float(os.path.basename(q)[:-4]))
    late = [q for q in snaps if float(os.path.basename(q)[:-4]) >= rc["time"][-1] / 2]
    if late:
        d = [fes_rmse(read_grid_file(q)[1], ref_f, CUTOFF)[0] for q in late]
        print(f"reference drift: {len(late)} snapshots from {float(os.path.basename(late[0])[:-4]) / 1000:.2f} ns, "
              f"RMS vs final {np.sqrt(np.mean(np.square(d))):.2f} kJ/mol (max {max(d):.2f})")
    print(f"RESULT solvated_rmse_bias={rmse_b:.2f} solvated_rmse_reweighted={rmse_r:.2f} ref_block_se={se:.2f} "
          f"deepves_ns={dv['time'][-1] / 1000:.2f} ref_ns={rc['time'][-1] / 1000:.2f}")
    if a.png:
        plot(a, centres, ref_c, rw, a.png)
    return 0


def plot(a, ref_pts, ref_f, rw, png):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = int(round(math.sqrt(len(ref_f))))
    bpts, fb, _ = read_grid_file(os.path.join(a.deepves, "fes_bias.dat"))
    bias_on_ref = interpolate_grid([np.unique(bpts[:, 0]), np.unique(bpts[:, 1])], fb, ref_pts, [True, True])
    panels = [("WT-metaD reference", ref_f), ("Deep-VES, from the bias", bias_on_ref),
              (f"Deep-VES, reweighted (t ≥ {a.t_min})", rw)]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), constrained_layout=True)
    phi = np.degrees(np.unique(ref_pts[:, 0]))
    psi = np.degrees(np.unique(ref_pts[:, 1]))
    for ax, (title, f) in zip(axes, panels):
        g = np.asarray(f, float).reshape(n, n)
        g = g - np.nanmin(g[np.isfinite(g)])
        im = ax.contourf(phi, psi, np.where(np.isfinite(g), np.minimum(g, 40), 40).T, levels=np.arange(0, 42, 2),
                         cmap="viridis")
        ax.set(title=title, xlabel="φ (deg)", ylabel="ψ (deg)")
    fig.colorbar(im, ax=axes, label="F (kJ/mol)")
    fig.savefig(png, dpi=110)
    print(f"wrote {png}")


if __name__ == "__main__":
    raise SystemExit(main())
