"""Ala4 status/accuracy: φ transitions, simulated time of the Deep-VES and WT-metaD runs, and the
RMSE of the Deep-VES reweighted marginals F(φ1,φ2), F(φ2,φ3), F(φi) against the reference.

    python benchmarks/ala4_accuracy.py benchmarks/out/ala4_deepves benchmarks/out/ala4_ref --from 1ns
"""

import argparse
import os

import numpy as np

from openmm_nnbias.cli import parse_time
from openmm_nnbias.cli.reference_ala4 import compare_ala4, count_transitions


def plot(deepves, reference, t_min, cutoff, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from openmm_nnbias.analysis.fes_io import read_grid_file
    from openmm_nnbias.cli.reference_ala4 import KB, MARGINALS, reweighted_marginals

    names = ["phi1", "phi2", "phi3"]
    n = len(read_grid_file(os.path.join(reference, "fes_reference_phi1.dat"))[1])
    ref = {m: read_grid_file(os.path.join(reference, "fes_reference_" + "_".join(names[k] for k in m) + ".dat"))[1]
           .reshape([n] * len(m)) for m in MARGINALS}
    rw = reweighted_marginals(os.path.join(deepves, "colvar"), KB * 300.0, n=n, t_min=t_min)
    x = -np.pi + 2 * np.pi * np.arange(n) / n
    fig, axes = plt.subplots(2, 3, figsize=(13, 8))
    for j in range(3):
        ax = axes[0, j]
        r, d = ref[(j,)], rw[(j,)]
        ok = np.isfinite(d) & (r < cutoff)
        shift = np.mean(d[ok] - r[ok]) if ok.any() else 0.0
        ax.plot(x, r, "k-", label="WT-metaD reference")
        ax.plot(x, d - shift, "r--", label="Deep-VES reweighted")
        ax.set(xlabel=f"{names[j]} (rad)", ylabel="F (kJ/mol)", ylim=(-1, 30))
        ax.legend(fontsize=8)
    panels = [((0, 1), ref, "reference F(phi1, phi2)"), ((0, 1), rw, "Deep-VES F(phi1, phi2)"),
              ((1, 2), rw, "Deep-VES F(phi2, phi3)")]
    for ax, (m, src, title) in zip(axes[1], panels):
        f = np.where(np.isfinite(src[m]), src[m], np.nan)
        im = ax.imshow(np.minimum(f, 30).T, origin="lower", extent=(-np.pi, np.pi, -np.pi, np.pi), cmap="viridis")
        ax.set(title=title, xlabel=f"{names[m[0]]} (rad)", ylabel=f"{names[m[1]]} (rad)")
        fig.colorbar(im, ax=ax, label="kJ/mol")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("deepves")
    p.add_argument("reference")
    p.add_argument("--from", dest="t_min", default="0ps", help="first Deep-VES frame used for reweighting")
    p.add_argument("--cutoff", type=float, default=20.0)
    p.add_argument("--plot", default=None, help="PNG: F(phi_i) and F(phi1,phi2), F(phi2,phi3), Deep-VES vs reference")
    a = p.parse_args()
    for label, run, cols in (("deepves", a.deepves, (1, 3, 5)), ("wt-metad", a.reference, (1, 2, 3))):
        data = np.loadtxt(os.path.join(run, "colvar"), comments="#", ndmin=2)
        counts = count_transitions(data[:, list(cols)])
        print(f"{label}: {data[-1, 0] / 1000:.3f} ns simulated, phi1/phi2/phi3 transitions {counts}")
    t_min = parse_time(a.t_min)
    try:
        res = compare_ala4(os.path.join(a.deepves, "colvar"), a.reference, t_min=t_min, cutoff=a.cutoff)
    except ValueError as exc:
        print(f"no comparison: {exc}")
        return
    if a.plot:
        plot(a.deepves, a.reference, t_min, a.cutoff, a.plot)
        print(f"wrote {a.plot}")
    print(f"RESULT ala4 RMSE (kJ/mol, F_ref < {a.cutoff}, Deep-VES frames t >= {t_min:.0f} ps) "
          + " ".join(f"{k}={v[0]:.2f}(n={v[1]})" for k, v in res.items()))


if __name__ == "__main__":
    main()
