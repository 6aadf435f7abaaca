"""Ala4 status/accuracy: φ transitions, simulated time of the Deep-VES and WT-metaD runs, and the
RMSE of the Deep-VES reweighted marginals F(φ1,φ2), F(φ2,φ3), F(φi) against the reference.

    python benchmarks/ala4_accuracy.py benchmarks/out/ala4_deepves benchmarks/out/ala4_ref [--from decay] \
        [--blocks 4] [--ref-snapshots benchmarks/out/ala4_ref/snapshots]

Error bars: ``--blocks B`` splits the reweighting window into B consecutive blocks and prints the
standard error of the Deep-VES marginals (RMS over F_ref < cutoff of std/√B across blocks, each
block aligned by its best offset) and each block's RMSE against the reference (a trend in time
means the bias was still changing). ``--ref-snapshots DIR`` (sub-folders named by simulated time
in ps, each holding the reference marginals written at that time) prints how much the reference
itself still moved over the last half of its run (RMS deviation from the final marginals).

``--from`` (default ``decay``): the first Deep-VES frame reweighted — the start of the learning-rate
decay read from ``ves.log`` (frames of the constant-rate phase bias the marginals by several kJ/mol,
see RESULTS.md), or a time such as ``10ns``.
"""

import argparse
import os

import numpy as np

from openmm_nnbias._units import parse_time
from openmm_nnbias.analysis.marginals import compare_ala4
from openmm_nnbias.recipes import count_transitions


