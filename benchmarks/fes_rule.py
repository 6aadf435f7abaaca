"""Which FES estimate should ``fes.dat`` hold while a Deep-VES bias learns? Offline, from the race's run folders.

Usage::

    python benchmarks/fes_rule.py benchmarks/out/race_p5/deepves-it100s2p5avg/{1,2,3,4} [--reference PATH]

For every 0.25 ns of a run (``snapshots/`` of ``benchmarks/race.py``, ``ves/colvar``) it scores against the
race's reference (F(φ) RMSE after the best shift, kJ/mol, F_ref < 20):

- ``eq4``: Eq. 4 averaged over the last quarter of the run (the ``avg_quarter`` snapshot);
- ``rw``: frames of the last half reweighted with exp(β(V − c(t))) (the ``rbias`` column of ``colvar``);
- the rules that pick or combine them from their own error estimates, with no reference: each estimate's
  error is half the RMSE (after the best shift, over its own F < 20 kJ/mol) between the estimates of the
  two halves of its window, a block estimate that sees both noise and drift.
  ``pick``: the one with the smaller error; ``mix``: F(φ) = (F_eq4/σ²_eq4 + F_rw/σ²_rw)/(1/σ²_eq4 + 1/σ²_rw);
- ``lr``: the learning rate over its initial value (``ves.log``), and ``rule``: the library's ``fes.dat``
  (``eq4`` while lr/lr0 > e^-3, ``ves.outputs.REWEIGHT_BELOW``, else ``rw``).

Prints one table per run and the median over runs, with the oracle (the better of ``eq4`` and ``rw`` by the
reference) for scale.
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import sys

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from race import default_reference  # noqa: E402
from race_score import KT, load_snapshot, marginal_phi, read_fes, score  # noqa: E402

from openmm_nnbias.analysis.compare import fes_rmse  # noqa: E402


def colvar(folder):
    """(time ps, phi, psi, rbias kJ/mol) arrays of ``<folder>/ves/colvar``."""
    df = pd.read_csv(os.path.join(folder, "ves", "colvar"), sep=r"\s+", comment="#", header=None,
                     names=["t", "phi", "psi", "bias", "rbias"], dtype=float)
    return df["t"].to_numpy(), df["phi"].to_numpy(), df["psi"].to_numpy(), df["rbias"].to_numpy()


def reweighted(phi, psi, rbias, n=50):
    """F(φ, ψ) (kJ/mol, min 0, +inf unvisited) on the n x n grid of the run's files from frames and V − c."""
    dx = 2 * math.pi / n
    i = np.floor((phi + math.pi) / dx).astype(int) % n
    j = np.floor((psi + math.pi) / dx).astype(int) % n
    lw = rbias / KT
    m = lw.max()
    w = np.zeros(n * n)
    np.add.at(w, i * n + j, np.exp(lw - m))
    with np.errstate(divide="ignore"):
        f = -KT * np.log(w.reshape(n, n))
    return f - f[np.isfinite(f)].min()


def half_error(f1, f2, cutoff=20.0):
    """Half the RMSE (after the best shift) of two F(φ) estimates over the points both have below ``cutoff``."""
    ok = np.isfinite(f1) & np.isfinite(f2)
    if ok.sum() < 3:
        return math.inf
    try:
        return 0.5 * fes_rmse(np.where(ok, f1, np.nan), np.where(ok, f2, np.inf), cutoff)[0]
    except ValueError:
        return math.inf


def shifted(f):
    return f - np.nanmin(np.where(np.isfinite(f), f, np.nan))


def learning_rates(folder):
    """(time ps, lr / lr0) of ``<folder>/ves/ves.log``."""
    df = pd.read_csv(os.path.join(folder, "ves", "ves.log"), sep=r"\s+", comment="#", header=None,
                     usecols=[1, 4], names=["t", "lr"], dtype=float)
    return df["t"].to_numpy(), df["lr"].to_numpy() / df["lr"].max()  # lr0: the learning phase's rate


