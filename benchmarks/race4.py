"""Convergence race on vacuum alanine tetrapeptide: Deep-VES over 6 torsions vs WT-metaD and OPES over φ1–φ3.

    taskset -c 1 python benchmarks/race4.py run --methods deepves,metad,opes --seeds 4 --time 20ns --every 1ns
    # or on two cores: the same command twice, one per core (benchmarks/race4_runs.sh); they share the runs
    taskset -c 1 python benchmarks/race4.py reference --time 40ns --stage1 10ns   # race4_reference.py
    python benchmarks/race4.py report                 # table (markdown) + benchmarks/figures/race4_ala4.png

OPES and ``openmm.app.Metadynamics`` take at most three CVs, so they bias φ1, φ2, φ3 (the slow
ones); Deep-VES biases φ1, ψ1, φ2, ψ2, φ3, ψ3 (``race4_methods.py``: settings, checkpoints). Every
run writes a colvar of the six torsions, the bias in force and V − c(t) every 1 ps; every
``--every`` of simulated time its estimates of the six 1-D marginals F(φ1) … F(ψ3) are kept
(``snapshots/<estimate>_<t>ns.npz``; ``race4_score.py``: reweighting windows) and, if a reference
exists, scored: RMSE per marginal over F_ref < 20 kJ/mol after the best constant shift, and their
mean ``rmse_mean``. CPU time: user + system time of this process and its children (a Deep-VES
learner process) while the method runs, without estimates and scoring; after each segment a
2 500-step unbiased MD segment of the same system in the same process gives the speed ratio to
plain MD on that core. Each run writes ``<root>/<method>/<seed>/progress.csv``.

Two processes may run the same ``run`` command (two cores): each run folder holds a ``lock`` file with
the pid of the process running it, and a process skips the runs another live one holds (:func:`claim`).

Resuming: rerun the same ``run`` command. A finished run is skipped; an unfinished one continues
exactly from its last segment's checkpoint, dropping progress rows and colvar frames after it.
CPU times of a segment cut by a kill are lost; that segment is redone and timed again. Seed k of
the race is ``1000 + k`` (MD, network and Monte Carlo seed); the runs go seed-major (every method
gets seed 1 before any gets seed 2), so a race stopped early still compares the methods.

``report`` (``race4_report.py``) rescores every snapshot against the reference (``<root>/reference``
by default; ``--cutoff``: the scored region F_ref < CUTOFF kJ/mol, default 20; ``--until``: the
snapshots up to a simulated time) and writes ``<root>/report.md`` and the figure (mean marginal RMSE
against simulated time, median and min–max band over seeds). It also scores Deep-VES's bias itself
(Eq. 4 marginals, ``race4_eq4.py``) from the ``snapshots/bias_<t>ns.pt`` every segment keeps.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from race4_common import RMSE, write_rows  # noqa: E402
from race_progress import fmt as _fmt, read_rows  # noqa: E402
from race4_methods import (  # noqa: E402
    SAMPLE_STEPS, TIMESTEP_PS, Unbiased, checkpoint_name, make_runner, tree_cpu)
from race4_eq4 import keep_bias  # noqa: E402
from race4_score import final_bias, load_reference, read_colvar, reweighted, save_snapshot, score  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "out", "race4")
SEED_BASE = 1000


def default_reference(root=ROOT):
    return os.path.join(root, "reference")


def parse_ns(text):
    from openmm_nnbias._units import parse_time

    return parse_time(text) / 1000.0


def _checkpoint_steps(folder):
    """MD steps of the run's last checkpoint (0 if none); a kill right after a checkpoint only lags this marker."""
    path = os.path.join(folder, "checkpoint_steps")
    return int(open(path).read()) if os.path.exists(path) else 0


def _mark_checkpoint(folder, steps):
    path = os.path.join(folder, "checkpoint_steps")
    with open(path + ".tmp", "w") as fh:
        fh.write(f"{steps}\n")
    os.replace(path + ".tmp", path)


def estimates(method, runner, t_ps):
    """``{name: (6, n) marginals}`` of the run at ``t_ps`` (the first is the main estimate) and the decay start."""
    data = read_colvar(runner.colvar)
    out = {"reweighted": reweighted(data, t_ps)}
    decay = None
    if method.startswith("deepves"):
        decay = runner.decay_start_ps()
        out["decay"] = reweighted(data, t_ps, decay) if decay is not None else out["reweighted"]
    else:
        grid_axis, v = runner.bias_grid()
        out["final"] = final_bias(data, t_ps, grid_axis, v)
    return out, decay


