"""The report of the tetrapeptide race (``benchmarks/race4.py report``): every snapshot rescored, a table, a figure.

Each run's snapshots (``<root>/<method>/<seed>/snapshots/<estimate>_<t>ns.npz``) are scored against the
reference (``race4_score.score``: per marginal the RMSE over F_ref < ``cutoff`` after the best shift, their mean).
Entries: each method's main estimate (``reweighted``), its second (``<method> (final)`` for WT-metaD and OPES,
``<method> (decay)`` for Deep-VES) and, for Deep-VES, the marginals of the bias itself by Eq. 4
(``<method> (eq4)``, ``race4_eq4.py``; made here once from the kept ``bias_<t>ns.pt``, for the snapshots that have
one) and their mean over the snapshots of the last quarter of the run so far (``<method> (eq4-window)``, the rule
of the package's ``fes.dat`` while the bias learns: ``ves.averaging.WindowedFES``; a row only where every snapshot
of its window has an ``eq4``). ``until`` drops the rows after a simulated time, so that runs of different lengths
are compared at one.
"""

from __future__ import annotations

import glob
import json
import math
import os
import warnings

import numpy as np

from race4_common import RMSE, TORSIONS
from race4_eq4 import CHUNKS, eq4_snapshots
from race4_score import CUTOFF, load_snapshot, score
from race_progress import read_rows, stat

__all__ = ["collect", "time_to", "table", "at_times", "md_equivalent", "at_cost", "figure", "report"]

#: ``eq4-window``: the ``eq4`` marginals averaged over the snapshots of this last fraction of the run so far
EQ4_WINDOW = 0.25


def _scored(folder, rows, name, reference, cutoff):
    """``rows`` with their RMSE columns from the snapshots ``<name>_<t>ns.npz`` (rows without one dropped)."""
    out = []
    for r in rows:
        snap = os.path.join(folder, "snapshots", f"{name(r) if callable(name) else name}_{float(r['t_ns']):.3f}ns.npz")
        if os.path.exists(snap):
            s = score(load_snapshot(snap), reference, cutoff)
            out.append(dict(r, **{k: s[k] for k in RMSE}, covered=s["covered"]))
    return out


def _eq4_window(folder, rows, reference, cutoff, fraction=EQ4_WINDOW):
    """Rows scored by the mean of the ``eq4`` marginals of the snapshots at t_now·(1 − fraction) ≤ t ≤ t_now."""
    out = []
    for r in rows:
        t = float(r["t_ns"])
        inside = [float(q["t_ns"]) for q in rows if t * (1 - fraction) - 1e-9 <= float(q["t_ns"]) <= t + 1e-9]
        snaps = [os.path.join(folder, "snapshots", f"eq4_{x:.3f}ns.npz") for x in inside]
        if not all(os.path.exists(p) for p in snaps):
            continue
        s = score(np.mean([load_snapshot(p) for p in snaps], axis=0), reference, cutoff)
        out.append(dict(r, **{k: s[k] for k in RMSE}, covered=s["covered"]))
    return out


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


def _final(values):
    """Median [min–max] of the seeds' last scores, and how many were scorable when not all."""
    v = np.array(values, float)
    fin = v[np.isfinite(v)]
    if not len(fin):
        return "–"
    text = f"{np.median(fin):.2f} [{fin.min():.2f}–{fin.max():.2f}]"
    return text if len(fin) == len(v) else text + f" ({len(fin)}/{len(v)} scorable)"


