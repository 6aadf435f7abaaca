"""Throughput of Deep-VES over a long run, per backend and execution mode, against unbiased MD alongside.

Run:  python benchmarks/bench_long_run.py run [--time 5ns] [--chunk 0.5ns] [--configs table-sync,...]
      python benchmarks/bench_long_run.py report

Each configuration is the CLI's alanine-dipeptide run, measured after a ``--warmup`` (0.1 ns: the
learner's start, TorchScript compilation), (``build_deepves``: 300 K, 2 fs, stride 500,
samples every 10 steps, CPU platform, 1 thread) with one backend (table, cmap, torch) and one
execution mode (sync, thread, process). After every ``--chunk`` of simulated time the same process
runs ``--reference`` ps of unbiased MD of the same System (its own Context, same integrator
settings), so each chunk's speed ratio is measured side by side on a shared, noisy machine.
A per-chunk row goes to ``OUT/<config>.csv`` (simulated time at the chunk's end in ns; biased and
unbiased ps per wall second and their ratio; CPU seconds of the chunk and of the unbiased segment, this
process and its learner process together, and the ratio of CPU throughputs: on a shared machine the
CPU-time ratio is the robust figure, the wall-time one also counts the other jobs). ``run`` skips
configurations whose CSV is complete and starts an incomplete one again from the beginning
(resumable after a stop). ``report`` prints the markdown table: ratio to unbiased MD over the first
and the last chunk, and the last chunk's CPU throughput over the first's (≥ 0.9: no slowdown).
Last line of ``report``: ``RESULT long_run_<config>=<last/first> ...``.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import shutil
import statistics
import time

BACKENDS = ("table", "cmap", "torch")
MODES = ("sync", "thread", "process")
ALL = [f"{b}-{m}" for m in MODES for b in BACKENDS]
FIELDS = ["t_ns", "biased_ps_per_s", "unbiased_ps_per_s", "ratio", "biased_cpu_s", "unbiased_cpu_s", "cpu_ratio"]


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its live children (a learner process), s."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def parse_time_ns(text: str) -> float:
    """``'5ns'``, ``'500ps'`` or a number of ns → ns."""
    text = text.strip()
    if text.endswith("ns"):
        return float(text[:-2])
    if text.endswith("ps"):
        return float(text[:-2]) / 1000
    return float(text)


def unbiased_context():
    """Plain alanine dipeptide (the recipe's System without the bias), CPU platform, 1 thread."""
    import openmm as mm
    from openmm import unit

    from openmm_nnbias.systems import alanine_dipeptide

    pep = alanine_dipeptide()
    integrator = mm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 2 * unit.femtosecond)
    integrator.setRandomNumberSeed(7)
    context = mm.Context(pep.system, integrator, mm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    context.setPositions(pep.positions)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 7)
    return context, integrator


def run_config(config: str, total_ns: float, chunk_ns: float, reference_ps: float, out: str,
               warmup_ns: float = 0.1) -> None:
    """Run one configuration for ``total_ns`` and write its per-chunk CSV (atomically, at the end of each chunk)."""
    from openmm_nnbias.runners import build_deepves

    backend, mode = config.split("-")
    folder = os.path.join(out, config)
    shutil.rmtree(folder, ignore_errors=True)
    sim, updater, dt = build_deepves("alanine-dipeptide", out=folder, backend=backend,
                                     mode=mode)
    plain, plain_integrator = unbiased_context()
    plain_integrator.step(1000)
    chunk_steps = round(chunk_ns * 1000 / dt / updater.stride) * updater.stride
    reference_steps = round(reference_ps / dt)
    rows, path = [], os.path.join(out, f"{config}.csv")
    sim.step(round(warmup_ns * 1000 / dt / updater.stride) * updater.stride)  # start-up: learner, TorchScript
    for _ in range(round(total_ns / chunk_ns)):
        c0, t0 = cpu_seconds(), time.perf_counter()
        sim.step(chunk_steps)
        biased_wall, biased_cpu = time.perf_counter() - t0, cpu_seconds() - c0
        c0, t0 = cpu_seconds(), time.perf_counter()
        plain_integrator.step(reference_steps)
        plain_wall, plain_cpu = time.perf_counter() - t0, cpu_seconds() - c0
        biased, unbiased = chunk_steps * dt / biased_wall, reference_steps * dt / plain_wall
        cpu_ratio = (reference_steps / plain_cpu) / (chunk_steps / biased_cpu)
        rows.append(dict(t_ns=round(sim.currentStep * dt / 1000, 4), biased_ps_per_s=round(biased, 3),
                         unbiased_ps_per_s=round(unbiased, 3), ratio=round(biased / unbiased, 4),
                         biased_cpu_s=round(biased_cpu, 2), unbiased_cpu_s=round(plain_cpu, 2),
                         cpu_ratio=round(1 / cpu_ratio, 4)))
        write_rows(path + ".part", rows)
    updater.close()
    os.replace(path + ".part", path)


def write_rows(path: str, rows: list) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def read_rows(path: str) -> list:
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def report(out: str) -> str:
    """Markdown table of every complete configuration in ``out`` and the RESULT line."""
    lines = ["| backend-mode | simulated | speed / unbiased MD (CPU time), first chunk | last chunk | median | "
             "(wall time) median | last / first chunk CPU throughput | second / first half, speed / unbiased MD "
             "(medians) |", "|---|---|---|---|---|---|---|---|"]
    results = []
    for config in ALL:
        path = os.path.join(out, f"{config}.csv")
        if not os.path.exists(path):
            continue
        rows = read_rows(path)
        first, last = rows[0], rows[-1]
        trend = first["biased_cpu_s"] / last["biased_cpu_s"]
        half = len(rows) // 2  # halves: robust to one chunk that ran beside a burst of load
        halves = (statistics.median(r["cpu_ratio"] for r in rows[half:])
                  / statistics.median(r["cpu_ratio"] for r in rows[:half])) if half else math.nan
        lines.append(f"| {config} | {last['t_ns']:g} ns | {first['cpu_ratio']:.2f} | {last['cpu_ratio']:.2f} | "
                     f"{statistics.median(r['cpu_ratio'] for r in rows):.2f} | "
                     f"{statistics.median(r['ratio'] for r in rows):.2f} | {trend:.2f} | {halves:.2f} |")
        results.append(f"long_run_{config}={trend:.3f} long_run_{config}_halves={halves:.3f}")
    lines.append("RESULT " + " ".join(results))
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["run", "report"])
    parser.add_argument("--time", default="5ns", help="simulated time per configuration (default 5ns)")
    parser.add_argument("--chunk", default="0.5ns", help="measurement interval (default 0.5ns)")
    parser.add_argument("--warmup", default="0.1ns", help="unmeasured start of each run (default 0.1ns)")
    parser.add_argument("--reference", type=float, default=50.0, help="unbiased MD after each chunk, ps (default 50)")
    parser.add_argument("--configs", default=",".join(ALL), help=f"comma-separated, of {ALL}")
    parser.add_argument("--out", default=os.path.join("benchmarks", "out", "long_run"))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.action == "report":
        print(report(args.out))
        return
    configs = [c for c in args.configs.split(",") if c]
    unknown = [c for c in configs if c not in ALL]
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}; choose from {ALL}")
    for config in configs:
        if os.path.exists(os.path.join(args.out, f"{config}.csv")):
            continue
        run_config(config, parse_time_ns(args.time), parse_time_ns(args.chunk), args.reference, args.out,
                   parse_time_ns(args.warmup))
        print(report(args.out), flush=True)


if __name__ == "__main__":
    main()
