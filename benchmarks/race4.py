"""Convergence race on vacuum alanine tetrapeptide: Deep-VES over 6 torsions vs WT-metaD and OPES over φ1–φ3.

    taskset -c 1 python benchmarks/race4.py run --methods deepves,metad,opes --seeds 4 --time 20ns --every 1ns
    # or on two cores: --seeds 2 on core 0, --first-seed 3 --seeds 4 on core 1 (benchmarks/race4_runs.sh)
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

Resuming: rerun the same ``run`` command. A finished run is skipped; an unfinished one continues
exactly from its last segment's checkpoint, dropping progress rows and colvar frames after it.
CPU times of a segment cut by a kill are lost; that segment is redone and timed again. Seed k of
the race is ``1000 + k`` (MD, network and Monte Carlo seed); the runs go seed-major (every method
gets seed 1 before any gets seed 2), so a race stopped early still compares the methods.

``report`` rescores every snapshot against the reference (``<root>/reference`` by default) and
writes ``<root>/report.md`` and the figure (mean marginal RMSE against simulated time, median
and min–max band over seeds).
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import math
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from race4_methods import (  # noqa: E402
    SAMPLE_STEPS, TIMESTEP_PS, TORSIONS, Unbiased, checkpoint_name, make_runner, tree_cpu)
from race4_eq4 import keep_bias  # noqa: E402
from race4_score import final_bias, load_snapshot, read_colvar, read_reference, reweighted, save_snapshot, score  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "out", "race4")
SEED_BASE = 1000
RMSE = ["rmse_mean"] + [f"rmse_{t}" for t in TORSIONS]
FIELDS = (["t_ns", "steps", "cpu_s", "wall_s", "seg_cpu_s", "fes_cpu_s", "unbiased_cpu_s_per_ns", "speed_ratio"]
          + RMSE + ["covered", "rmse_mean_alt", "covered_alt", "estimate", "estimate_alt", "decay_ps"])


def default_reference(root=ROOT):
    return os.path.join(root, "reference")


def parse_ns(text):
    from openmm_nnbias._units import parse_time

    return parse_time(text) / 1000.0


def read_rows(path):
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return list(csv.DictReader(fh))


def write_rows(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def _fmt(x):
    if x is None:
        return ""
    return f"{x:.6g}" if isinstance(x, (float, np.floating)) else str(x)


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


def _load_reference(path):
    if path and os.path.exists(path if not os.path.isdir(path) else os.path.join(path, "fes_reference.npz")):
        return read_reference(path)
    return None


def cmd_run(args):
    methods = [m for m in args.methods.split(",") if m]
    ref_path = args.reference or default_reference(args.root)
    reference = _load_reference(ref_path)
    if reference is None:
        print(f"no reference at {ref_path} yet: snapshots are kept, `report` scores them later", flush=True)
    unbiased = Unbiased()
    total, every = parse_ns(args.time), parse_ns(args.every)
    if args.first_seed < 1 or args.first_seed > args.seeds:
        raise SystemExit(f"--first-seed must be between 1 and --seeds ({args.seeds}), got {args.first_seed}")
    for seed in range(args.first_seed, args.seeds + 1):  # seed-major: every method gets seed 1 before any gets 2
        for method in methods:
            folder = run_one(method, seed, total, every, args.root, reference, unbiased, args.unbiased_steps)
            last = read_rows(os.path.join(folder, "progress.csv"))[-1]
            msg = f"{method} seed {seed}: {last['t_ns']} ns, CPU {float(last['cpu_s']) / 3600:.3f} h"
            if last["rmse_mean"]:
                msg += f", mean marginal RMSE {float(last['rmse_mean']):.2f} kJ/mol"
            print(msg, flush=True)


# ----------------------------------------------------------------------------------------------- report
def rescore(folder, reference):
    """Rows of a run's ``progress.csv`` with its snapshots rescored against ``reference``."""
    rows = read_rows(os.path.join(folder, "progress.csv"))
    for r in rows:
        t = float(r["t_ns"])
        for key, est in (("", r["estimate"]), ("_alt", r["estimate_alt"])):
            snap = os.path.join(folder, "snapshots", f"{est}_{t:.3f}ns.npz")
            if not os.path.exists(snap):
                continue
            s = score(load_snapshot(snap), reference)
            if key:
                r["rmse_mean_alt"], r["covered_alt"] = s["rmse_mean"], s["covered"]
            else:
                r.update({k: s[k] for k in RMSE}, covered=s["covered"])
    return rows


