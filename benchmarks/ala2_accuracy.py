"""Accuracy of an alanine-dipeptide Deep-VES run against the WT-metadynamics reference.

Run (after the two long runs):
    openmm-nnbias reference --time 40ns --out benchmarks/out/ref_ala2
    openmm-nnbias deepves --system alanine-dipeptide --time 20ns --out benchmarks/out/ala2_deepves
    python benchmarks/ala2_accuracy.py benchmarks/out/ala2_deepves benchmarks/out/ref_ala2/fes_reference.dat

Prints the simulated time at which the KL threshold was reached and the bias froze, the RMSE
(kJ/mol, best constant offset removed, region F_ref < 20 kJ/mol) of the FES from the bias
(Eq. 4) and reweighted (Eq. 11, frames after freezing), landmark free energies, and the RMSE of
the rbias-reweighted FES of frames [0, t] for growing t.
"""

import math
import os
import sys
import tempfile

import numpy as np

from openmm_nnbias._units import KB
from openmm_nnbias.analysis import compare_files, interpolate_grid, read_grid_file, reweight_colvar, write_grid_file

KT = KB * 300.0  # kJ/mol


def landmarks(path):
    pts, f, _ = read_grid_file(path)
    axes = [np.unique(pts[:, 0]), np.unique(pts[:, 1])]
    out = {}
    for name, (phi, psi) in {"C7eq": (-82, 60), "C5": (-147, 158), "PII": (-85, 129), "C7ax": (64, -45)}.items():
        q = np.radians([[phi, psi]])
        out[name] = float(interpolate_grid(axes, f, q, [True, True])[0])
    base = out["C7eq"]
    return {k: v - base for k, v in out.items()}


def main(run, reference):
    rows = [ln.split() for ln in open(os.path.join(run, "ves.log")) if not ln.startswith("#")]
    t = np.array([float(r[1]) for r in rows])
    kl = np.array([float(r[3]) for r in rows])
    phase = [r[6] for r in rows]
    below = np.nonzero(kl < 0.5)[0]
    t_kl = t[below[0]] / 1000 if len(below) else math.nan
    frozen = [i for i, p in enumerate(phase) if p == "frozen"]
    t_frozen = t[frozen[0]] / 1000 if frozen else math.nan
    print(f"simulated {t[-1] / 1000:.2f} ns; KL < 0.5 first at {t_kl:.2f} ns; bias frozen at {t_frozen:.2f} ns")
    print(f"final KL {kl[-1]:.3f}, phase {phase[-1]}")
    rmse_b, n = compare_files(os.path.join(run, "fes_bias.dat"), reference)
    print(f"FES from bias (Eq. 4):        RMSE {rmse_b:.2f} kJ/mol over {n} points (paper 1.5)")
    rw_path = os.path.join(run, "fes_reweighted.dat")
    if os.path.exists(rw_path):
        rmse_r, n = compare_files(rw_path, reference)
        print(f"reweighted after freezing:    RMSE {rmse_r:.2f} kJ/mol over {n} points (paper 0.45)")
    tmp = tempfile.mkdtemp()
    for label, path in [("reference", reference), ("bias", os.path.join(run, "fes_bias.dat"))] + (
            [("reweighted", rw_path)] if os.path.exists(rw_path) else []):
        lm = landmarks(path)
        print(f"landmarks vs C7eq ({label}): " + ", ".join(f"{k} {v:.1f}" for k, v in lm.items()))
    print("rbias-reweighted FES of frames [0, t] (t in ns: RMSE kJ/mol):")
    first_1 = math.nan
    for t_end in np.arange(1.0, t[-1] / 1000 + 1e-9, 1.0):
        axes, fes = reweight_colvar(os.path.join(run, "colvar"), KT, bins=50, t_max=t_end * 1000)
        p = os.path.join(tmp, "rw.dat")
        write_grid_file(p, ["phi", "psi"], axes, fes, [True, True], lower=[-math.pi] * 2, upper=[math.pi] * 2)
        r, _ = compare_files(p, reference)
        if math.isnan(first_1) and r <= 1.0:
            first_1 = t_end
        print(f"  {t_end:5.1f}: {r:.2f}")
    first_1_window = math.nan
    if not math.isnan(t_kl):
        print(f"rbias-reweighted FES of frames [t_KL = {t_kl:.2f} ns, t] (learning transient dropped):")
        for t_end in np.arange(math.ceil(t_kl * 2) / 2 + 0.5, t[-1] / 1000 + 1e-9, 0.5):
            axes, fes = reweight_colvar(os.path.join(run, "colvar"), KT, bins=50, t_min=t_kl * 1000,
                                        t_max=t_end * 1000)
            p = os.path.join(tmp, "rw.dat")
            write_grid_file(p, ["phi", "psi"], axes, fes, [True, True], lower=[-math.pi] * 2, upper=[math.pi] * 2)
            r, _ = compare_files(p, reference)
            if math.isnan(first_1_window) and r <= 1.0:
                first_1_window = t_end
            print(f"  {t_end:5.1f}: {r:.2f}")
    first_1_frozen = math.nan
    if not math.isnan(t_frozen):
        print(f"frozen-bias reweighted FES of frames [t_frozen = {t_frozen:.2f} ns, t] (Eq. 11):")
        for t_end in np.arange(math.ceil(t_frozen * 4) / 4 + 0.25, t[-1] / 1000 + 1e-9, 0.25):
            axes, fes = reweight_colvar(os.path.join(run, "colvar"), KT, bins=50, column="bias",
                                        t_min=t_frozen * 1000, t_max=t_end * 1000)
            p = os.path.join(tmp, "rw.dat")
            write_grid_file(p, ["phi", "psi"], axes, fes, [True, True], lower=[-math.pi] * 2, upper=[math.pi] * 2)
            r, _ = compare_files(p, reference)
            if math.isnan(first_1_frozen) and r <= 1.0:
                first_1_frozen = t_end
            print(f"  {t_end:5.2f}: {r:.2f}")
    print(f"RESULT t_kl_ns={t_kl:.2f} t_frozen_ns={t_frozen:.2f} rmse_bias={rmse_b:.2f} "
          f"rmse_reweighted={rmse_r if os.path.exists(rw_path) else math.nan:.2f} t_rmse1_ns={first_1:.1f} "
          f"t_rmse1_from_tkl_ns={first_1_window:.1f} t_rmse1_frozen_ns={first_1_frozen:.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