def analyse(folder, reference):
    from openmm_nnbias.ves.outputs import REWEIGHT_BELOW

    t, phi, psi, rb = colvar(folder)
    t_lr, lr = learning_rates(folder)
    snaps = sorted(glob.glob(os.path.join(folder, "snapshots", "avg_quarter_*ns.npz")))
    rows = []
    for path in snaps:
        tn = float(os.path.basename(path)[len("avg_quarter_"):-len("ns.npz")])
        now = tn * 1000.0
        if now > t[-1] + 1:
            break
        axes_phi, axes_psi, fq = load_snapshot(path)
        _, _, fh = load_snapshot(path.replace("avg_quarter_", "avg_half_"))
        # Eq. 4 is averaged linearly: the average over [t/2, 3t/4] is 2 F_half − F_quarter up to a constant
        f_first = 2 * fh - fq
        e4 = marginal_phi(fq)
        err4 = half_error(marginal_phi(f_first), e4)
        a, mid = now / 2, 3 * now / 4
        sel1, sel2 = (t > a) & (t <= mid), (t > mid) & (t <= now)
        sel = sel1 | sel2
        frw = reweighted(phi[sel], psi[sel], rb[sel])
        rw = marginal_phi(frw)
        errrw = half_error(marginal_phi(reweighted(phi[sel1], psi[sel1], rb[sel1])),
                           marginal_phi(reweighted(phi[sel2], psi[sel2], rb[sel2])))
        # marginals back to 2-D-free scoring: score() takes (phi, psi, F); a 1-D estimate is given as F(φ, ψ) = F(φ)
        row = {"t_ns": tn, "eq4": score((axes_phi, axes_psi, fq), reference)["rmse_phi"],
               "rw": score((axes_phi, axes_psi, frw), reference)["rmse_phi"], "err_eq4": err4, "err_rw": errrw}
        pick = fq if err4 <= errrw else frw
        row["pick"] = score((axes_phi, axes_psi, pick), reference)["rmse_phi"]
        w4, wr = 1 / max(err4, 1e-6) ** 2, 1 / max(errrw, 1e-6) ** 2
        mix1d = np.where(np.isfinite(rw), (w4 * e4 + wr * np.where(np.isfinite(rw), rw, 0)) / (w4 + wr), e4)
        # a 1-D estimate as a 2-D grid constant in ψ: its φ marginal is itself (plus a constant)
        mix2d = np.repeat(shifted(mix1d)[:, None], len(axes_psi), axis=1)
        row["mix"] = score((axes_phi, axes_psi, mix2d), reference)["rmse_phi"]
        row["oracle"] = np.nanmin([row["eq4"], row["rw"]])
        row["lr"] = lr[np.searchsorted(t_lr, now - 1e-6)]
        row["rule"] = row["eq4"] if row["lr"] > REWEIGHT_BELOW else row["rw"]
        # how far the bias moved over the window: F(φ) of Eq. 4 now against at the window's start (nearest snapshot)
        start = os.path.join(folder, "snapshots", f"bias_{0.25 * max(1, round(tn / 2 / 0.25)):.3f}ns.npz")
        row["drift"] = 2 * half_error(marginal_phi(load_snapshot(start)[2]),
                                      marginal_phi(load_snapshot(path.replace("avg_quarter_", "bias_"))[2]))
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+")
    p.add_argument("--reference", default=None)
    args = p.parse_args(argv)
    reference = read_fes(args.reference or default_reference())
    tables = []
    for folder in args.folders:
        df = analyse(folder, reference)
        print(f"== {folder}")
        print(df.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
        tables.append(df.set_index("t_ns"))
    common = sorted(set.intersection(*[set(d.index) for d in tables]))
    med = pd.concat([d.loc[common] for d in tables]).groupby(level=0).median()
    print(f"== median over {len(tables)} runs")
    print(med.to_string(float_format=lambda x: f"{x:.2f}"))


if __name__ == "__main__":
    main()