def _num(v):
    """A progress value as float (nan when empty)."""
    return math.nan if v in ("", None) else float(v)


def converged_value(row, column="rmse_mean", covered="covered"):
    """The row's RMSE, inf unless every scored bin has an estimate."""
    v = row.get(column, "")
    if v in ("", None) or str(row.get(covered, "0")) not in ("1", "1.0"):
        return math.inf
    v = float(v)
    return v if math.isfinite(v) else math.inf


def time_to(rows, threshold, x, column="rmse_mean", covered="covered"):
    """First ``x`` from which ``column`` stays ≤ ``threshold`` (and covered) to the end of the run (inf if never)."""
    vals = [converged_value(r, column, covered) for r in rows]
    for i in range(len(vals)):
        if all(v <= threshold for v in vals[i:]):
            return float(rows[i][x])
    return math.inf


def _stat(values, scale=1.0, digits=2):
    v = np.array(values, float) * scale
    reached = int(np.isfinite(v).sum())
    med = np.median(v) if len(v) else math.nan
    fin = v[np.isfinite(v)]
    text = "not reached" if not np.isfinite(med) else f"{med:.{digits}f}"
    if len(fin):
        text += f" [{fin.min():.{digits}f}–{fin.max():.{digits}f}]"
    return f"{text} ({reached}/{len(v)})"


