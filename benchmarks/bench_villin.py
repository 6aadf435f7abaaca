"""Deep-VES speed on the villin headpiece in water (8 867 atoms, PME, barostat): learning on vs unbiased MD.

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/bench_villin.py [--repeats 2] [--block 250] [--static]

Configurations, stepped in interleaved blocks of ``--block`` MD steps so that machine load hits all alike,
each with its own copy of the System (``get_system("villin")``) on the CPU platform with ``--threads`` threads
(``static`` only with ``--static``):

* unbiased: plain LangevinMiddle MD, 300 K, 2 fs;
* static: the bias force of the recipe (torch backend: Rg and RMSD of the 35 Cα atoms, MLP [48, 24, 12]),
  no updater;
* deepves: ``build_deepves("villin")``, i.e. ``openmm-nnbias deepves --system villin``: samples every 10
  steps, one optimizer step every 500 steps (well-tempered target on a 50 × 50 grid), weights pushed every
  iteration, learning on the MD thread (sync).

``--ranges-ps T`` instead runs T ps of unbiased MD from the PDB and prints the range of the recipe's CVs (Rg and
RMSD of the Cα atoms, every 50 steps): how the recipe's CV ranges were chosen.

The first block of each (TorchScript warm-up) is not timed. Each block is timed by wall clock and by the
process's CPU time (``time.process_time``: on a core shared with other jobs the wall time of a block depends on
the scheduler's share, its CPU time much less; with one OpenMM thread and one torch thread the process's CPU time
is the work done). Prints ms/step and the ratio unbiased / configuration (1 = no cost) of both, then a ``RESULT``
line (CPU-time ratios).
"""

import argparse
import time

import openmm as mm
import torch
from openmm import app, unit

from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
from openmm_nnbias.runners import build_deepves
from openmm_nnbias.recipes import get_recipe, get_system


def plain(threads: int, biased: bool):
    built = get_system("villin")
    if biased:
        cvs = get_recipe("villin").buildCVs(built)
        NeuralBiasForce(cvs, NeuralBias.from_cvs(cvs, hidden=[48, 24, 12], seed=1), backend="torch").addToSystem(
            built.system)
    integ = mm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 2 * unit.femtosecond)
    integ.setRandomNumberSeed(1)
    sim = app.Simulation(built.topology, built.system, integ, mm.Platform.getPlatformByName("CPU"),
                         {"Threads": str(threads)})
    sim.context.setPositions(built.positions)
    sim.context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    return sim, None


def cv_ranges(ps: float, threads: int) -> None:
    """Unbiased MD for ``ps`` ps; min/max of the recipe's CVs every 50 steps (0.1 ps)."""
    import numpy as np

    sim, _ = plain(threads, False)
    cvs = get_recipe("villin").buildCVs(get_system("villin"))
    values = []
    for _ in range(max(1, int(round(ps / 0.1)))):
        sim.step(50)
        state = sim.context.getState(getPositions=True)
        x = torch.tensor(np.asarray(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)))
        box = torch.tensor(np.asarray(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)))
        values.append(cvs(x, box).tolist())
    v = np.array(values)
    for k, name in enumerate(cvs.names):
        print(f"{name}: min {v[:, k].min():.4f} max {v[:, k].max():.4f} nm over {len(v)} frames "
              f"({len(v) * 0.1:g} ps); recipe range [{cvs.lower[k]:g}, {cvs.upper[k]:g}] nm")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="timed interleaved blocks per configuration")
    parser.add_argument("--block", type=int, default=250, help="MD steps per block (one Deep-VES iteration: 500)")
    parser.add_argument("--threads", type=int, default=1, help="CPU platform threads")
    parser.add_argument("--static", action="store_true", help="also the bias force without an updater")
    parser.add_argument("--ranges-ps", type=float, default=None,
                        help="instead: ps of unbiased MD, printing the range of the recipe's CVs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.ranges_ps is not None:
        return cv_ranges(args.ranges_ps, args.threads)
    runs = {"unbiased": plain(args.threads, False)}
    if args.static:
        runs["static"] = plain(args.threads, True)
    runs["deepves"] = build_deepves("villin", threads=args.threads)[:2]
    for sim, _ in runs.values():  # warm-up, not timed
        sim.step(args.block)
    wall, cpu = dict.fromkeys(runs, 0.0), dict.fromkeys(runs, 0.0)
    for _ in range(args.repeats):
        for name, (sim, _) in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            sim.step(args.block)
            wall[name] += time.perf_counter() - t0
            cpu[name] += time.process_time() - c0
    n = args.repeats * args.block
    up = runs["deepves"][1]
    print(f"villin ({runs['unbiased'][0].topology.getNumAtoms()} atoms, PME, barostat), CPU {args.threads} thread(s), "
          f"2 fs, {args.repeats} interleaved blocks of {args.block} steps after one warm-up block; Deep-VES "
          f"iterations done: {len(up.history)}")
    for name in runs:
        print(f"{name:10s} wall {wall[name] / n * 1e3:8.2f} ms/step  ratio {wall['unbiased'] / wall[name]:.3f}   "
              f"CPU {cpu[name] / n * 1e3:8.2f} ms/step  ratio {cpu['unbiased'] / cpu[name]:.3f}")
    cvs = up.force.getCollectiveVariables(runs["deepves"][0])
    print("deepves last CVs (nm):", ", ".join(f"{k} {v:.3f}" for k, v in zip(up.force.cvs.names, cvs)))
    up.close()
    print("RESULT " + " ".join(f"ratio_{k}={cpu['unbiased'] / v:.3f}" for k, v in cpu.items() if k != "unbiased"))


if __name__ == "__main__":
    main()
