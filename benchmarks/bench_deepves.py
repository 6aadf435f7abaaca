"""Speed of Deep-VES with learning on vs unbiased OpenMM, alanine dipeptide, CPU, 1 thread.

Run:  python benchmarks/bench_deepves.py [--iterations 40] [--rounds 3]

Side by side in one process, interleaved over rounds (median per configuration): unbiased MD,
Deep-VES with the table, cmap and torch backends, synchronous (the paper's scheme) and
asynchronous (``ExecutionOptions(mode="thread")``: the optimizer step and the tabulation run
in a worker thread overlapping the next 500 MD steps; only the push into the Context stays on
the MD thread; ``_process``: ``mode="process"``, the same in a learner process). Paper settings: one optimizer step per 500 steps, 50x50 grid, samples every
10 steps (``_s50``/``_s100``: every 50/100); ``_p4``: weights pushed into the Context every 4th iteration;
``_double``: the optimizer's network passes in float64 (default: ``precision="mixed"``, float32 passes).
Also the cost breakdown per iteration.
``--pin``: this process (MD of every configuration) on CPU 0, learner processes on CPU 1 (on a VM whose
vCPUs hand threads over slowly this makes even unbiased OpenMM ~25 % faster).
Last line: ``RESULT speed_ratio_<config>=<r> ...``.
"""

import argparse
import copy
import statistics
import time

import torch
import openmm as mm
from openmm import app, unit

from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
from openmm_nnbias.recipes import get_recipe
from openmm_nnbias.systems import alanine_dipeptide
from openmm_nnbias.ves import DeepVESUpdater, ExecutionOptions, WellTempered

RECIPE = get_recipe("alanine-dipeptide")  # 300 K, 2 fs, 1/ps, stride 500, phi/psi


def pin_to_cpu0():
    """Pin every thread of this process to CPU 0; threads created later (OpenMM's worker) inherit it."""
    import os

    for task in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(task), {0})
        except OSError:  # a short-lived thread that has already ended
            pass


def make(pep, backend=None, sample_stride=10, mode="sync", push_interval=1, precision="mixed",
         learner_cpus=None):
    system = copy.deepcopy(pep.system)
    updater = None
    force = None
    if backend is not None:
        cvs = RECIPE.buildCVs(pep)
        bias = NeuralBias.from_cvs(cvs, hidden=RECIPE.options["hidden"], seed=1)
        force = NeuralBiasForce(cvs, bias, backend=backend)
        force.addToSystem(system)
    sim = app.Simulation(pep.topology, system, RECIPE.integrator(), mm.Platform.getPlatformByName("CPU"),
                         {"Threads": "1"})
    sim.context.setPositions(pep.positions)
    sim.context.setVelocitiesToTemperature(RECIPE.temperature * unit.kelvin, 1)
    if force is not None:
        execution = ExecutionOptions(mode=mode, pushInterval=push_interval, precision=precision,
                                     learnerCPUs=learner_cpus if mode == "process" else None)
        updater = DeepVESUpdater(force, RECIPE.temperature * unit.kelvin, target=WellTempered(biasFactor=10),
                                 stride=RECIPE.options["stride"], sampleStride=sample_stride, execution=execution)
        sim.reporters.append(updater)
    sim.step(1000)
    return sim, updater


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=40, help="Deep-VES iterations per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None,
                        help="configurations to run besides unbiased (e.g. table_async_s50_p4 table_process_s50_p4)")
    parser.add_argument("--pin", action="store_true",
                        help="pin this process (MD, all configurations) to CPU 0 and learner processes to CPU 1")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.pin:
        pin_to_cpu0()
    pep = alanine_dipeptide()
    configs = {
        "unbiased": dict(), "deepves_table": dict(backend="table"),
        "deepves_table_async": dict(backend="table", mode="thread"),
        "deepves_table_async_s50": dict(backend="table", sample_stride=50, mode="thread"),
        "deepves_table_async_p4": dict(backend="table", mode="thread", push_interval=4),
        "deepves_table_async_s50_p4": dict(backend="table", sample_stride=50, mode="thread", push_interval=4),
        "deepves_table_process": dict(backend="table", mode="process"),
        "deepves_table_process_p4": dict(backend="table", mode="process", push_interval=4),
        "deepves_table_process_p8": dict(backend="table", mode="process", push_interval=8),
        "deepves_table_process_s50_p4": dict(backend="table", sample_stride=50, mode="process",
                                             push_interval=4),
        "deepves_table_process_s50_p8": dict(backend="table", sample_stride=50, mode="process",
                                             push_interval=8),
        "deepves_table_process_s50_p8_double": dict(backend="table", sample_stride=50, mode="process",
                                                    push_interval=8, precision="double"),
        "deepves_table_process_s50_p16": dict(backend="table", sample_stride=50, mode="process",
                                              push_interval=16),
        "deepves_table_process_s100_p8": dict(backend="table", sample_stride=100, mode="process",
                                              push_interval=8),
        "deepves_table_process_s100_p16": dict(backend="table", sample_stride=100, mode="process",
                                               push_interval=16),
        "deepves_table_s50_p8": dict(backend="table", sample_stride=50, push_interval=8),
        "deepves_cmap_async": dict(backend="cmap", mode="thread"),
        "deepves_torch": dict(backend="torch"), "deepves_torch_async": dict(backend="torch", mode="thread")}
    if args.only:
        unknown = [c for c in args.only if "deepves_" + c not in configs]
        if unknown:
            raise SystemExit(f"unknown configurations {unknown}; known: {[k[8:] for k in configs if k != 'unbiased']}")
        configs = {k: v for k, v in configs.items() if k == "unbiased" or k[8:] in args.only}
    runs = {k: make(pep, **v, learner_cpus=[1] if args.pin else None) for k, v in configs.items()}
    steps = 500 * args.iterations
    us = {k: [] for k in runs}
    for _ in range(args.rounds):
        for name, (sim, _) in runs.items():
            t0 = time.perf_counter()
            sim.step(steps)
            us[name].append((time.perf_counter() - t0) / steps * 1e6)
    med = {k: statistics.median(v) for k, v in us.items()}
    print(f"alanine dipeptide, CPU 1 thread, 2 fs, stride 500, {steps} steps x {args.rounds} rounds")
    for k, v in med.items():
        print(f"{k:24s} {v:7.1f} us/step {0.002e-3 / (v * 1e-6) * 86400:8.1f} ns/day  "
              f"ratio {med['unbiased'] / v:.3f}")
    for k, (sim, up) in runs.items():
        if up is None:
            continue
        h = up.history[2:]
        opt = statistics.median(x["t_optimizer_ms"] for x in h)
        prep = statistics.mean(x["t_prepare_ms"] for x in h)
        push = statistics.mean(x["t_push_ms"] for x in h)
        per_iter = (med[k] - med["unbiased"]) * 500 / 1000
        up.flush()
        where = {"sync": "main thread", "thread": "worker thread", "process": "learner process"}[up.execution.mode]
        print(f"{k:24s} per iteration: optimizer {opt:.2f} ms + tabulate {prep:.2f} ms ({where}), "
              f"push {push:.2f} ms (main thread), "
              f"total overhead {per_iter:.2f} ms (MD of 500 steps: {med['unbiased'] * 0.5:.1f} ms)")
    print("RESULT " + " ".join(f"speed_ratio_{k[8:]}={med['unbiased'] / v:.3f}"
                               for k, v in med.items() if k != "unbiased"))


if __name__ == "__main__":
    main()
