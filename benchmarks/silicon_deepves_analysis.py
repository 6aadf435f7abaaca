"""Analysis of a silicon Deep-VES run (issue 16, item 5): F(CV), the CV time series, transitions, schedule times.

``PYTHONPATH=. python benchmarks/silicon_deepves_analysis.py RUN --atoms 64 [--t-min PS]`` reads
``RUN/colvar``, ``RUN/ves.log`` and ``RUN/fes_bias.dat`` (the updater's files) and writes into RUN:

* ``silicon_cv.png`` — number of cubic-diamond atoms against time (ns), with the state thresholds;
* ``silicon_fes.png`` — F(CV) from the bias (F = −V − kT ln p, ``fes_bias.dat``) and reweighted
  (histogram of the colvar with weights exp(rbias/kT), rbias = V − c(t), frames from ``--t-min``);
* ``silicon_ves.png`` — KL divergence and learning rate per iteration;
* ``silicon_summary.txt`` — the numbers printed: transitions, the minima and barrier of both F(CV) (k_BT
  above the crystal minimum; ΔF of the basins from their integrated probabilities; reweighted bins with
  fewer than ``--min-count`` frames left out), the times of the KL
  threshold and of the freeze, and the earliest freeze the schedule allows (``RUN/checkpoint.pt`` gives
  τ_decay and the freeze ratio: threshold time + (n − 1) iterations, see
  :attr:`~openmm_nnbias.ves.schedule.LearningRateSchedule.decays_to_freeze`).

States (hysteresis): liquid while CV < ``--liquid`` × N, crystal while CV > ``--crystal`` × N
(defaults 0.15 and 0.85; the liquid at 1 700 K gives ≈ 0–3 % of N, the hot crystal ≈ 99 %). A
transition is a change of state; excursions between the thresholds that return are not counted.
Units: time ps (plots ns), energies kJ/mol and k_BT, CV in atoms.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from openmm_nnbias._units import KB
from openmm_nnbias.analysis import read_colvar, read_grid_file, reweight_colvar
from openmm_nnbias.ves.schedule import LearningRateSchedule

__all__ = ["states", "transitions", "schedule_times", "schedule_config", "kl_threshold_of", "landmarks",
           "freeze_projection", "analyse"]


def states(cv: np.ndarray, n_atoms: int, liquid: float = 0.15, crystal: float = 0.85) -> np.ndarray:
    """State per frame: 0 liquid, 1 crystal, −1 before the first state is reached (hysteresis)."""
    out = np.empty(len(cv), dtype=int)
    state = -1
    for k, v in enumerate(cv):
        if v < liquid * n_atoms:
            state = 0
        elif v > crystal * n_atoms:
            state = 1
        out[k] = state
    return out


def transitions(cv: np.ndarray, times: np.ndarray, n_atoms: int, liquid: float = 0.15, crystal: float = 0.85):
    """``[(time_ps, "melting" | "crystallization"), ...]`` of the state changes of :func:`states`."""
    s = states(cv, n_atoms, liquid, crystal)
    change = np.nonzero((s[1:] != s[:-1]) & (s[:-1] >= 0))[0] + 1
    return [(float(times[k]), "crystallization" if s[k] == 1 else "melting") for k in change]


def schedule_times(log_path: str, threshold: float = 0.5) -> dict:
    """Simulated times (ps) of the first KL < threshold and of the freeze, from ``ves.log`` (None if not yet)."""
    rows = [ln.split() for ln in open(log_path) if ln.strip() and not ln.startswith("#")]
    t = np.array([float(r[1]) for r in rows])
    kl = np.array([float(r[3]) for r in rows])
    phase = [r[6] for r in rows]
    below = np.nonzero(kl < threshold)[0]
    frozen = [k for k, p in enumerate(phase) if p == "frozen"]
    return dict(t_end=float(t[-1]) if len(t) else 0.0, iterations=len(rows),
                kl_last=float(kl[-1]) if len(kl) else float("nan"),
                t_kl=float(t[below[0]]) if len(below) else None, t_frozen=float(t[frozen[0]]) if frozen else None,
                t=t, kl=kl, lr=np.array([float(r[4]) for r in rows]))


def landmarks(axis: np.ndarray, f: np.ndarray, n_atoms: int, kT: float, liquid: float = 0.15,
              crystal: float = 0.85) -> dict:
    """Minima of the liquid (CV < liquid N) and crystal (CV > crystal N) basins and the barrier between them.

    Energies in k_BT above the crystal minimum; ``dF_basins`` = −ln(P_liquid / P_crystal) from the
    probabilities integrated over the two basins (bins without data count as empty). NaN where a basin
    has no finite value.
    """
    axis, f = np.asarray(axis, float), np.asarray(f, float) / kT
    ok = np.isfinite(f)
    liq, xtal = ok & (axis < liquid * n_atoms), ok & (axis > crystal * n_atoms)
    if not (liq.any() and xtal.any()):
        return dict(f_liquid=np.nan, f_crystal=np.nan, barrier=np.nan, dF_basins=np.nan, cv_liquid=np.nan,
                    cv_crystal=np.nan, cv_barrier=np.nan)
    i_l = np.flatnonzero(liq)[np.argmin(f[liq])]
    i_c = np.flatnonzero(xtal)[np.argmin(f[xtal])]
    between = np.arange(min(i_l, i_c), max(i_l, i_c) + 1)
    between = between[ok[between]]
    i_b = between[np.argmax(f[between])]
    f0 = f[i_c]
    p = np.where(ok, np.exp(-(f - f0)), 0.0)
    return dict(f_liquid=float(f[i_l] - f0), f_crystal=0.0, barrier=float(f[i_b] - f0),
                dF_basins=float(-np.log(p[liq].sum() / p[xtal].sum())), cv_liquid=float(axis[i_l]),
                cv_crystal=float(axis[i_c]), cv_barrier=float(axis[i_b]))


def schedule_config(run: str) -> dict:
    """The ``schedule`` options of ``RUN/checkpoint.pt`` (tauDecay, freezeRatio, decay triggers, ...)."""
    import torch

    return torch.load(os.path.join(run, "checkpoint.pt"), map_location="cpu", weights_only=False)["config"]["schedule"]


def kl_threshold_of(sched: dict, default: float = 0.5) -> float:
    """The KL threshold of the run's decay trigger (``default`` if it has none)."""
    for name, kwargs in sched.get("decay") or []:
        if name == "KLThreshold":
            return float(kwargs["threshold"])
    return default


