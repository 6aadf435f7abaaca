"""F(number of cubic-diamond atoms) of a frozen silicon Deep-VES run, three ways, with block errors.

``PYTHONPATH=. python benchmarks/silicon_static_fes.py RUN --atoms 216 [--blocks 5] [--every-ps 1]``
reads the updater's files in RUN and writes into RUN:

* ``fes_static_frozen_bias.dat`` — F = −V − kT ln p of the frozen bias (Eq. 4; ``fes_bias.dat`` as the
  updater wrote it after the freeze);
* ``fes_static_decay_average.dat`` — the average of Eq. 4 over the decay phase (``fes_bias_avg.dat``);
* ``fes_static_reweighted.dat`` — Eq. 11 over the frames after the freeze (weights exp(V/kT) of the
  static bias), and ``fes_static_reweighted_error.dat`` — its standard error from ``--blocks`` blocks;
* ``silicon_static_fes.png`` — the three F(CV) (k_BT) with the error band;
* ``silicon_static_summary.txt`` — per estimator the minima, the barrier top and height, ΔF(liquid −
  crystal) by basin integration (k_BT above the crystal minimum; :func:`landmarks`), the reweighted ones as
  mean ± standard error over the blocks; the agreement of the estimators (RMSE and largest difference
  between each pair, :func:`agreement`); the transitions in the static phase; the times of the KL
  threshold and of the freeze.

The freeze time is the first ``frozen`` row of ``ves.log``; a run that is not frozen is an error (its FES
is not an answer). All files in kJ/mol on the CV grid of ``fes_bias.dat`` (atoms); plots in k_BT.
"""

from __future__ import annotations

import argparse
import os
import warnings

import numpy as np

from openmm_nnbias._units import KB
from openmm_nnbias.analysis import read_colvar, read_grid_file
from openmm_nnbias.analysis.histogram import histogram_fes
from openmm_nnbias.io import write_grid_file
from silicon_deepves_analysis import landmarks, schedule_times, transitions

__all__ = ["static_frames", "block_estimates", "agreement", "analyse_static"]


def static_frames(run: str, every_ps=None) -> tuple:
    """``(t_freeze_ps, t_kl_ps, colvar rows after the freeze)``; ValueError when the run never froze."""
    sched = schedule_times(os.path.join(run, "ves.log"))
    if sched["t_frozen"] is None:
        raise ValueError(f"{run}: the bias is not frozen (no 'frozen' row in ves.log); its FES is not an answer yet")
    col = read_colvar(os.path.join(run, "colvar"), every=every_ps)
    keep = col["time"] > sched["t_frozen"]
    if keep.sum() < 2:
        raise ValueError(f"{run}: no frames after the freeze at {sched['t_frozen']:g} ps")
    return sched["t_frozen"], sched["t_kl"], {k: v[keep] for k, v in col.items()}


def block_estimates(cv, bias, kT: float, n_atoms: int, blocks: int) -> tuple:
    """Reweighted F (kJ/mol, min 0) of all frames and of each of ``blocks`` consecutive blocks, on ``n_atoms`` bins."""
    def fes(s, v):
        return histogram_fes(s[:, None], v / kT, kT, [0.0], [float(n_atoms)], [n_atoms], [False])

    parts = [fes(c, b) for c, b in zip(np.array_split(cv, blocks), np.array_split(bias, blocks))]
    return fes(cv, bias), parts


def _mean_error(values) -> tuple:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return (float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v)))) if len(v) > 1 else (float("nan"),) * 2


def agreement(curves: dict, kT: float) -> dict:
    """RMSE and largest |difference| (k_BT) between each pair of estimators, after the best constant shift,
    over the CV bins where all of them are finite (the curves share one grid)."""
    names = list(curves)
    ok = np.logical_and.reduce([np.isfinite(curves[n][1]) for n in names])
    out = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            d = (curves[a][1] - curves[b][1])[ok]
            d = d - d.mean()
            out[f"agreement_{a}_vs_{b}_kT"] = f"RMSE {np.sqrt(np.mean(d ** 2)) / kT:.2f}, max {np.abs(d).max() / kT:.2f}"
    out["agreement_bins"] = int(ok.sum())
    return out


