"""Where the Deep-VES speed goes: the floor of the table backend and of CV sampling, and the cost
of learning, separated into MD-integrator time and Python time of the MD thread.

    python benchmarks/bench_deepves_floor.py [--repeats 60]

Alanine dipeptide, CPU platform 1 thread, 2 fs. Configurations, stepped in interleaved blocks of
1 000 steps (two Deep-VES iterations) so that machine load hits all of them alike:

* unbiased;
* static: the table bias force, no reporter;
* static_rep50: plus a reporter reading positions every 50 steps (what sampling costs);
* sync_s50_p8: Deep-VES, optimizer on the MD thread, samples every 50 steps, push every 8 iterations;
* proc_s50_p8: the same with the optimizer in a learner process (``mode="process"``);
* proc_s100_p8: samples every 100 steps;
* proc_s50_p16, proc_s100_p16, proc_s100_p32: a push every 16 (32) iterations.

``--pin``: MD (this process) on CPU 0, learner processes on CPU 1.

The integrator's ``step`` is timed separately, so "python" is everything else on the MD thread
(reporters, optimizer or messages, pushes).
"""

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_deepves import make, pin_to_cpu0  # noqa: E402


class TimedIntegrator:
    """Forwards to an OpenMM integrator and accumulates the wall time spent in ``step``."""

    def __init__(self, integrator):
        self.__dict__["_integrator"] = integrator
        self.__dict__["seconds"] = 0.0

    def step(self, n):
        t0 = time.perf_counter()
        self._integrator.step(n)
        self.__dict__["seconds"] += time.perf_counter() - t0

    def __getattr__(self, name):
        return getattr(self._integrator, name)


class PositionSampler:
    """Reporter that reads positions every 50 steps and does nothing else."""

    def describeNextReport(self, simulation):
        return {"steps": 50 - simulation.currentStep % 50, "periodic": False, "include": ["positions"]}

    def report(self, simulation, state):
        state.getPositions(asNumpy=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60, help="interleaved blocks of 1000 steps per configuration")
    parser.add_argument("--pin", action="store_true", help="MD on CPU 0, the learner process on CPU 1")
    parser.add_argument("--only", nargs="*", default=None, help="configurations besides unbiased")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.pin:
        pin_to_cpu0()
    from openmm_nnbias.systems import alanine_dipeptide

    pep = alanine_dipeptide()
    cpus = [1] if args.pin else None
    configs = {"static": dict(backend="table"), "static_rep50": dict(backend="table"),
               "sync_s50_p8": dict(backend="table", sample_stride=50, push_interval=8),
               "proc_s50_p8": dict(backend="table", sample_stride=50, mode="process", push_interval=8,
                                   learner_cpus=cpus),
               "proc_s100_p8": dict(backend="table", sample_stride=100, mode="process", push_interval=8,
                                    learner_cpus=cpus),
               "proc_s50_p16": dict(backend="table", sample_stride=50, mode="process", push_interval=16,
                                    learner_cpus=cpus),
               "proc_s100_p16": dict(backend="table", sample_stride=100, mode="process", push_interval=16,
                                     learner_cpus=cpus),
               "proc_s100_p32": dict(backend="table", sample_stride=100, mode="process", push_interval=32,
                                     learner_cpus=cpus)}
    if args.only:
        configs = {k: v for k, v in configs.items() if k in args.only}
    runs = {"unbiased": make(pep)}
    runs.update({k: make(pep, **v) for k, v in configs.items()})
    for name in ("static", "static_rep50"):
        if name in runs:
            runs[name][0].reporters.clear()
    if "static_rep50" in runs:
        runs["static_rep50"][0].reporters.append(PositionSampler())
    for sim, _ in runs.values():
        sim.integrator = TimedIntegrator(sim.integrator)
    wall = dict.fromkeys(runs, 0.0)
    for _ in range(args.repeats):
        for name, (sim, _) in runs.items():
            t0 = time.perf_counter()
            sim.step(1000)
            wall[name] += time.perf_counter() - t0
    n_steps = args.repeats * 1000
    print(f"alanine dipeptide, CPU 1 thread, {args.repeats} interleaved blocks of 1000 steps")
    for name, (sim, up) in runs.items():
        integ = sim.integrator.seconds
        print(f"{name:14s} {wall[name] / n_steps * 1e6:7.1f} us/step  ratio {wall['unbiased'] / wall[name]:.3f}  "
              f"integrator {integ / n_steps * 1e6:7.1f} us/step  "
              f"python {(wall[name] - integ) / (n_steps / 500) * 1e3:5.2f} ms/iteration")
        if up is not None:
            up.close()
    print("RESULT " + " ".join(f"ratio_{k}={wall['unbiased'] / v:.3f}" for k, v in wall.items() if k != "unbiased"))


if __name__ == "__main__":
    main()
