"""Convergence race on vacuum alanine dipeptide: Deep-VES vs OpenMM WT-metadynamics vs OPES, several seeds each.

    taskset -c 1 python benchmarks/race.py run --methods deepves,metad,opes --seeds 4 --time 3ns
    taskset -c 1 python benchmarks/race.py reference --time 20ns     # the independent reference (race_reference.py)
    python benchmarks/race.py report                                 # table (markdown) + benchmarks/figures/race_ala2.png

``run`` simulates the runs one after the other (methods and settings: ``race_methods.py``); every
0.25 ns of simulated time (``--every``) each run's current FES estimates are kept
(``snapshots/<estimate>_<t>ns.npz``) and scored against the reference on F(φ) and on (φ, ψ): RMSE
(kJ/mol) over F_ref < 20 kJ/mol after the best constant shift (``race_score.py``). Its CPU time
(``time.process_time`` of the MD and learning, without FES output or scoring) is recorded, and a
2 500-step unbiased MD segment of the same system in the same process gives the speed ratio to
plain MD on that core. Each run writes ``benchmarks/out/race/<method>/<seed>/progress.csv``.

Resuming: rerun the same ``run`` command. A finished run is skipped; an unfinished one continues
exactly from its last segment's checkpoint (``checkpoint.pt``: Deep-VES ``updater.saveCheckpoint``;
``checkpoint.pkl``: Context checkpoint + metaD bias grids / OPES ``getState()``), dropping rows
after it. CPU times of a segment cut by a kill are lost; that segment is redone and timed again.

The seed is the MD seed (integrator and initial velocities) and the Deep-VES network seed; seed k
of the race is ``1000 + k`` (independent of the seeds of the reference runs).
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from race_methods import TIMESTEP_PS, Unbiased, checkpoint_name, make_runner  # noqa: E402
from race_progress import fmt as _fmt, read_rows, stat, write_rows as _write_rows  # noqa: E402
from race_score import load_snapshot, read_fes, save_snapshot, score  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "out", "race")
#: the race's independent reference as kept in git (``reference`` of 2026-12-07: 40 ns WT-metaD and 20 ns of static
#: bias, averaged; its uncertainty in the .json next to it), and the 40 ns WT-metaD file alone
RACE_REFERENCE = os.path.join(HERE, "data", "ala2_fes_reference_race.dat")
FALLBACK_REFERENCE = os.path.join(HERE, "data", "ala2_fes_reference_metad40ns.dat")
FIELDS = ["t_ns", "steps", "cpu_s", "wall_s", "seg_cpu_s", "fes_cpu_s", "unbiased_cpu_s_per_ns", "speed_ratio",
          "rmse_phi", "rmse_2d", "rmse_phi_alt", "rmse_2d_alt", "estimate", "estimate_alt"]
SEED_BASE = 1000


def default_reference(root=ROOT):
    """The reference under ``root`` (``reference`` subcommand) if made, else the race's reference in
    ``benchmarks/data``, else the 40 ns WT-metaD file."""
    own = os.path.join(root, "reference", "fes_reference.dat")
    for path in (own, RACE_REFERENCE):
        if os.path.exists(path):
            return path
    return FALLBACK_REFERENCE


def parse_ns(text):
    from openmm_nnbias._units import parse_time

    return parse_time(text) / 1000.0


def write_rows(path, rows):
    _write_rows(path, rows, FIELDS)


def run_one(method, seed, total_ns, every_ns, root, reference, unbiased, unbiased_steps=2500):
    """Run (or continue) one method/seed up to ``total_ns``; returns the folder."""
    folder = os.path.join(root, method, str(seed))
    os.makedirs(os.path.join(folder, "snapshots"), exist_ok=True)
    progress, ckpt = os.path.join(folder, "progress.csv"), os.path.join(folder, checkpoint_name(method))
    total = int(round(total_ns * 1000 / TIMESTEP_PS))
    seg = int(round(every_ns * 1000 / TIMESTEP_PS))
    rows = read_rows(progress)
    if rows and int(rows[-1]["steps"]) >= total:
        return folder
    runner = make_runner(method, SEED_BASE + seed, folder)
    if os.path.exists(ckpt):
        runner.load(ckpt)
        rows = [r for r in rows if int(r["steps"]) <= runner.steps]
    else:
        rows = []
    cpu = float(rows[-1]["cpu_s"]) if rows else 0.0
    wall = float(rows[-1]["wall_s"]) if rows else 0.0
    while runner.steps < total:
        n = min(seg - runner.steps % seg, total - runner.steps)
        c0, w0 = time.process_time(), time.perf_counter()
        runner.step(n)
        seg_cpu = time.process_time() - c0
        cpu, wall = cpu + seg_cpu, wall + time.perf_counter() - w0
        c1 = time.process_time()
        estimates = runner.estimates()
        fes_cpu = time.process_time() - c1
        unb = unbiased.cpu_per_ns(unbiased_steps)
        t = runner.steps * TIMESTEP_PS / 1000
        names = list(estimates)
        scores = {}
        for name, fes in estimates.items():
            save_snapshot(os.path.join(folder, "snapshots", f"{name}_{t:.3f}ns.npz"), fes)
            scores[name] = score(fes, reference)
        alt = names[1] if len(names) > 1 else None
        rows.append({k: _fmt(v) for k, v in dict(
            t_ns=t, steps=runner.steps, cpu_s=cpu, wall_s=wall, seg_cpu_s=seg_cpu, fes_cpu_s=fes_cpu,
            unbiased_cpu_s_per_ns=unb, speed_ratio=unb / (seg_cpu / (n * TIMESTEP_PS / 1000)),
            rmse_phi=scores[names[0]]["rmse_phi"], rmse_2d=scores[names[0]]["rmse_2d"],
            rmse_phi_alt=scores[alt]["rmse_phi"] if alt else None, rmse_2d_alt=scores[alt]["rmse_2d"] if alt else None,
            estimate=names[0], estimate_alt=alt).items()})
        write_rows(progress, rows)  # rows first: a kill before the checkpoint only redoes this segment
        runner.save(ckpt)
    if hasattr(runner, "close"):
        runner.close()
    return folder


def cmd_run(args):
    methods = [m for m in args.methods.split(",") if m]
    reference = read_fes(args.reference or default_reference(args.root))
    unbiased = Unbiased()
    total, every = parse_ns(args.time), parse_ns(args.every)
    first = args.first_seed
    for seed in range(first, args.seeds + 1):  # seed-major: every method gets seed 1 before any gets seed 2
        for method in methods:
            folder = run_one(method, seed, total, every, args.root, reference, unbiased, args.unbiased_steps)
            last = read_rows(os.path.join(folder, "progress.csv"))[-1]
            print(f"{method} seed {seed}: {last['t_ns']} ns, CPU {float(last['cpu_s']) / 60:.1f} min, "
                  f"RMSE F(phi) {float(last['rmse_phi']):.2f} kJ/mol, 2-D {float(last['rmse_2d']):.2f} kJ/mol",
                  flush=True)


# ----------------------------------------------------------------------------------------------- report
def rescore(folder, reference):
    """Rows of a run's ``progress.csv`` with its snapshots rescored against ``reference`` (rmse_* replaced;
    NaN where a snapshot is missing, so that no score against another reference is kept)."""
    rows = read_rows(os.path.join(folder, "progress.csv"))
    for r in rows:
        t = float(r["t_ns"])
        for key, est in (("", r["estimate"]), ("_alt", r["estimate_alt"])):
            snap = os.path.join(folder, "snapshots", f"{est}_{t:.3f}ns.npz")
            if est and os.path.exists(snap):
                s = score(load_snapshot(snap), reference)
                r["rmse_phi" + key], r["rmse_2d" + key] = s["rmse_phi"], s["rmse_2d"]
            else:
                r["rmse_phi" + key], r["rmse_2d" + key] = "nan", "nan"
    return rows


def time_to(rows, column, threshold, x):
    """First ``x`` from which ``column`` stays ≤ ``threshold`` to the end of the run (inf if never)."""
    vals = [float(r[column]) for r in rows]
    for i in range(len(vals)):
        if all(v <= threshold for v in vals[i:]):
            return float(rows[i][x])
    return math.inf


def collect(root, reference, methods=None):
    runs = {}
    for folder in sorted(glob.glob(os.path.join(root, "*", "*", "progress.csv"))):
        folder = os.path.dirname(folder)
        method = os.path.basename(os.path.dirname(folder))
        if methods and method not in methods:
            continue
        rows = rescore(folder, reference)
        if rows:
            runs.setdefault(method, []).append(rows)
            alt = rows[-1]["estimate_alt"]
            if alt and all(r["estimate_alt"] == alt for r in rows):  # the second estimate as its own entry
                runs.setdefault(f"{method} ({alt})", []).append(
                    [dict(r, rmse_phi=r["rmse_phi_alt"], rmse_2d=r["rmse_2d_alt"]) for r in rows])
            for est, est_rows in extra_estimates(folder, rows, reference).items():
                runs.setdefault(f"{method} ({est})", []).append(est_rows)
    return runs


def extra_estimates(folder, rows, reference):
    """{estimate: rows} for the estimates beyond the two of ``progress.csv``, scored from their snapshots
    (those kept at every scored time only)."""
    named = {rows[-1]["estimate"], rows[-1]["estimate_alt"]}
    found = {os.path.basename(p).rsplit("_", 1)[0] for p in glob.glob(os.path.join(folder, "snapshots", "*.npz"))}
    out = {}
    for est in sorted(found - named):
        snaps = [os.path.join(folder, "snapshots", f"{est}_{float(r['t_ns']):.3f}ns.npz") for r in rows]
        if all(os.path.exists(p) for p in snaps):
            out[est] = [dict(r, **{k: score(load_snapshot(p), reference)[k] for k in ("rmse_phi", "rmse_2d")})
                        for r, p in zip(rows, snaps)]
    return out


def common_rows(rr, until=None):
    """Each seed's rows up to the last time every seed of the method reached (and ``until`` ns, if given)."""
    t_end = min(float(rows[-1]["t_ns"]) for rows in rr)
    if until is not None:
        t_end = min(t_end, until)
    return [[r for r in rows if float(r["t_ns"]) <= t_end + 1e-9] for rows in rr], t_end