def run_one(method, seed, total_ns, every_ns, root, reference, unbiased, unbiased_steps=2500):
    """Run (or continue) one method/seed up to ``total_ns``; returns the folder."""
    folder = os.path.join(root, method, str(seed))
    os.makedirs(os.path.join(folder, "snapshots"), exist_ok=True)
    progress, ckpt = os.path.join(folder, "progress.csv"), os.path.join(folder, checkpoint_name(method))
    total = int(round(total_ns * 1000 / TIMESTEP_PS))
    seg = int(round(every_ns * 1000 / TIMESTEP_PS))
    if total % SAMPLE_STEPS or seg % SAMPLE_STEPS or seg <= 0:
        raise ValueError(f"--time and --every must be whole multiples of {SAMPLE_STEPS * TIMESTEP_PS:g} ps")
    rows = read_rows(progress)
    if _checkpoint_steps(folder) >= total:  # done: rows alone could be ahead of the checkpoint after a kill
        return folder
    runner = make_runner(method, SEED_BASE + seed, folder)
    if os.path.exists(ckpt):
        runner.load(ckpt)
        rows = [r for r in rows if int(r["steps"]) <= runner.steps]
    else:
        rows = []
    cpu = float(rows[-1]["cpu_s"]) if rows else 0.0
    wall = float(rows[-1]["wall_s"]) if rows else 0.0
    try:
        while runner.steps < total:
            n = min(seg - runner.steps % seg, total - runner.steps)
            c0, w0 = tree_cpu(), time.perf_counter()
            runner.step(n)
            seg_cpu = tree_cpu() - c0
            cpu, wall = cpu + seg_cpu, wall + time.perf_counter() - w0
            c1 = tree_cpu()
            t_ps = runner.steps * TIMESTEP_PS
            est, decay = estimates(method, runner, t_ps)
            fes_cpu = tree_cpu() - c1
            unb = unbiased.cpu_per_ns(unbiased_steps)
            names = list(est)
            scores = {}
            for name, f in est.items():
                save_snapshot(os.path.join(folder, "snapshots", f"{name}_{t_ps / 1000:.3f}ns.npz"), f)
                scores[name] = score(f, reference) if reference is not None else None
            main, alt = scores[names[0]], scores[names[1]]
            row = dict(t_ns=t_ps / 1000, steps=runner.steps, cpu_s=cpu, wall_s=wall, seg_cpu_s=seg_cpu,
                       fes_cpu_s=fes_cpu, unbiased_cpu_s_per_ns=unb,
                       speed_ratio=unb / (seg_cpu / (n * TIMESTEP_PS / 1000)) if seg_cpu > 0 else math.nan,
                       estimate=names[0], estimate_alt=names[1], decay_ps=decay)
            if main is not None:
                row.update({k: main[k] for k in RMSE}, covered=main["covered"], rmse_mean_alt=alt["rmse_mean"],
                           covered_alt=alt["covered"])
            rows.append({k: _fmt(v) for k, v in row.items()})
            write_rows(progress, rows)  # rows first: a kill before the checkpoint only redoes this segment
            runner.save(ckpt)
            if method.startswith("deepves"):  # the bias itself, for the Eq. 4 estimate of `report` (race4_eq4.py)
                keep_bias(ckpt, os.path.join(folder, "snapshots", f"bias_{t_ps / 1000:.3f}ns.pt"))
            _mark_checkpoint(folder, runner.steps)
    finally:
        if hasattr(runner, "close"):
            runner.close()
    return folder


LOCK = "lock"  # <run>/lock: the pid of the process running it


def _race_process(pid):
    """True if ``pid`` is this process or a live process of this race (a pid reused by another program is not)."""
    if pid == os.getpid():
        return True
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"race4" in fh.read()
    except OSError:
        return False


def claim(folder):
    """Take the run ``folder`` for this process (its ``lock`` file); False when a live race process holds it.

    A lock left by a process that is gone is taken over, so that a killed lane's runs are resumed by the next.
    Two lanes started with the same ``run`` command thus share the runs: each takes the next one nobody runs.
    """
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                with open(path) as fh:
                    pid = int(fh.read().split()[0])
            except (OSError, ValueError, IndexError):
                pid = None  # half-written by a process killed while claiming: stale
            if pid is not None and _race_process(pid):
                return False
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()}\n")
        return True
    return False


def release(folder):
    path = os.path.join(folder, LOCK)
    try:
        with open(path) as fh:
            mine = fh.read().split()[:1] == [str(os.getpid())]
    except OSError:
        return
    if mine:
        os.remove(path)


