"""Speed of a CLI run over its whole length: ps per second over the first and the last 0.4 ns.

Run:  python benchmarks/bench_cli_rate.py run --out benchmarks/out/cli_rate/3ns -- \
          deepves --system alanine-dipeptide --time 3ns
      python benchmarks/bench_cli_rate.py report --out benchmarks/out/cli_rate/3ns

``run`` starts ``python -m openmm_nnbias.cli <args> --out <out>/run --no-progress`` and every
``--poll`` seconds writes one row to ``<out>/trace.csv``: wall seconds since the start, the simulated
time of the last ``colvar`` row (ps), and the CPU seconds (user + system) of the CLI process and its
children (the learner process, if any). A trace already complete is not run again.

With ``--pause-others`` (for a machine whose cores are shared with other jobs), every other Python
process allowed on the run's CPUs is stopped (SIGSTOP) while the run is inside one of the two
measurement windows and continued (SIGCONT) after it, always, also on an error; the wall-clock rates
then compare like with like. ``--total`` (the run's simulated time) places the last window.

``report`` compares the rate over the first ``--window`` of simulated time after ``--skip`` (the
learner's start, TorchScript compilation) with the rate over the last ``--window``: in simulated ps per
wall second (the issue's acceptance figure; it also counts other jobs on a shared core) and per CPU
second (the robust figure on a shared machine). Its last line is
``RESULT cli_rate_wall=<last/first> cli_rate_cpu=<last/first>``; ≥ 0.9 means the run does not slow down.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import subprocess
import sys
import time

FIELDS = ["wall_s", "t_ps", "cpu_s"]


def last_time_ps(colvar: str) -> float:
    """Time (ps, first column) of the last complete row of a colvar file; 0 if none yet."""
    try:
        with open(colvar, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            lines = fh.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return 0.0
    for line in reversed(lines[:-1] if lines and not lines[-1].endswith("\n") else lines):
        if line and not line.startswith("#"):
            try:
                return float(line.split()[0])
            except ValueError:
                continue
    return 0.0


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its live children."""
    import psutil

    proc = psutil.Process(pid)
    total = sum(proc.cpu_times()[:2])
    for child in proc.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def other_jobs(own: int) -> list:
    """Other Python processes that may run on this process's CPUs (not ``own`` or its children)."""
    import psutil

    me = psutil.Process(own)
    mine = {own, os.getpid(), *(c.pid for c in me.children(recursive=True))}
    cpus = set(psutil.Process().cpu_affinity())
    found = []
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        try:
            if proc.pid in mine or "python" not in (proc.info["name"] or ""):
                continue
            if cpus & set(proc.cpu_affinity()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


class Pauser:
    """Stops other jobs on our CPUs inside the measurement windows and always continues them."""

    def __init__(self, windows: list, enabled: bool):
        self.windows, self.enabled, self.stopped = windows, enabled, []

    def update(self, t_ps: float, pid: int) -> None:
        inside = any(a <= t_ps < b for a, b in self.windows)
        if self.enabled and inside and not self.stopped:
            self.stopped = other_jobs(pid)
            for proc in self.stopped:
                try:
                    proc.suspend()
                except Exception:
                    pass
        elif not inside:
            self.resume()

    def resume(self) -> None:
        for proc in self.stopped:
            try:
                proc.resume()
            except Exception:
                pass
        self.stopped = []


def run(out: str, cli_args: list, poll: float, pauser: "Pauser | None" = None) -> None:
    """Run the CLI and write ``out/trace.csv`` (``out/trace.csv.part`` while it runs)."""
    import psutil

    pauser = pauser or Pauser([], False)

    trace = os.path.join(out, "trace.csv")
    if os.path.exists(trace):
        return
    os.makedirs(out, exist_ok=True)
    folder = os.path.join(out, "run")
    cmd = [sys.executable, "-m", "openmm_nnbias.cli", *cli_args, "--out", folder, "--no-progress"]
    with open(os.path.join(out, "cli.log"), "w") as log, open(trace + ".part", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(FIELDS)
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        cpu = 0.0
        try:
            while proc.poll() is None:
                time.sleep(poll)
                try:
                    cpu = tree_cpu_seconds(proc.pid)
                except psutil.NoSuchProcess:
                    break
                t_ps = last_time_ps(os.path.join(folder, "colvar"))
                pauser.update(t_ps, proc.pid)
                writer.writerow([round(time.perf_counter() - start, 2), t_ps, round(cpu, 2)])
                fh.flush()
        finally:
            pauser.resume()
    if proc.wait() != 0:
        raise SystemExit(f"the CLI run failed (exit {proc.returncode}); see {out}/cli.log")
    os.replace(trace + ".part", trace)


def rate(rows: list, t0: float, t1: float) -> tuple:
    """(ps per wall s, ps per CPU s) between the first rows at or after simulated times t0 and t1 (ps)."""
    a = next(r for r in rows if r["t_ps"] >= t0)
    b = next(r for r in rows if r["t_ps"] >= t1)
    dt = b["t_ps"] - a["t_ps"]
    return dt / (b["wall_s"] - a["wall_s"]), dt / (b["cpu_s"] - a["cpu_s"])


def report(out: str, skip_ps: float, window_ps: float) -> str:
    """Markdown rows of first/last-window rates and the RESULT line."""
    with open(os.path.join(out, "trace.csv"), newline="") as fh:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]
    end = max(r["t_ps"] for r in rows)
    if end < skip_ps + 2 * window_ps:
        raise SystemExit(f"the trace reaches {end:g} ps, shorter than skip + two windows")
    first = rate(rows, skip_ps, skip_ps + window_ps)
    last = rate(rows, end - window_ps, end)
    wall, cpu = last[0] / first[0], last[1] / first[1]
    lines = ["| window | ps per wall s | ps per CPU s |", "|---|---|---|",
             f"| {skip_ps / 1000:g}–{(skip_ps + window_ps) / 1000:g} ns | {first[0]:.2f} | {first[1]:.2f} |",
             f"| {(end - window_ps) / 1000:g}–{end / 1000:g} ns | {last[0]:.2f} | {last[1]:.2f} |",
             f"| last / first | {wall:.2f} | {cpu:.2f} |",
             f"RESULT cli_rate_wall={wall:.3f} cli_rate_cpu={cpu:.3f}"]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["run", "report"])
    parser.add_argument("--out", required=True, help="folder of the trace and the run")
    parser.add_argument("--poll", type=float, default=2.0, help="seconds between trace rows (default 2)")
    parser.add_argument("--skip", type=float, default=100.0, help="unmeasured start, ps (default 100)")
    parser.add_argument("--window", type=float, default=400.0, help="measurement window, ps (default 400)")
    parser.add_argument("--pause-others", action="store_true",
                        help="stop other Python jobs on these CPUs during the two measurement windows")
    parser.add_argument("--total", type=float, default=None, help="the run's simulated time, ps (for --pause-others)")
    argv = list(sys.argv[1:] if argv is None else argv)
    cli_args = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    out = args.out
    if args.action == "run":
        if not cli_args:
            parser.error("give the CLI's arguments after --")
        if args.pause_others and args.total is None:
            parser.error("--pause-others needs --total (ps)")
        margin = 20.0
        windows = [] if args.total is None else [
            (args.skip - margin, args.skip + args.window + margin), (args.total - args.window - margin, math.inf)]
        run(out, cli_args, args.poll, Pauser(windows, args.pause_others))
    print(report(out, args.skip, args.window))


if __name__ == "__main__":
    main()