def collect(root, reference, methods=None):
    """``{entry: [rows per seed]}``: each method's main estimate, and its second as ``<method> (<name>)``."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(root, "*", "*", "progress.csv"))):
        folder = os.path.dirname(path)
        method = os.path.basename(os.path.dirname(folder))
        if methods and method not in methods:
            continue
        rows = rescore(folder, reference)
        if not rows:
            continue
        runs.setdefault(method, []).append(rows)
        alt = rows[-1]["estimate_alt"]
        if alt and all(r["estimate_alt"] == alt for r in rows):
            runs.setdefault(f"{method} ({alt})", []).append(
                [dict(r, rmse_mean=r["rmse_mean_alt"], covered=r["covered_alt"]) for r in rows])
    return runs


def table(runs, reference_path):
    with warnings.catch_warnings():  # a marginal not yet scorable in any seed: nan medians
        warnings.simplefilter("ignore", RuntimeWarning)
        return _table(runs, reference_path)


def _table(runs, reference_path):
    lines = [
        f"Reference: `{os.path.relpath(reference_path)}`. Score: the mean over F(φ1), F(ψ1), F(φ2), F(ψ2), F(φ3), "
        "F(ψ3) of the RMSE (kJ/mol) over F_ref < 20 kJ/mol after the best constant shift. Main estimate: the run's "
        "colvar reweighted with exp(β(V − c(t))) over its last half (t ≥ t_now/2); in parentheses the second estimate "
        "(WT-metaD/OPES `final`: the final bias, same window; Deep-VES `decay`: frames from the start of the "
        "learning-rate decay). Time to an RMSE: first scored time from which the score stays at or below the "
        "threshold (every scored bin estimated) to the end of the run; median [min–max over the seeds that reached it] "
        "(seeds reached / seeds). CPU time: user + system of the run's processes (a learner process included) for MD, "
        "bias and learning, without estimates and scoring, on one core.", "",
        "| method | to 1 kJ/mol (ns) | to 1 kJ/mol (CPU h) | to 0.5 kJ/mol (ns) | to 0.5 kJ/mol (CPU h) | "
        "final mean RMSE (kJ/mol) | final RMSE φ1 / ψ1 / φ2 / ψ2 / φ3 / ψ3 (median) | final time (ns) | "
        "CPU h per ns | speed vs unbiased MD |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for method, rr in sorted(runs.items()):
        ratio = np.median([np.nanmedian([_num(r["speed_ratio"]) for r in rows]) for rows in rr])
        per_ns = np.median([float(rows[-1]["cpu_s"]) / 3600 / float(rows[-1]["t_ns"]) for rows in rr])
        cells = [_stat([time_to(rows, th, x) for rows in rr], scale)
                 for th in (1.0, 0.5) for x, scale in (("t_ns", 1.0), ("cpu_s", 1 / 3600))]
        final = _stat([_num(rows[-1]["rmse_mean"]) for rows in rr]).rsplit(" (", 1)[0]
        if method.endswith(")"):
            each = "–"
        else:
            each = " / ".join(f"{np.nanmedian([_num(rows[-1][f'rmse_{t}']) for rows in rr]):.2f}"
                              for t in TORSIONS)
        tmax = max(float(rows[-1]["t_ns"]) for rows in rr)
        lines.append(f"| {method} | " + " | ".join(cells)
                     + f" | {final} | {each} | {tmax:g} | {per_ns:.3f} | {ratio:.2f} |")
    return "\n".join(lines) + "\n"


def figure(runs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = {}
    for method, rr in sorted(runs.items()):
        n = min(len(rows) for rows in rr)
        t = np.array([float(r["t_ns"]) for r in rr[0][:n]])
        y = np.array([[_num(r["rmse_mean"]) for r in rows[:n]] for rows in rr])
        alt = method.endswith(")")  # a second estimate: dashed, no band
        with warnings.catch_warnings():  # a time with no scorable seed: nan
            warnings.simplefilter("ignore", RuntimeWarning)
            med, lo, hi = np.nanmedian(y, axis=0), np.nanmin(y, axis=0), np.nanmax(y, axis=0)
        base = method.split(" (")[0]
        line, = ax.plot(t, med, "--" if alt else "-", lw=1 if alt else 1.6, color=colors.get(base),
                        label=f"{method} (median of {len(rr)})")
        colors.setdefault(base, line.get_color())
        if not alt:
            ax.fill_between(t, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
    for th in (1.0, 0.5):
        ax.axhline(th, color="0.6", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("simulated time (ns)")
    ax.set_ylabel("mean RMSE of the six 1-D marginals (kJ/mol)")
    ax.set_title("alanine tetrapeptide: Deep-VES (6 torsions) vs WT-metaD, OPES (φ1–φ3)", fontsize=9)
    ax.legend(fontsize=7)
    fig.text(0.5, 0.005, "band: min–max over seeds; dashed: the second estimate of a method", ha="center", fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def cmd_report(args):
    ref_path = args.reference or default_reference(args.root)
    reference = _load_reference(ref_path)
    if reference is None:
        raise SystemExit(f"no reference at {ref_path}: run `race4.py reference` or give --reference")
    methods = [m for m in args.methods.split(",") if m] if args.methods else None
    runs = collect(args.root, reference, methods)
    if not runs:
        raise SystemExit(f"no runs with progress.csv under {args.root}")
    text = "# Convergence race: alanine tetrapeptide in vacuum, six 1-D marginals\n\n" + table(runs, ref_path)
    ref_json = os.path.join(ref_path if os.path.isdir(ref_path) else os.path.dirname(ref_path), "reference.json")
    if os.path.exists(ref_json):
        info = json.load(open(ref_json))
        unc = info.get("uncertainty_kJmol", {})
        text += ("\nReference (`" + os.path.relpath(ref_json) + "`): " + info.get("method", "") + f"; "
                 f"{info.get('stage2_static_ns')} ns static-bias MD after {info.get('stage1_wtmetad_ns')} ns of WT-metaD; "
                 "uncertainty per marginal (block SE / halves RMSE÷2, kJ/mol): "
                 + ", ".join(f"{k} {v['block_se']:.2f}/{v['halves_rmse_over_2']:.2f}" for k, v in unc.items())
                 + f"; CPU {info.get('cpu_hours_total')} h\n")
    out = args.out or os.path.join(args.root, "report.md")
    with open(out, "w") as fh:
        fh.write(text)
    figure(runs, args.figure)
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