def cmd_run(args):
    methods = [m for m in args.methods.split(",") if m]
    ref_path = args.reference or default_reference(args.root)
    reference = load_reference(ref_path)
    if reference is None:
        print(f"no reference at {ref_path} yet: snapshots are kept, `report` scores them later", flush=True)
    unbiased = Unbiased()
    total, every = parse_ns(args.time), parse_ns(args.every)
    if args.first_seed < 1 or args.first_seed > args.seeds:
        raise SystemExit(f"--first-seed must be between 1 and --seeds ({args.seeds}), got {args.first_seed}")
    for seed in range(args.first_seed, args.seeds + 1):  # seed-major: every method gets seed 1 before any gets 2
        for method in methods:
            folder = os.path.join(args.root, method, str(seed))
            if not claim(folder):
                print(f"{method} seed {seed}: run by another process (its {LOCK} file), skipped", flush=True)
                continue
            try:
                run_one(method, seed, total, every, args.root, reference, unbiased, args.unbiased_steps)
            finally:
                release(folder)
            last = read_rows(os.path.join(folder, "progress.csv"))[-1]
            msg = f"{method} seed {seed}: {last['t_ns']} ns, CPU {float(last['cpu_s']) / 3600:.3f} h"
            if last["rmse_mean"]:
                msg += f", mean marginal RMSE {float(last['rmse_mean']):.2f} kJ/mol"
            print(msg, flush=True)


def cmd_report(args):
    from race4_report import report

    ref_path = args.reference or default_reference(args.root)
    reference = load_reference(ref_path)
    if reference is None:
        raise SystemExit(f"no reference at {ref_path}: run `race4.py reference` or give --reference")
    methods = [m for m in args.methods.split(",") if m] if args.methods else None
    until = parse_ns(args.until) if args.until else math.inf
    text = report(args.root, reference, ref_path, args.out or os.path.join(args.root, "report.md"), args.figure,
                  methods, args.cutoff, until, args.eq4_chunks)
    sys.stdout.write(text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run or continue the race")
    r.add_argument("--methods", default="deepves,metad,opes",
                   help="comma-separated: deepves, deepves-mts4, deepves-mts4p, metad, opes")
    r.add_argument("--seeds", type=int, default=4, help="seeds 1..N of each method")
    r.add_argument("--first-seed", type=int, default=1,
                   help="start at this seed (another process runs the earlier ones: two cores, two processes)")
    r.add_argument("--time", default="20ns", help="simulated time per run (e.g. 20ns, 2ps; a whole number of ps)")
    r.add_argument("--every", default="1ns", help="simulated time between snapshots and checkpoints")
    r.add_argument("--unbiased-steps", type=int, default=2500, help="unbiased MD steps after each segment")
    q = sub.add_parser("report", help="markdown table + figure from the runs (rescored against --reference)")
    q.add_argument("--methods", default=None)
    q.add_argument("--out", default=None, help="markdown file (default <root>/report.md)")
    q.add_argument("--figure", default=os.path.join(HERE, "figures", "race4_ala4.png"))
    q.add_argument("--cutoff", type=float, default=20.0, help="score over F_ref < CUTOFF kJ/mol (default 20)")
    q.add_argument("--until", default=None, help="score the snapshots up to this simulated time (e.g. 10ns)")
    q.add_argument("--eq4-chunks", type=int, default=60,
                   help="Eq. 4 estimate of Deep-VES: 200 000 uniform points per chunk (default 60)")
    f = sub.add_parser("reference", help="make the reference marginals (race4_reference.py)")
    f.add_argument("--time", default="40ns", help="simulated time of the static-bias run (stage 2)")
    f.add_argument("--stage1", default="10ns", help="simulated time of the WT-metaD making the static bias")
    f.add_argument("--seed", type=int, default=777)
    for s in (r, q, f):
        s.add_argument("--root", default=ROOT, help="output folder (default benchmarks/out/race4)")
        if s is not f:
            s.add_argument("--reference", default=None, help="reference folder or .npz (default <root>/reference)")
    args = p.parse_args(argv)
    if args.cmd == "run":
        cmd_run(args)
    elif args.cmd == "report":
        cmd_report(args)
    else:
        from race4_reference import make_reference

        out = make_reference(os.path.join(args.root, "reference"), parse_ns(args.time), parse_ns(args.stage1),
                             args.seed)
        print(open(os.path.join(out, "reference.json")).read())


if __name__ == "__main__":
    main()