def analyse_static(run: str, n_atoms: int, temperature: float = 1700.0, blocks: int = 5, every_ps=None,
                   liquid: float = 0.15, crystal: float = 0.85) -> dict:
    """Write the three F(CV) and the summary of a frozen run; returns the summary numbers."""
    kT = KB * temperature
    t_freeze, t_kl, col = static_frames(run, every_ps)
    cv, bias = col["n_diamond"], col["bias"]
    f_rw, parts = block_estimates(cv, bias, kT, n_atoms, blocks)
    axis = (np.arange(n_atoms) + 0.5)
    with np.errstate(all="ignore"), warnings.catch_warnings():  # bins seen in fewer than two blocks: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        err = np.nanstd(np.where(np.isfinite(parts), parts, np.nan), axis=0, ddof=1) / np.sqrt(blocks)
    pts, f_bias, _ = read_grid_file(os.path.join(run, "fes_bias.dat"))
    curves = {"frozen_bias": (np.ravel(pts), f_bias - np.min(f_bias))}
    avg_path = os.path.join(run, "fes_bias_avg.dat")
    if os.path.exists(avg_path):
        pa, fa, _ = read_grid_file(avg_path)
        curves["decay_average"] = (np.ravel(pa), fa - np.min(fa))
    curves["reweighted"] = (axis, f_rw)
    for name, (x, f) in curves.items():
        write_grid_file(os.path.join(run, f"fes_static_{name}.dat"), ["n_diamond"], [x], f, [False],
                        units=["1"], lower=[0.0], upper=[float(n_atoms)])
    write_grid_file(os.path.join(run, "fes_static_reweighted_error.dat"), ["n_diamond"], [axis], err, [False],
                    field="error", units=["1"], lower=[0.0], upper=[float(n_atoms)])
    trans = transitions(cv, col["time"], n_atoms, liquid, crystal)
    numbers = dict(t_kl_ps=t_kl, t_freeze_ps=t_freeze, static_ns=float((col["time"][-1] - t_freeze) / 1000),
                   static_frames=int(len(cv)), blocks=blocks, static_transitions=len(trans))
    for name, (x, f) in curves.items():
        numbers.update({f"{name}_{k}": round(v, 2) for k, v in landmarks(x, f, n_atoms, kT, liquid, crystal).items()})
    per_block = [landmarks(axis, p, n_atoms, kT, liquid, crystal) for p in parts]
    for key in ("barrier", "dF_basins", "cv_barrier", "f_liquid"):
        mean, se = _mean_error([m[key] for m in per_block])
        numbers[f"reweighted_blocks_{key}"] = f"{mean:.2f} ± {se:.2f}"
    numbers.update(agreement(curves, kT))
    numbers["reweighted_median_bin_error_kT"] = round(float(np.nanmedian(err[np.isfinite(f_rw)]) / kT), 2)
    _plot(run, curves, err, kT, temperature)
    text = "\n".join(f"{k}: {v}" for k, v in numbers.items())
    with open(os.path.join(run, "silicon_static_summary.txt"), "w") as fh:
        fh.write(text + "\n")
    print(text)
    return numbers


def _plot(run, curves, err, kT, temperature) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    labels = {"frozen_bias": "frozen bias (Eq. 4)", "decay_average": "decay-phase average of Eq. 4",
              "reweighted": "reweighted, static-bias frames (Eq. 11)"}
    for name, (x, f) in curves.items():
        ax.plot(x, f / kT, label=labels[name])
    x, f = curves["reweighted"]
    ax.fill_between(x, (f - err) / kT, (f + err) / kT, alpha=0.3, color="C2", lw=0)
    ax.set_xlabel("cubic-diamond atoms (atoms)")
    ax.set_ylabel(f"F ($k_BT$, T = {temperature:g} K)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(run, "silicon_static_fes.png"), dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--atoms", type=int, required=True, help="number of atoms (the CV's upper bound)")
    p.add_argument("--temperature", type=float, default=1700.0, help="K")
    p.add_argument("--blocks", type=int, default=5, help="blocks of the static-bias frames for the errors")
    p.add_argument("--every-ps", type=float, default=None, help="keep only colvar rows at multiples of this (ps)")
    p.add_argument("--liquid", type=float, default=0.15, help="liquid below this fraction of the atoms")
    p.add_argument("--crystal", type=float, default=0.85, help="crystal above this fraction of the atoms")
    a = p.parse_args(argv)
    analyse_static(a.run, a.atoms, a.temperature, a.blocks, a.every_ps, a.liquid, a.crystal)


if __name__ == "__main__":
    main()