def collect(root, reference, methods=None, cutoff=CUTOFF, until=math.inf, eq4_chunks=CHUNKS):
    """``{entry: [rows per seed]}``: each method's main estimate, its second as ``<method> (<name>)`` and, for
    Deep-VES, ``<method> (eq4)`` (``eq4_chunks`` × 200 000 points where not yet made); rows up to ``until`` ns,
    rescored over F_ref < ``cutoff`` kJ/mol."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(root, "*", "*", "progress.csv"))):
        folder = os.path.dirname(path)
        method = os.path.basename(os.path.dirname(folder))
        if methods and method not in methods:
            continue
        rows = [r for r in read_rows(path) if float(r["t_ns"]) <= until + 1e-9]
        main = _scored(folder, rows, lambda r: r["estimate"], reference, cutoff)
        if not main:
            continue
        runs.setdefault(method, []).append(main)
        alt = rows[-1]["estimate_alt"]
        if alt and all(r["estimate_alt"] == alt for r in rows):
            runs.setdefault(f"{method} ({alt})", []).append(_scored(folder, rows, alt, reference, cutoff))
        if method.startswith("deepves"):
            eq4_snapshots(folder, eq4_chunks)
            for name, est in (("eq4", _scored(folder, rows, "eq4", reference, cutoff)),
                              ("eq4-window", _eq4_window(folder, rows, reference, cutoff))):
                if est:
                    runs.setdefault(f"{method} ({name})", []).append(est)
    return runs


def table(runs, reference_path, cutoff=CUTOFF):
    with warnings.catch_warnings():  # a marginal not yet scorable in any seed: nan medians
        warnings.simplefilter("ignore", RuntimeWarning)
        return _table(runs, reference_path, cutoff)


def _table(runs, reference_path, cutoff):
    lines = [
        f"Reference: `{os.path.relpath(reference_path)}`. Score: the mean over F(φ1), F(ψ1), F(φ2), F(ψ2), F(φ3), "
        f"F(ψ3) of the RMSE (kJ/mol) over F_ref < {cutoff:g} kJ/mol after the best constant shift. Main estimate: the "
        "run's colvar reweighted with exp(β(V − c(t))) over its last half (t ≥ t_now/2); in parentheses other "
        "estimates (WT-metaD/OPES `final`: the final bias, same window; Deep-VES `decay`: frames from the start of "
        "the learning-rate decay; Deep-VES `eq4`: the marginals of the bias itself by Eq. 4, integrated over the "
        "other five torsions, on the snapshots that kept their bias; `eq4-window`: those averaged over the snapshots "
        "of the last quarter of the run so far). Time to an RMSE: first scored time from "
        "which the score stays at or below the threshold (every scored bin estimated) to the end of the run; median "
        "[min–max over the seeds that reached it] (seeds reached / seeds). CPU time: user + system of the run's "
        "processes (a learner process included) for MD, bias and learning, without estimates and scoring, on one "
        "core.", "",
        "| method | to 1 kJ/mol (ns) | to 1 kJ/mol (CPU h) | to 0.5 kJ/mol (ns) | to 0.5 kJ/mol (CPU h) | "
        "final mean RMSE (kJ/mol) | final RMSE φ1 / ψ1 / φ2 / ψ2 / φ3 / ψ3 (median) | final time (ns) | "
        "CPU h per ns | speed vs unbiased MD |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for method, rr in sorted(runs.items()):
        ratio = np.median([np.nanmedian([_num(r["speed_ratio"]) for r in rows]) for rows in rr])
        per_ns = np.median([float(rows[-1]["cpu_s"]) / 3600 / float(rows[-1]["t_ns"]) for rows in rr])
        cells = [stat([time_to(rows, th, x) for rows in rr], scale)
                 for th in (1.0, 0.5) for x, scale in (("t_ns", 1.0), ("cpu_s", 1 / 3600))]
        final = _final([_num(rows[-1]["rmse_mean"]) for rows in rr])
        each = " / ".join(f"{np.nanmedian([_num(rows[-1][f'rmse_{t}']) for rows in rr]):.2f}" for t in TORSIONS)
        times = sorted({float(rows[-1]["t_ns"]) for rows in rr})
        tmax = f"{times[-1]:g}" if len(times) == 1 else f"{times[0]:g}–{times[-1]:g}"
        lines.append(f"| {method} | " + " | ".join(cells)
                     + f" | {final} | {each} | {tmax} | {per_ns:.3f} | {ratio:.2f} |")
    return "\n".join(lines) + "\n"


def _spread(values):
    """"median [min–max] (n)" of the finite values; "" when there are none."""
    vals = [v for v in values if math.isfinite(v)]
    return f"{np.median(vals):.2f} [{min(vals):.2f}–{max(vals):.2f}] ({len(vals)})" if vals else ""


def at_times(runs, times=(1, 2, 5, 10, 15, 20)):
    """Markdown table: each entry's mean marginal RMSE at fixed simulated times, median [min–max] (seeds there)."""
    present = sorted({float(r["t_ns"]) for rr in runs.values() for rows in rr for r in rows})
    times = [t for t in times if any(abs(t - x) < 1e-9 for x in present)]
    lines = ["| method | " + " | ".join(f"{t:g} ns" for t in times) + " |", "|---|" + "---|" * len(times)]
    for method, rr in sorted(runs.items()):
        cells = []
        for t in times:
            cells.append(_spread([_num(r["rmse_mean"]) for rows in rr for r in rows if abs(float(r["t_ns"]) - t) < 1e-9]))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return ("Mean RMSE of the six marginals (kJ/mol) at fixed simulated times: median [min–max] (seeds scored "
            "there).\n\n" + "\n".join(lines) + "\n")


def md_equivalent(rows):
    """Each row's cost so far in ns of unbiased MD: Σ seg_cpu_s / unbiased_cpu_s_per_ns over the segments up to it.

    Every segment's unbiased rate is measured right after it on the same core, so the sum does not depend on the
    speed of the machine that ran each segment (runs continued across machines)."""
    total, out = 0.0, []
    for r in rows:
        total += float(r["seg_cpu_s"]) / float(r["unbiased_cpu_s_per_ns"])
        out.append(total)
    return out


