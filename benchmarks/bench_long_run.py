"""Throughput of Deep-VES over a long run, per backend and execution mode, against unbiased MD alongside.

Run:  python benchmarks/bench_long_run.py run [--time 5ns] [--chunk 0.5ns] [--configs table-sync,...]
      python benchmarks/bench_long_run.py report

Each configuration is the CLI's alanine-dipeptide run (``build_deepves``: 300 K, 2 fs, stride 500,
samples every 10 steps, CPU platform, 1 thread) with one backend (table, cmap, torch) and one
execution mode (sync, thread, process). After every ``--chunk`` of simulated time the same process
runs ``--reference`` ps of unbiased MD of the same System (its own Context, same integrator
settings), so each chunk's speed ratio is measured side by side on a shared, noisy machine.
A per-chunk row goes to ``OUT/<config>.csv`` (simulated time at the chunk's end in ns; biased and
unbiased ps per wall second; their ratio; biased CPU seconds of this process). ``run`` skips
configurations whose CSV is complete and starts an incomplete one again from the beginning
(resumable after a stop). ``report`` prints the markdown table: ratio to unbiased MD over the first
and the last chunk, and the last chunk's throughput over the first's (≥ 0.9: no slowdown).
Last line of ``report``: ``RESULT long_run_<config>=<last/first> ...``.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import time

BACKENDS = ("table", "cmap", "torch")
MODES = ("sync", "thread", "process")
ALL = [f"{b}-{m}" for m in MODES for b in BACKENDS]
FIELDS = ["t_ns", "biased_ps_per_s", "unbiased_ps_per_s", "ratio", "biased_cpu_s"]


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


def run_config(config: str, total_ns: float, chunk_ns: float, reference_ps: float, out: str) -> None:
    """Run one configuration for ``total_ns`` and write its per-chunk CSV (atomically, at the end of each chunk)."""
    from openmm_nnbias.systems import build_deepves

    backend, mode = config.split("-")
    folder = os.path.join(out, config)
    shutil.rmtree(folder, ignore_errors=True)
    sim, updater, dt = build_deepves("alanine-dipeptide", out=folder, backend=backend,
                                     asynchronous=False if mode == "sync" else mode)
    plain, plain_integrator = unbiased_context()
    plain_integrator.step(1000)
    chunk_steps = round(chunk_ns * 1000 / dt / updater.stride) * updater.stride
    reference_steps = round(reference_ps / dt)
    rows, path = [], os.path.join(out, f"{config}.csv")
    for _ in range(round(total_ns / chunk_ns)):
        c0, t0 = time.process_time(), time.perf_counter()
        sim.step(chunk_steps)
        biased_wall, biased_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter()
        plain_integrator.step(reference_steps)
        plain_wall = time.perf_counter() - t0
        biased, unbiased = chunk_steps * dt / biased_wall, reference_steps * dt / plain_wall
        rows.append(dict(t_ns=round(sim.currentStep * dt / 1000, 4), biased_ps_per_s=round(biased, 3),
                         unbiased_ps_per_s=round(unbiased, 3), ratio=round(biased / unbiased, 4),
                         biased_cpu_s=round(biased_cpu, 2)))
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
    lines = ["| backend-mode | simulated | ratio to unbiased MD, first chunk | last chunk | median | "
             "last / first chunk throughput |", "|---|---|---|---|---|---|"]
    results = []
    for config in ALL:
        path = os.path.join(out, f"{config}.csv")
        if not os.path.exists(path):
            continue
        rows = read_rows(path)
        first, last = rows[0], rows[-1]
        trend = last["biased_ps_per_s"] / first["biased_ps_per_s"]
        lines.append(f"| {config} | {last['t_ns']:g} ns | {first['ratio']:.2f} | {last['ratio']:.2f} | "
                     f"{statistics.median(r['ratio'] for r in rows):.2f} | {trend:.2f} |")
        results.append(f"long_run_{config}={trend:.3f}")
    lines.append("RESULT " + " ".join(results))
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["run", "report"])
    parser.add_argument("--time", default="5ns", help="simulated time per configuration (default 5ns)")
    parser.add_argument("--chunk", default="0.5ns", help="measurement interval (default 0.5ns)")
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
        run_config(config, parse_time_ns(args.time), parse_time_ns(args.chunk), args.reference, args.out)
        print(report(args.out), flush=True)


if __name__ == "__main__":
    main()
