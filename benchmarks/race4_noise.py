"""The statistical error of a tetrapeptide-race estimate, against its RMSE: is a run's score its own noise?

    python benchmarks/race4_noise.py metad/1@10 opes/1@7 deepves/1@20 [--cutoff 20] [--blocks 4]

For each ``<method>/<seed>@<t_ns>`` of ``benchmarks/out/race4``: the six marginals reweighted with exp(β(V − c(t)))
over the frames of the last half (the race's ``reweighted`` estimate, ``race4_score.reweighted``), their RMSE against
the reference (F_ref < cutoff, best shift), and the same window cut into ``blocks`` blocks: per scored bin the
standard error of the mean of the blocks' marginals (each block shifted to mean 0 over the bins all blocks have),
RMS over the bins. An RMSE near that error means the score measures the window's statistics, not the bias; the
effective sample size (Σw)²/Σw² of the window's weights says why.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from race4_common import KT, TORSIONS  # noqa: E402
from race4_score import CUTOFF, marginals, read_colvar, read_reference, rmse_shift, window  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "race4")


def noise(colvar, t_ns, reference, cutoff=CUTOFF, blocks=4):
    """``({cv: (rmse, block standard error)}, effective sample size, frames)`` of the last-half window at ``t_ns``."""
    data = read_colvar(colvar)
    s, keep = window(data, t_ns * 500.0, t_ns * 1000.0)
    logw = data["rbias"][keep] / KT
    full = marginals(s, logw)
    parts = np.array([marginals(s[b], logw[b]) for b in np.array_split(np.arange(len(logw)), blocks)])
    out = {}
    for j, name in enumerate(TORSIONS):
        ref = reference[j]
        region = np.isfinite(ref) & (ref - np.min(ref[np.isfinite(ref)]) < cutoff)
        x = parts[:, j, :][:, region]
        x = x[:, np.all(np.isfinite(x), axis=0)]
        x = x - x.mean(axis=1, keepdims=True)
        se = x.std(axis=0, ddof=1) / np.sqrt(blocks)
        out[name] = (rmse_shift(full[j], ref, cutoff)[0], float(np.sqrt(np.mean(se ** 2))))
    w = np.exp(logw - logw.max())
    return out, float(w.sum() ** 2 / (w ** 2).sum()), int(len(logw))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="<method>/<seed>@<t_ns>, e.g. metad/1@10")
    p.add_argument("--cutoff", type=float, default=CUTOFF)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--root", default=ROOT)
    args = p.parse_args(argv)
    reference = read_reference(os.path.join(args.root, "reference"))
    print("| run | frames | ESS | " + " | ".join(f"{t} RMSE / SE" for t in TORSIONS) + " | mean RMSE / SE |")
    print("|---|---|---|" + "---|" * (len(TORSIONS) + 1))
    for spec in args.runs:
        run, t_ns = spec.split("@")
        method = run.split("/")[0]
        colvar = os.path.join(args.root, run, "ves" if method.startswith("deepves") else "", "colvar")
        out, ess, n = noise(colvar, float(t_ns), reference, args.cutoff, args.blocks)
        cells = [f"{r:.2f} / {e:.2f}" for r, e in out.values()]
        mean = f"{np.mean([r for r, _ in out.values()]):.2f} / {np.mean([e for _, e in out.values()]):.2f}"
        print(f"| {run} at {float(t_ns):g} ns | {n} | {ess:.0f} | " + " | ".join(cells) + f" | {mean} |")


if __name__ == "__main__":
    main()