def table(runs, reference_path, until=None):
    lines = [f"Reference: `{os.path.relpath(reference_path)}`. RMSE over F_ref < 20 kJ/mol after the best constant "
             "shift. Every method's seeds are compared up to the last time all of them reached (\"final time\""
             + ("" if until is None else f", at most {until:g} ns") + "). Time to an RMSE: first scored time from "
             "which it stays at or below the threshold to that time; median [min–max over the seeds that reached "
             "it] (seeds reached / seeds). CPU time: process CPU time of MD + bias (+ learning), without FES "
             "output and scoring, on one core.", "",
             "| method | surface | to 1 kJ/mol (ns) | to 1 kJ/mol (CPU min) | to 0.5 kJ/mol (ns) | "
             "to 0.5 kJ/mol (CPU min) | final RMSE (kJ/mol) | final time (ns) | speed vs unbiased MD |",
             "|---|---|---|---|---|---|---|---|---|"]
    for method, rr in sorted(runs.items()):
        rr, tmax = common_rows(rr, until)
        rr = [rows for rows in rr if rows]
        if not rr:
            continue
        ratio = np.median([np.median([float(r["speed_ratio"]) for r in rows]) for rows in rr])
        for surface, col in (("F(φ)", "rmse_phi"), ("(φ, ψ)", "rmse_2d")):
            cells = [stat([time_to(rows, col, th, x) for rows in rr], scale)
                     for th in (1.0, 0.5) for x, scale in (("t_ns", 1.0), ("cpu_s", 1 / 60))]
            final = stat([float(rows[-1][col]) for rows in rr]).rsplit(" (", 1)[0]
            lines.append(f"| {method} | {surface} | " + " | ".join(cells) + f" | {final} | {tmax:.2f} | {ratio:.2f} |")
    return "\n".join(lines) + "\n"


