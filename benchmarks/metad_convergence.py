"""Simulated time for OpenMM WT-metadynamics to reach an FES RMSE of 1 kJ/mol (alanine dipeptide).

Run:  python benchmarks/metad_convergence.py --time 10ns --reference benchmarks/out/ref_ala2/fes_reference.dat

An independent run (seed 2) of the same WT-metadynamics as the reference command, with the
FES from its bias written every 0.5 ns and compared with the reference (RMSE over
F_ref < 20 kJ/mol, best offset removed). Pair with ``ala2_accuracy.py`` for Deep-VES.
"""

import argparse
import glob
import math
import os

from openmm_nnbias.analysis import compare_files
from openmm_nnbias._units import parse_time
from openmm_nnbias.runners import run_reference


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--time", default="10ns")
    p.add_argument("--reference", required=True)
    p.add_argument("--out", default="benchmarks/out/metad_seed2")
    p.add_argument("--every", type=float, default=0.5, help="ns between snapshots")
    args = p.parse_args()
    run_reference(args.out, parse_time(args.time) / 1000, seed=2, progress=False, snapshotNs=args.every)
    first = math.nan
    for path in sorted(glob.glob(os.path.join(args.out, "fes_*ns.dat")),
                       key=lambda q: float(os.path.basename(q)[4:-6])):
        t = float(os.path.basename(path)[4:-6])
        rmse, n = compare_files(path, args.reference)
        print(f"{t:6.2f} ns  RMSE {rmse:.2f} kJ/mol ({n} points)")
        if math.isnan(first) and rmse <= 1.0:
            first = t
    print(f"RESULT metad_t_rmse1_ns={first:.2f}")


if __name__ == "__main__":
    main()
