"""Ala4 status/accuracy: φ transitions, simulated time of the Deep-VES and WT-metaD runs, and the
RMSE of the Deep-VES reweighted marginals F(φ1,φ2), F(φ2,φ3), F(φi) against the reference.

    python benchmarks/ala4_accuracy.py benchmarks/out/ala4_deepves benchmarks/out/ala4_ref --from 1ns
"""

import argparse
import os

import numpy as np

from openmm_nnbias.cli import parse_time
from openmm_nnbias.cli.reference_ala4 import compare_ala4, count_transitions


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("deepves")
    p.add_argument("reference")
    p.add_argument("--from", dest="t_min", default="0ps", help="first Deep-VES frame used for reweighting")
    p.add_argument("--cutoff", type=float, default=20.0)
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
    print(f"RESULT ala4 RMSE (kJ/mol, F_ref < {a.cutoff}, Deep-VES frames t >= {t_min:.0f} ps) "
          + " ".join(f"{k}={v[0]:.2f}(n={v[1]})" for k, v in res.items()))


if __name__ == "__main__":
    main()
