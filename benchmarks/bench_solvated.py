"""Deep-VES speed on solvated alanine dipeptide (TIP3P, PME, barostat): learning on vs unbiased MD.

    python benchmarks/bench_solvated.py [--repeats 10] [--threads 1] [--hmr]

Configurations, stepped in interleaved blocks of 1 000 steps so that machine load hits all alike,
each with its own copy of the System on the CPU platform:

* unbiased;
* static: the (φ, ψ) table bias force, no updater;
* sync_s10: Deep-VES as in the paper (samples every 10 steps, push every iteration, learning on the MD thread);
* proc_s50_p8: learner process, samples every 50 steps, push every 8 iterations.

Prints µs/step and the ratio to unbiased of each, then a ``RESULT`` line.
"""

import argparse
import copy
import time

import openmm as mm
import torch
from openmm import app, unit

from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
from openmm_nnbias.cvs import CVSet, Torsion
from openmm_nnbias.systems import solvated_alanine_dipeptide
from openmm_nnbias.ves import DeepVESUpdater, ExecutionOptions, WellTempered

CONFIGS = {"unbiased": None, "static": dict(),
           "sync_s10": dict(sampleStride=10, mode="sync", pushInterval=1),
           "proc_s50_p8": dict(sampleStride=50, mode="process", pushInterval=8)}


def make(pep, config, threads: int, dt_ps: float):
    system = copy.deepcopy(pep.system)
    updater = None
    if config is not None:
        cvs = CVSet([Torsion(pep.torsions["phi"], "phi"), Torsion(pep.torsions["psi"], "psi")])
        force = NeuralBiasForce(cvs, NeuralBias.from_cvs(cvs, seed=1), backend="table")
        force.addToSystem(system)
    integ = mm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, dt_ps * unit.picosecond)
    sim = app.Simulation(pep.topology, system, integ, mm.Platform.getPlatformByName("CPU"),
                         {"Threads": str(threads)})
    sim.context.setPositions(pep.positions)
    sim.context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    if config:
        updater = DeepVESUpdater(force, 300 * unit.kelvin, target=WellTempered(biasFactor=10), stride=500,
                                 sampleStride=config["sampleStride"],
                                 execution=ExecutionOptions(mode=config["mode"], pushInterval=config["pushInterval"]))
        sim.reporters.append(updater)
    sim.step(1000)
    return sim, updater


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="interleaved blocks of 1000 steps per configuration")
    parser.add_argument("--threads", type=int, default=1, help="CPU platform threads")
    parser.add_argument("--hmr", action="store_true", help="hydrogen mass 1.5 amu and a 4 fs step")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pep = solvated_alanine_dipeptide(hydrogenMass=1.5 * unit.amu if args.hmr else None)
    dt = 0.004 if args.hmr else 0.002
    runs = {name: make(pep, cfg, args.threads, dt) for name, cfg in CONFIGS.items()}
    wall = dict.fromkeys(runs, 0.0)
    for _ in range(args.repeats):
        for name, (sim, _) in runs.items():
            t0 = time.perf_counter()
            sim.step(1000)
            wall[name] += time.perf_counter() - t0
    n = args.repeats * 1000
    print(f"solvated alanine dipeptide ({pep.topology.getNumAtoms()} atoms, PME, barostat), CPU {args.threads} "
          f"thread(s), dt {dt} ps, {args.repeats} interleaved blocks of 1000 steps")
    for name, (sim, up) in runs.items():
        print(f"{name:12s} {wall[name] / n * 1e6:8.1f} us/step  ratio {wall['unbiased'] / wall[name]:.3f}")
        if up is not None:
            up.close()
    print("RESULT " + " ".join(f"ratio_{k}={wall['unbiased'] / v:.3f}" for k, v in wall.items() if k != "unbiased"))


if __name__ == "__main__":
    main()
