"""Deep-VES on the rotated Wolfe-Quapp potential with x as the only (suboptimal) CV.

    python examples/wolfe_quapp_deepves.py --steps 2000000 --out wq_run

Paper settings are stride 500, τ_KL (tauKL) 50 000 and τ_decay (tauDecay) 5 000 iterations (10^8 steps to freeze);
the defaults below shorten the schedule so the bias freezes within ~1.5·10^6 steps.
"""

import argparse

import torch
import openmm as mm
from openmm import app

from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
from openmm_nnbias.recipes import get_recipe
from openmm_nnbias.systems import exact_free_energy_x_wolfe_quapp, wolfe_quapp
from openmm_nnbias.ves import DeepVESUpdater, ExecutionOptions, KLThreshold, ScheduleOptions, WellTempered


RECIPE = get_recipe("wolfe-quapp")  # x on [-3, 3] nm, k_B T = 1 kJ/mol, 5 fs, friction 10/ps


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2_000_000)
    p.add_argument("--out", default="wq_run")
    p.add_argument("--tau-kl", type=float, default=2000)
    p.add_argument("--tau-decay", type=float, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bins", type=int, default=RECIPE.options["bins"], help="target grid (paper: 100 bins)")
    p.add_argument("--kl-threshold", type=float, default=0.5)
    p.add_argument("--after-freeze", type=int, default=None,
                   help="stop this many steps after the bias freezes (default: run all --steps)")
    p.add_argument("--precision", choices=["mixed", "double"], default="mixed",
                   help="optimizer network passes in float32 (mixed) or float64")
    p.add_argument("--platform", default=RECIPE.platform,
                   help="Reference is ~100x faster than CPU for this one-particle system")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    ms = wolfe_quapp()                                   # one particle, k_B T = 1 kJ/mol
    cvs = RECIPE.buildCVs(ms)
    bias = NeuralBias.from_cvs(cvs, hidden=RECIPE.options["hidden"], seed=args.seed)  # [48, 24, 12], ReLU
    force = NeuralBiasForce(cvs, bias, backend="table")  # 1D table, refreshed every iteration
    force.addToSystem(ms.system)  # before the Simulation (its Context) is created

    integrator = RECIPE.integrator(seed=args.seed)
    platform = mm.Platform.getPlatformByName(args.platform)
    sim = app.Simulation(ms.topology, ms.system, integrator, platform,
                         {"Threads": "1"} if args.platform == "CPU" else {})
    sim.context.setPositions(ms.positions)

    stride = RECIPE.options["stride"]
    schedule = ScheduleOptions(tauKL=args.tau_kl, tauDecay=args.tau_decay, decay=KLThreshold(args.kl_threshold))
    updater = DeepVESUpdater(force, ms.temperature, target=WellTempered(biasFactor=10, bins=args.bins),
                             stride=stride, sampleStride=10, schedule=schedule, outputs=args.out,
                             execution=ExecutionOptions(precision=args.precision))
    sim.reporters.append(updater)
    if args.after_freeze is None:
        sim.step(args.steps)
    else:  # in blocks of one iteration until frozen, then a fixed stretch of static-bias sampling
        while sim.currentStep < args.steps and not updater.optimizer.frozen:
            sim.step(stride)
        sim.step(min(args.after_freeze, max(0, args.steps - sim.currentStep)))
    updater.finish()  # the last step, bias.pt, FES files, checkpoint

    # compare with the exact F(x) (numerical integral over y), RMSE over F < 5 kT
    from openmm_nnbias.analysis import fes_rmse

    x = updater.gridAxes()[0]
    exact = exact_free_energy_x_wolfe_quapp(x)
    rmse_bias, n = fes_rmse(updater.getFreeEnergyFromBias(), exact, 5.0)
    print(f"phase {updater.optimizer.phase}; FES from bias: RMSE {rmse_bias:.3f} kT over {n} points")
    avg = updater.getAveragedFreeEnergyFromBias()  # average over the decay phase
    if avg is not None:
        print(f"decay-averaged FES from bias: RMSE {fes_rmse(avg, exact, 5.0)[0]:.3f} kT")
    rw = updater.getReweightedFreeEnergy()
    if rw is not None:
        print(f"reweighted FES: RMSE {fes_rmse(rw, exact, 5.0)[0]:.3f} kT")
    return updater


if __name__ == "__main__":
    main()
