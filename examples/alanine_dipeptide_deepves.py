"""Deep-VES on alanine dipeptide (vacuum, Amber99SB, 300 K) over phi and psi.

    python examples/alanine_dipeptide_deepves.py --steps 10000000 --out ala2_run

Settings as in the paper (the recipe :data:`openmm_nnbias.recipes.DEEPVES_RECIPES`): bias factor 10,
one optimizer step per 500 MD steps (1 ps), τ_KL (tauKL) 10 000 and τ_decay (tauDecay) 1 000 iterations, KL
threshold 0.5, 50x50 target grid, 300 K, 2 fs, friction 1/ps.
"""

import argparse

import torch
import openmm as mm
from openmm import app, unit

from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
from openmm_nnbias.recipes import get_recipe
from openmm_nnbias.systems import alanine_dipeptide
from openmm_nnbias.ves import DeepVESUpdater, KLThreshold, ScheduleOptions, WellTempered


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10_000_000)
    p.add_argument("--out", default="ala2_run")
    p.add_argument("--backend", default="table", choices=["table", "torch"])
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    recipe = get_recipe("alanine-dipeptide")
    opts = recipe.options
    pep = alanine_dipeptide()
    # phi/psi are found by residue and atom name: C(ACE)-N-CA-C and N-CA-C-N(NME)
    cvs = recipe.buildCVs(pep)
    bias = NeuralBias.from_cvs(cvs, hidden=opts["hidden"], seed=1)
    force = NeuralBiasForce(cvs, bias, backend=args.backend)
    force.addToSystem(pep.system)  # before the Simulation (its Context) is created

    temperature = recipe.temperature * unit.kelvin
    sim = app.Simulation(pep.topology, pep.system, recipe.integrator(), mm.Platform.getPlatformByName("CPU"),
                         {"Threads": "1"})
    sim.context.setPositions(pep.positions)
    sim.context.setVelocitiesToTemperature(temperature)

    # the paper's Ala2 schedule
    schedule = ScheduleOptions(tauKL=opts["tauKL"], tauDecay=opts["tauDecay"], decay=KLThreshold(0.5))
    updater = DeepVESUpdater(force, temperature, target=WellTempered(biasFactor=10, bins=opts["bins"]),
                             stride=opts["stride"], sampleStride=10, schedule=schedule, outputs=args.out)
    sim.reporters.append(updater)
    sim.step(args.steps)
    updater.finish()  # the last step, bias.pt, FES files, checkpoint
    last = updater.history[-1]
    print(f"{sim.currentStep * recipe.timestep / 1000:.3f} ns: KL {last['kl']:.3f}, phase {last['phase']}; "
          f"bias energy now {force.getBiasEnergy(sim)}")
    return updater


if __name__ == "__main__":
    main()