def figure(runs, path, until=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, (col, title) in zip(axes, (("rmse_phi", "F(φ)"), ("rmse_2d", "F(φ, ψ)"))):
        for method, rr in sorted(runs.items()):
            rr, _ = common_rows(rr, until)
            n = min(len(rows) for rows in rr)
            if n == 0:
                continue
            t = np.array([float(r["t_ns"]) for r in rr[0][:n]])
            y = np.array([[float(r[col]) for r in rows[:n]] for rows in rr])
            line, = ax.plot(t, np.median(y, axis=0), label=f"{method} (median of {len(rr)})")
            ax.fill_between(t, y.min(axis=0), y.max(axis=0), color=line.get_color(), alpha=0.2, lw=0)
        for th in (1.0, 0.5):
            ax.axhline(th, color="0.6", lw=0.8, ls="--")
        ax.set_yscale("log")
        ax.set_xlabel("simulated time (ns)")
        ax.set_title(f"alanine dipeptide, {title}")
    axes[0].set_ylabel("RMSE vs reference (kJ/mol)")
    axes[0].legend(fontsize=8)
    fig.text(0.5, 0.005, "band: min–max over seeds", ha="center", fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def cmd_report(args):
    ref_path = args.reference or default_reference(args.root)
    methods = [m for m in args.methods.split(",") if m] if args.methods else None
    runs = {}
    for root in [args.root] + [r for r in (args.also or "").split(",") if r]:
        for method, rr in collect(root, read_fes(ref_path), methods).items():
            runs.setdefault(method, []).extend(rr)
    if not runs:
        raise SystemExit(f"no runs with progress.csv under {args.root}")
    until = parse_ns(args.until) if args.until else None
    text = "# Convergence race: alanine dipeptide in vacuum\n\n" + table(runs, ref_path, until)
    ref_json = next((p for p in (os.path.join(os.path.dirname(ref_path), "reference.json"),
                                 os.path.splitext(ref_path)[0] + ".json") if os.path.exists(p)), "")
    if ref_json:
        text += "\nReference uncertainty (`" + os.path.relpath(ref_json) + "`): " + open(ref_json).read().strip() + "\n"
    out = args.out or os.path.join(args.root, "report.md")
    with open(out, "w") as fh:
        fh.write(text)
    figure(runs, args.figure, until)
    sys.stdout.write(text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run or continue the race")
    r.add_argument("--methods", default="deepves,metad,opes", help="comma-separated: deepves[-variant], metad, opes")
    r.add_argument("--seeds", type=int, default=4, help="seeds 1..N of each method")
    r.add_argument("--first-seed", type=int, default=1, help="start at this seed (another process runs the earlier ones)")
    r.add_argument("--time", default="3ns", help="simulated time per run (e.g. 3ns, 500ps)")
    r.add_argument("--every", default="0.25ns", help="simulated time between scores")
    r.add_argument("--unbiased-steps", type=int, default=2500, help="unbiased MD steps after each segment")
    q = sub.add_parser("report", help="markdown table + figure from the runs (rescored against --reference)")
    q.add_argument("--methods", default=None)
    q.add_argument("--out", default=None, help="markdown file (default <root>/report.md)")
    q.add_argument("--also", default=None, help="comma-separated further roots whose runs join the report")
    q.add_argument("--until", default=None, help="compare up to this simulated time (e.g. 3ns; default: all)")
    q.add_argument("--figure", default=os.path.join(HERE, "figures", "race_ala2.png"))
    f = sub.add_parser("reference", help="make the independent reference (race_reference.py)")
    f.add_argument("--time", default="20ns", help="simulated time of the static-bias run")
    f.add_argument("--seed", type=int, default=777)
    for s in (r, q, f):
        s.add_argument("--root", default=ROOT, help="output folder (default benchmarks/out/race)")
        if s is not f:
            s.add_argument("--reference", default=None, help="2-D FES file (default: <root>/reference/"
                           "fes_reference.dat if made, else benchmarks/data/ala2_fes_reference_metad40ns.dat)")
    args = p.parse_args(argv)
    if args.cmd == "run":
        cmd_run(args)
    elif args.cmd == "report":
        cmd_report(args)
    else:
        from race_reference import make_reference

        make_reference(os.path.join(args.root, "reference"), parse_ns(args.time), args.seed, FALLBACK_REFERENCE)


if __name__ == "__main__":
    main()
