"""Where a race estimate is wrong: its F(φ) error against the reference, by free-energy band of the reference.

    python benchmarks/race_lag.py benchmarks/out/race/deepves benchmarks/out/race_variants/deepves-lr3s1 \
        [--times 1 2 3] [--estimate NAME] [--reference FILE]

For each method folder (``<root>/<method>``, seeds in numbered sub-folders with ``snapshots/``), at each time t
(ns) the snapshot ``<estimate>_<t>ns.npz`` gives F(φ) (marginal of the 2-D estimate), interpolated onto the
reference's φ bins; its error d(φ) = F(φ) − F_ref(φ) is shifted to zero mean over F_ref < 5 kJ/mol (the two
basins C7eq/C5 and β), then averaged (signed, kJ/mol) over bands of F_ref: < 5 (basins), 5–20 (the scored
region's upper part: C7ax/αL and flanks), 20–40 (the φ ≈ 0 barrier) and ≥ 40. Negative: the estimate puts the
band too low, i.e. the bias has not yet filled it. Printed per method and time as the median over seeds.
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from race_score import load_snapshot, marginal_phi, read_fes  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BANDS = ((0.0, 5.0), (5.0, 20.0), (20.0, 40.0), (40.0, math.inf))


def band_errors(snapshot, ref_phi, ref_marginal) -> list[float]:
    """Mean signed F(φ) error (kJ/mol) in each band of :data:`BANDS`, zero mean over the basins."""
    phi, _, f = load_snapshot(snapshot)
    m = np.interp(ref_phi, phi, marginal_phi(f), period=2 * math.pi)
    d = m - ref_marginal
    d -= d[ref_marginal < BANDS[0][1]].mean()
    return [float(d[(ref_marginal >= lo) & (ref_marginal < hi)].mean()) for lo, hi in BANDS]


def _first_estimate(progress: str) -> str:
    """The ``estimate`` column of the first row of a run's ``progress.csv`` (its primary estimate)."""
    import csv

    with open(progress) as fh:
        return next(csv.DictReader(fh))["estimate"]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("methods", nargs="+", help="method folders (<root>/<method>)")
    p.add_argument("--times", nargs="+", type=float, default=[1.0, 2.0, 3.0], help="ns")
    p.add_argument("--estimate", default=None, help="snapshot name (bias, best, smooth, avg_half, ...; default: each "
                                                     "run's first estimate in its progress.csv)")
    p.add_argument("--reference", default=os.path.join(HERE, "data", "ala2_fes_reference_race.dat"))
    args = p.parse_args(argv)
    ref_phi, _, ref_f = read_fes(args.reference)
    ref_marginal = marginal_phi(ref_f)
    bands = " | ".join(f"F_ref {lo:g}–{hi:g}" if hi < math.inf else f"F_ref ≥ {lo:g}" for lo, hi in BANDS)
    print(f"| method | t (ns) | seeds | {bands} |\n|---|---|---|" + "---|" * len(BANDS))
    for folder in args.methods:
        for t in args.times:
            snaps = sorted(p for run in glob.glob(os.path.join(folder, "*", "progress.csv"))
                           if os.path.exists(p := os.path.join(os.path.dirname(run), "snapshots",
                                                                f"{args.estimate or _first_estimate(run)}_{t:.3f}ns.npz")))
            if not snaps:
                continue
            errs = np.array([band_errors(s, ref_phi, ref_marginal) for s in snaps])
            cells = " | ".join(f"{v:+.1f}" for v in np.median(errs, axis=0))
            print(f"| {os.path.basename(os.path.normpath(folder))} | {t:g} | {len(snaps)} | {cells} |")


if __name__ == "__main__":
    main()