def plot(deepves, reference, t_min, cutoff, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from openmm_nnbias.io import read_grid_file
    from openmm_nnbias._units import KB
    from openmm_nnbias.analysis.marginals import MARGINALS, reweighted_marginals

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


def _reference(reference, n=None):
    from openmm_nnbias.io import read_grid_file
    from openmm_nnbias.analysis.marginals import MARGINALS

    names = ["phi1", "phi2", "phi3"]
    if n is None:
        n = len(read_grid_file(os.path.join(reference, "fes_reference_phi1.dat"))[1])
    return {m: read_grid_file(os.path.join(reference, "fes_reference_" + "_".join(names[k] for k in m) + ".dat"))[1]
            .reshape([n] * len(m)) for m in MARGINALS}


def _aligned_rms(f, ref, cutoff):
    """RMS of f − ref over ref < cutoff after the best constant offset (nan-safe)."""
    ok = np.isfinite(f) & (ref < cutoff)
    d = f[ok] - ref[ok]
    return float(np.sqrt(np.mean((d - d.mean()) ** 2))) if d.size else float("nan")


def block_errors(colvar, reference, t_min, blocks, cutoff, kT):
    """(standard error per marginal, RMSE per block per marginal) of the reweighted marginals."""
    from openmm_nnbias.io import read_colvar
    from openmm_nnbias.analysis.marginals import reweighted_marginals

    ref = _reference(reference)
    n = len(ref[(0,)])
    data = read_colvar(colvar)
    edges = np.linspace(t_min, data["time"][-1] + 1e-9, blocks + 1)
    parts = [reweighted_marginals(data, kT, n=n, t_min=a, t_max=b) for a, b in zip(edges[:-1], edges[1:])]
    stderr, per_block = {}, {}
    for m, r in ref.items():
        stack = np.array([p[m] for p in parts])
        ok = np.isfinite(stack).all(axis=0) & (r < cutoff)
        aligned = np.array([f[ok] - np.mean(f[ok] - r[ok]) for f in stack])
        stderr[m] = float(np.sqrt(np.mean(aligned.std(axis=0, ddof=1) ** 2) / blocks))
        per_block[m] = [_aligned_rms(f, r, cutoff) for f in stack]
    return stderr, per_block, edges


def reference_drift(reference, snapshots, cutoff):
    """RMS deviation of the reference marginals written in the last half of the run from the final ones."""
    final = _reference(reference)
    times = sorted(int(d) for d in os.listdir(snapshots) if d.isdigit())
    t_end = max(times)
    late = [t for t in times if t >= t_end / 2 and t < t_end]
    out = {}
    for m, r in final.items():
        rms = [_aligned_rms(_reference(os.path.join(snapshots, str(t)), len(final[(0,)]))[m], r, cutoff) for t in late]
        out[m] = (float(np.mean(rms)) if rms else float("nan"), len(rms))
    return out, t_end


def marginals_from_bias(bias_pt, kT, biasFactor=10.0, n=36, chains=4000, steps=2000, burn=500, seed=0):
    """Marginals of F = −γ/(γ−1)·V (Eq. 4 at the well-tempered fixed point) of a saved 6-D bias.

    Metropolis chains sample the well-tempered target p ∝ exp(βV/(γ−1)) (barriers lowered γ-fold,
    so the chains mix), then each sample is weighted by exp(βV) ∝ exp(−βF)/p. Returns
    ({marginal: F}, acceptance rate, effective sample fraction).
    """
    import math

    import torch

    from openmm_nnbias.ves.montecarlo import MetropolisSampler

    from openmm_nnbias.analysis.marginals import weighted_marginals

    model = torch.jit.load(bias_pt)
    names = list(model.cv_names)
    cols = [names.index(k) for k in ("phi1", "phi2", "phi3")]
    beta = 1.0 / kT
    sampler = MetropolisSampler([-math.pi] * len(names), [math.pi] * len(names), [True] * len(names),
                                chains=chains, seed=seed)
    logp = lambda s: beta * model.bias_from_cvs(s).reshape(-1) / (biasFactor - 1)  # noqa: E731
    sampler.run(logp, burn, record=False)
    x = sampler.run(logp, steps)
    with torch.no_grad():
        logw = (beta * model.bias_from_cvs(x).reshape(-1)).double().numpy()
    w = np.exp(logw - logw.max())
    out = weighted_marginals(x[:, cols].numpy(), logw, kT, n)
    return out, sampler.acceptance_rate, float(w.sum() ** 2 / (w ** 2).sum() / len(w))


def decay_start(run: str) -> float:
    """Simulated time (ps) of the first ``ves.log`` row whose phase is no longer "learning"."""
    with open(os.path.join(run, "ves.log")) as fh:
        fields = fh.readline().split()[2:]
        i_time, i_phase = fields.index("time"), fields.index("phase")
        for line in fh:
            cols = line.split()
            if cols and not line.startswith("#") and cols[i_phase] != "learning":
                return float(cols[i_time])
    raise SystemExit(f"{run}/ves.log: the learning rate has not started to decay yet; give --from TIME")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("deepves")
    p.add_argument("reference")
    p.add_argument("--from", dest="t_min", default="decay",
                   help="first Deep-VES frame used for reweighting: a time (e.g. 10ns) or 'decay' (default: "
                        "the start of the learning-rate decay in ves.log)")
    p.add_argument("--cutoff", type=float, default=20.0)
    p.add_argument("--plot", default=None, help="PNG: F(phi_i) and F(phi1,phi2), F(phi2,phi3), Deep-VES vs reference")
    p.add_argument("--blocks", type=int, default=0, help="block-average the Deep-VES marginals (B >= 2 blocks)")
    p.add_argument("--ref-snapshots", default=None, help="folder of reference marginals by time (ps)")
    p.add_argument("--from-bias", action="store_true",
                   help="also compare the FES implied by DEEPVES/bias.pt (F = -g/(g-1) V, Metropolis in 6-D)")
    a = p.parse_args()
    for label, run, cols in (("deepves", a.deepves, (1, 3, 5)), ("wt-metad", a.reference, (1, 2, 3))):
        data = np.loadtxt(os.path.join(run, "colvar"), comments="#", ndmin=2)
        counts = count_transitions(data[:, list(cols)])
        print(f"{label}: {data[-1, 0] / 1000:.3f} ns simulated, phi1/phi2/phi3 transitions {counts}")
    t_min = decay_start(a.deepves) if a.t_min == "decay" else parse_time(a.t_min)
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
    names = ["phi1", "phi2", "phi3"]
    tag = {m: "_".join(names[k] for k in m) for m in ((0, 1), (1, 2), (0,), (1,), (2,))}
    if a.blocks >= 2:
        from openmm_nnbias._units import KB

        stderr, per_block, edges = block_errors(os.path.join(a.deepves, "colvar"), a.reference, t_min, a.blocks,
                                                a.cutoff, KB * 300.0)
        print(f"RESULT ala4 Deep-VES block standard error ({a.blocks} blocks of {np.diff(edges)[0] / 1000:.2f} ns) "
              + " ".join(f"{tag[m]}={v:.2f}" for m, v in stderr.items()))
        for m, v in per_block.items():
            print(f"  RMSE per block {tag[m]}: " + " ".join(f"{x:.2f}" for x in v))
    if a.from_bias:
        from openmm_nnbias.analysis.compare import fes_rmse
        from openmm_nnbias._units import KB

        ref = _reference(a.reference)
        fb, acc, ess = marginals_from_bias(os.path.join(a.deepves, "bias.pt"), KB * 300.0, n=len(ref[(0,)]))
        print(f"RESULT ala4 RMSE of the FES from the bias (bias.pt; MC acceptance {acc:.2f}, ESS fraction {ess:.3f}) "
              + " ".join(f"{tag[m]}={fes_rmse(fb[m], ref[m], a.cutoff)[0]:.2f}" for m in ref))
    if a.ref_snapshots:
        drift, t_end = reference_drift(a.reference, a.ref_snapshots, a.cutoff)
        print(f"RESULT ala4 reference drift (RMS vs final, snapshots {t_end / 2000:.1f}-{t_end / 1000:.1f} ns) "
              + " ".join(f"{tag[m]}={v[0]:.2f}(k={v[1]})" for m, v in drift.items()))


if __name__ == "__main__":
    main()
