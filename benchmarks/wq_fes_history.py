"""Wolfe–Quapp (x only): RMSE of the FES from the bias (Eq. 4) against the exact F(x) along the
run, and of averages of that FES over the decay phase (learning-rate weighted, uniform over
iterations, uniform over the last τ_decay iterations), to see which estimator to trust at the freeze.

    python benchmarks/wq_fes_history.py --out benchmarks/out/wq_history

Same settings as ``examples/wolfe_quapp_deepves.py --tau-kl 5000 --tau-decay 5000`` (100 bins, γ 10,
stride 500, samples every 10 steps, seed 1); runs until the bias freezes. Every 100 iterations it
records the Eq. 4 FES; writes ``fes_history.npz`` and prints one line per record.
"""

import argparse
import os

import numpy as np
import openmm as mm
import torch
from openmm import app

from openmm_nnbias.analysis import fes_rmse
from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
from openmm_nnbias.recipes import get_recipe
from openmm_nnbias.systems import exact_free_energy_x_wolfe_quapp, wolfe_quapp
from openmm_nnbias.ves import DeepVESUpdater, ScheduleOptions, WellTempered


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/out/wq_history")
    p.add_argument("--tau-kl", type=float, default=5000)
    p.add_argument("--tau-decay", type=float, default=5000)
    p.add_argument("--max-steps", type=int, default=100_000_000)
    a = p.parse_args()
    torch.set_num_threads(1)
    ms = wolfe_quapp()
    recipe = get_recipe("wolfe-quapp")
    opts = recipe.options
    cvs = recipe.buildCVs(ms)
    bias = NeuralBias.from_cvs(cvs, hidden=opts["hidden"], seed=1)
    force = NeuralBiasForce(cvs, bias, backend="table")
    force.addToSystem(ms.system)
    sim = app.Simulation(ms.topology, ms.system, recipe.integrator(seed=1),
                         mm.Platform.getPlatformByName(recipe.platform))
    sim.context.setPositions(ms.positions)
    up = DeepVESUpdater(force, ms.temperature, target=WellTempered(biasFactor=10, bins=opts["bins"]),
                        stride=opts["stride"], sampleStride=10,
                        schedule=ScheduleOptions(tauKL=a.tau_kl, tauDecay=a.tau_decay), outputs=a.out)
    sim.reporters.append(up)
    x = up.gridAxes()[0]
    exact = exact_free_energy_x_wolfe_quapp(x)
    its, lrs, phases, fes = [], [], [], []
    while not up.optimizer.frozen and sim.currentStep < a.max_steps:
        sim.step(opts["stride"] * 100)
        h = up.history[-100:]
        its.append(h[-1]["iteration"])
        lrs.append(sum(r["lr"] for r in h))  # total step size of these 100 iterations
        phases.append(h[-1]["phase"])
        fes.append(up.getFreeEnergyFromBias())
        r, n = fes_rmse(fes[-1], exact, 5.0)
        print(f"it {its[-1]:6d} {phases[-1]:9s} lr {h[-1]['lr']:.3g} KL {h[-1]['kl']:.3f} RMSE {r:.3f} kT", flush=True)
    its, lrs, fes = np.array(its), np.array(lrs), np.array(fes)
    np.savez(os.path.join(a.out, "fes_history.npz"), iterations=its, lr_sums=lrs, fes=fes, x=x, exact=exact,
             phases=np.array(phases))
    dec = np.array([ph != "learning" for ph in phases])
    shifted = fes - fes.min(axis=1, keepdims=True)
    last = its >= its[-1] - a.tau_decay
    for label, w in (("lr-weighted over decay", lrs * dec), ("uniform over decay", dec.astype(float)),
                     ("uniform over last tau_decay", (dec & last).astype(float))):
        avg = (w[:, None] * shifted).sum(0) / w.sum()
        print(f"{label:28s} RMSE {fes_rmse(avg, exact, 5.0)[0]:.3f} kT")
    print(f"at the freeze (it {its[-1]})        RMSE {fes_rmse(fes[-1], exact, 5.0)[0]:.3f} kT")


if __name__ == "__main__":
    main()