def at_cost(runs, md_ns=(5, 10, 25, 45)):
    """Markdown table: each entry's mean marginal RMSE for fixed budgets of CPU time, in ns of unbiased MD
    (:func:`md_equivalent`), median [min–max] (seeds scored there). A seed's value is that of its last snapshot
    within the budget; a seed whose whole run cost less than the budget has none (more CPU would have bought it a
    better estimate)."""
    lines = ["| method | " + " | ".join(f"{b:g} ns of MD" for b in md_ns) + " |", "|---|" + "---|" * len(md_ns)]
    for method, rr in sorted(runs.items()):
        costs = [md_equivalent(rows) for rows in rr]
        cells = []
        for budget in md_ns:
            vals = []
            for rows, cost in zip(rr, costs):
                within = [r for r, c in zip(rows, cost) if c <= budget + 1e-9]
                if within and cost[-1] >= budget - 1e-9:
                    vals.append(_num(within[-1]["rmse_mean"]))
            cells.append(_spread(vals))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return ("Mean RMSE of the six marginals (kJ/mol) for fixed budgets of CPU time, counted in ns of unbiased MD on "
            "the same core (the last snapshot within the budget; only seeds whose run used the whole budget): median "
            "[min–max] (seeds).\n\n" + "\n".join(lines) + "\n")


def figure(runs, path, cutoff=CUTOFF):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = {}
    styles = {"decay": ":", "final": "--", "eq4": "--", "eq4-window": "-."}
    times = sorted({float(r["t_ns"]) for rr in runs.values() for rows in rr for r in rows})  # a gap stays a gap
    for method, rr in sorted(runs.items()):
        y = np.full((len(rr), len(times)), np.nan)
        for i, rows in enumerate(rr):
            for r in rows:
                y[i, times.index(float(r["t_ns"]))] = _num(r["rmse_mean"])
        estimate = method[:-1].split(" (")[1] if method.endswith(")") else None  # another estimate: no band
        with warnings.catch_warnings():  # a time with no scorable seed: nan
            warnings.simplefilter("ignore", RuntimeWarning)
            med, lo, hi = np.nanmedian(y, axis=0), np.nanmin(y, axis=0), np.nanmax(y, axis=0)
        base = method.split(" (")[0]
        line, = ax.plot(times, med, styles.get(estimate, "--") if estimate else "-", lw=1 if estimate else 1.6,
                        color=colors.get(base), marker="." if estimate else None, ms=3,
                        label=f"{method} (median of {len(rr)})")
        colors.setdefault(base, line.get_color())
        if not estimate:
            ax.fill_between(times, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
    for th in (1.0, 0.5):
        ax.axhline(th, color="0.6", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("simulated time (ns)")
    ax.set_ylabel(f"mean RMSE of the six 1-D marginals (kJ/mol), F_ref < {cutoff:g}")
    ax.set_title("alanine tetrapeptide: Deep-VES (6 torsions) vs WT-metaD, OPES (φ1–φ3)", fontsize=9)
    ax.legend(fontsize=7)
    fig.text(0.5, 0.005, "band: min–max over seeds; dashed, dotted: other estimates of a method", ha="center", fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _reference_note(ref_path):
    ref_json = os.path.join(ref_path if os.path.isdir(ref_path) else os.path.dirname(ref_path), "reference.json")
    if not os.path.exists(ref_json):
        return ""
    info = json.load(open(ref_json))
    unc = info.get("uncertainty_kJmol", {})
    return ("\nReference (`" + os.path.relpath(ref_json) + "`): " + info.get("method", "") + f"; "
            f"{info.get('stage2_static_ns')} ns static-bias MD after {info.get('stage1_wtmetad_ns')} ns of WT-metaD; "
            "uncertainty per marginal (block SE / halves RMSE÷2, kJ/mol): "
            + ", ".join(f"{k} {v['block_se']:.2f}/{v['halves_rmse_over_2']:.2f}" for k, v in unc.items())
            + f"; CPU {info.get('cpu_hours_total')} h\n")


def report(root, reference, ref_path, out, figure_path, methods=None, cutoff=CUTOFF, until=math.inf,
           eq4_chunks=CHUNKS):
    """Write the markdown report ``out`` and the figure; returns the text."""
    runs = collect(root, reference, methods, cutoff, until, eq4_chunks)
    if not runs:
        raise SystemExit(f"no runs with progress.csv under {root}")
    scope = "" if not math.isfinite(until) else f" (up to {until:g} ns)"
    text = ("# Convergence race: alanine tetrapeptide in vacuum, six 1-D marginals" + scope + "\n\n"
            + table(runs, ref_path, cutoff) + "\n" + at_times(runs) + "\n" + at_cost(runs) + _reference_note(ref_path))
    with open(out, "w") as fh:
        fh.write(text)
    figure(runs, figure_path, cutoff)
    return text