def freeze_projection(run: str, t_kl_ps, iteration_ps: float) -> dict:
    """τ_decay, freeze ratio and decays to the freeze from ``RUN/checkpoint.pt``; earliest freeze time (ps).

    The earliest freeze is ``t_kl + (n − 1) × iteration`` (the KL staying below the threshold); None
    before the threshold is reached.
    """
    sched = schedule_config(run)
    n = LearningRateSchedule(tauDecay=sched["tauDecay"], freezeRatio=sched["freezeRatio"]).decays_to_freeze
    return dict(tauDecay=float(sched["tauDecay"]), freezeRatio=float(sched["freezeRatio"]), decays_to_freeze=n,
                decay_span_ps=(n - 1) * iteration_ps,
                t_freeze_earliest_ps=None if t_kl_ps is None else float(t_kl_ps + (n - 1) * iteration_ps))


def analyse(run: str, n_atoms: int, temperature: float = 1700.0, t_min: float = 0.0, liquid: float = 0.15,
            crystal: float = 0.85, every_ps: float = None, min_count: int = 20) -> dict:
    """Write the figures and the summary of ``run`` (see the module docstring); returns the numbers.

    ``min_count``: bins of the reweighted F with fewer colvar frames are left out of its landmarks.
    ``every_ps`` keeps only the colvar rows at multiples of it (a run restored from the 1-ps archive of
    ``benchmarks/long_runs.sh`` has 1-ps rows before the restore and denser ones after).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kT = KB * temperature
    col = read_colvar(os.path.join(run, "colvar"), every=every_ps)
    t, cv = col["time"], col["n_diamond"]
    trans = transitions(cv, t, n_atoms, liquid, crystal)
    threshold = kl_threshold_of(schedule_config(run))
    sched = schedule_times(os.path.join(run, "ves.log"), threshold)
    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.plot(t / 1000, cv, ",", alpha=0.6)
    for f in (liquid, crystal):
        ax.axhline(f * n_atoms, color="gray", lw=0.6, ls="--")
    ax.set_xlabel("time (ns)")
    ax.set_ylabel("cubic-diamond atoms (atoms)")
    ax.set_ylim(-1, n_atoms + 1)
    fig.tight_layout()
    fig.savefig(os.path.join(run, "silicon_cv.png"), dpi=110)
    plt.close(fig)
    pts, f_bias, _ = read_grid_file(os.path.join(run, "fes_bias.dat"))
    f_bias = f_bias - np.min(f_bias)
    (axis,), f_rw = reweight_colvar(os.path.join(run, "colvar"), kT, bins=n_atoms, column="rbias", t_min=t_min,
                                    periodic=[False], lower=[0.0], upper=[float(n_atoms)], every=every_ps)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(np.ravel(pts), f_bias / kT, label="from the bias, −V − kT ln p")
    ax.plot(axis, f_rw / kT, "o", ms=3, label=f"reweighted (t ≥ {t_min / 1000:g} ns)")
    ax.set_xlabel("cubic-diamond atoms (atoms)")
    ax.set_ylabel(f"F ($k_BT$, T = {temperature:g} K)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(run, "silicon_fes.png"), dpi=110)
    plt.close(fig)
    fig, axes = plt.subplots(2, 1, figsize=(6, 4), sharex=True)
    axes[0].semilogy(sched["t"] / 1000, sched["kl"])
    axes[0].axhline(threshold, color="gray", lw=0.6, ls="--")
    axes[0].set_ylabel("KL divergence")
    axes[1].semilogy(sched["t"] / 1000, np.where(sched["lr"] > 0, sched["lr"], np.nan))
    axes[1].set_ylabel("learning rate")
    axes[1].set_xlabel("time (ns)")
    fig.tight_layout()
    fig.savefig(os.path.join(run, "silicon_ves.png"), dpi=110)
    plt.close(fig)
    finite = np.isfinite(f_rw)
    marks_bias = landmarks(np.ravel(pts), f_bias, n_atoms, kT, liquid, crystal)
    # sparse bins of the reweighted F carry one or two frames of large weight: keep them out of the landmarks
    counts, _ = np.histogram(cv[t >= t_min], bins=n_atoms, range=(0.0, float(n_atoms)))
    marks_rw = landmarks(axis, np.where(counts >= min_count, f_rw, np.inf), n_atoms, kT, liquid, crystal)
    iteration_ps = float(np.median(np.diff(sched["t"]))) if len(sched["t"]) > 1 else float("nan")
    proj = freeze_projection(run, sched["t_kl"], iteration_ps)
    numbers = dict(t_end_ns=t[-1] / 1000, transitions=len(trans), melting=sum(k == "melting" for _, k in trans),
                   crystallization=sum(k == "crystallization" for _, k in trans),
                   first_transitions_ps=[round(x, 1) for x, _ in trans[:6]],
                   cv_min=float(cv.min()), cv_max=float(cv.max()), iterations=sched["iterations"],
                   kl_last=sched["kl_last"], t_kl_ps=sched["t_kl"], t_frozen_ps=sched["t_frozen"],
                   f_bias_range_kT=float(np.ptp(f_bias) / kT),
                   f_reweighted_range_kT=float(np.ptp(f_rw[finite]) / kT) if finite.any() else float("nan"),
                   reweighted_bins_visited=int(finite.sum()),
                   **{f"bias_{k}": round(v, 2) for k, v in marks_bias.items()},
                   **{f"reweighted_{k}": round(v, 2) for k, v in marks_rw.items()},
                   **proj)
    text = "\n".join(f"{k}: {v}" for k, v in numbers.items())
    with open(os.path.join(run, "silicon_summary.txt"), "w") as fh:
        fh.write(text + "\n")
    print(text)
    return numbers


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run")
    p.add_argument("--atoms", type=int, required=True, help="number of atoms (the CV's upper bound)")
    p.add_argument("--temperature", type=float, default=1700.0, help="K")
    p.add_argument("--t-min", type=float, default=0.0, help="first frame of the reweighting (ps)")
    p.add_argument("--liquid", type=float, default=0.15, help="liquid below this fraction of the atoms")
    p.add_argument("--crystal", type=float, default=0.85, help="crystal above this fraction of the atoms")
    p.add_argument("--every-ps", type=float, default=None,
                   help="use only colvar rows at multiples of this time (ps); 1 for a run restored from its archive")
    p.add_argument("--min-count", type=int, default=20,
                   help="bins of the reweighted F with fewer frames are left out of its minima and barrier")
    a = p.parse_args()
    analyse(a.run, a.atoms, a.temperature, a.t_min, a.liquid, a.crystal, a.every_ps, a.min_count)
