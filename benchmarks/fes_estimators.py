"""Which FES estimate of a learning Deep-VES run is best at each time? Scored offline on its colvar.

Run:  python benchmarks/fes_estimators.py RUN_FOLDER [RUN_FOLDER ...] [--every 0.25ns] [--reference FILE]

For each alanine-dipeptide run folder (``colvar`` with ``time phi psi bias rbias``; the CLI's run),
at every ``--every`` of simulated time t, F(φ, ψ) is estimated by reweighting the frames with
exp(rbias/kT) (rbias = V − c(t), the bias in force when the frame was drawn) over the windows
[0, t] (all frames), [t/2, t], [3t/4, t] and [t_KL, t] (from the first iteration past the KL threshold,
read from ``ves.log``; [t/2, t] before it); each is scored like the race (``race_score.score``:
RMSE over F_ref < 20 kJ/mol after the best shift, F(φ) and 2-D) against the reference (default:
the 40 ns WT-metaD reference in ``benchmarks/data``). Prints one markdown table per run and the
median over runs per window and time.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from race_score import KT, read_fes, score  # noqa: E402

from openmm_nnbias.analysis.histogram import histogram_fes  # noqa: E402
from openmm_nnbias.io import read_colvar  # noqa: E402

WINDOWS = {"all": 0.0, "half": 0.5, "quarter": 0.75, "kl": None}  # kl: from the KL threshold (before it: half)
BINS = 50


def reweighted(phi, psi, logw, keep):
    """``(phi_axis, psi_axis, F)`` reweighted from the kept frames on a 50×50 periodic grid (kJ/mol)."""
    s = np.column_stack([phi[keep], psi[keep]])
    f = histogram_fes(s, logw[keep], KT, [-math.pi] * 2, [math.pi] * 2, [BINS] * 2, [True, True])
    axis = -math.pi + (np.arange(BINS) + 0.5) * 2 * math.pi / BINS
    return axis, axis.copy(), np.asarray(f).reshape(BINS, BINS)


def kl_time_ps(run: str) -> float:
    """Time (ps) of the first iteration of ``run``'s ``ves.log`` past the learning phase (inf if none)."""
    with open(os.path.join(run, "ves.log")) as fh:
        fields = next(line for line in fh if line.startswith("#! FIELDS")).split()[2:]
        it, ph = fields.index("time"), fields.index("phase")
        for line in fh:
            cols = line.split()
            if cols and not line.startswith("#") and cols[ph] != "learning":
                return float(cols[it])
    return math.inf


def evaluate(run: str, every_ns: float, reference) -> dict:
    """{(window, t_ns): score dict} of one run folder."""
    t_kl = kl_time_ps(run)
    col = read_colvar(os.path.join(run, "colvar"))
    t, phi, psi, logw = col["time"], col["phi"], col["psi"], col["rbias"] / KT
    out = {}
    for k in range(1, int(t[-1] / 1000 / every_ns + 1e-9) + 1):
        t_ns = k * every_ns
        for name, start in WINDOWS.items():
            begin = (t_kl if t_kl < t_ns * 1000 else 0.5 * t_ns * 1000) if start is None else start * t_ns * 1000
            keep = (t >= begin) & (t <= t_ns * 1000)
            out[(name, round(t_ns, 4))] = score(reweighted(phi, psi, logw, keep), reference)
    return out


def table(results: dict, title: str) -> str:
    times = sorted({t for _, t in results})
    lines = [f"### {title}", "", "| t (ns) | " + " | ".join(f"{w}: F(φ) / 2-D" for w in WINDOWS) + " |",
             "|---" * (len(WINDOWS) + 1) + "|"]
    for t in times:
        cells = [f"{results[(w, t)]['rmse_phi']:.2f} / {results[(w, t)]['rmse_2d']:.2f}" for w in WINDOWS]
        lines.append(f"| {t:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders holding a colvar")
    parser.add_argument("--every", default="0.25ns", help="scoring interval (default 0.25ns)")
    parser.add_argument("--reference", default=os.path.join(os.path.dirname(__file__), "data",
                                                            "ala2_fes_reference_metad40ns.dat"))
    args = parser.parse_args(argv)
    every = float(args.every.replace("ns", ""))
    reference = read_fes(args.reference)
    per_run = [evaluate(r, every, reference) for r in args.runs]
    for run, res in zip(args.runs, per_run):
        print(table(res, run), "\n")
    if len(per_run) > 1:
        common = set.intersection(*(set(r) for r in per_run))
        median = {key: {m: statistics.median(r[key][m] for r in per_run) for m in ("rmse_phi", "rmse_2d")}
                  for key in common}
        print(table(median, f"median over {len(per_run)} runs"))


if __name__ == "__main__":
    main()
