"""Load a learned bias.pt into your own System, run production with the static bias, reweight.

    python examples/static_bias_reweighting.py --bias ala2_run/bias.pt --steps 2500000 --out prod

The bias file is self-contained TorchScript (CVs + network); the System only needs the same
atom numbering. Frames are weighted by exp(+V/kT) (Eq. 11) to recover the unbiased F(phi, psi).
"""

import argparse
import os

import numpy as np
import torch
import openmm as mm
from openmm import app, unit

from openmm_nnbias._units import KB
from openmm_nnbias.analysis import write_grid_file
from openmm_nnbias.bias import load_bias
from openmm_nnbias.systems import alanine_dipeptide
from openmm_nnbias.ves import CVGrid, reweighted_fes

KT = KB * 300.0  # kJ/mol


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bias", required=True)
    p.add_argument("--steps", type=int, default=2_500_000)
    p.add_argument("--every", type=int, default=50, help="MD steps between frames")
    p.add_argument("--out", default="prod")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    pep = alanine_dipeptide()                     # stands for "your own System"
    force = load_bias(args.bias, forceGroup=30)   # a static TorchForce
    pep.system.addForce(force)
    module = torch.jit.load(args.bias)            # the same module, for CVs and V(s) in analysis

    integrator = mm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 2 * unit.femtosecond)
    sim = app.Simulation(pep.topology, pep.system, integrator, mm.Platform.getPlatformByName("CPU"),
                         {"Threads": "1"})
    sim.context.setPositions(pep.positions)
    frames = []
    for _ in range(args.steps // args.every):
        sim.step(args.every)
        frames.append(sim.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    x = torch.tensor(np.array(frames), dtype=torch.float64)
    with torch.no_grad():
        s = module.cv_values(x)
        v = module.bias_from_cvs(s)
    grid = CVGrid([-np.pi, -np.pi], [np.pi, np.pi], [50, 50], [True, True])
    fes = reweighted_fes(s, v, grid, KT).reshape(50, 50).numpy()
    axis = np.unique(grid.points[:, 0].numpy())
    write_grid_file(os.path.join(args.out, "fes_reweighted.dat"), list(module.cv_names), [axis, axis], fes,
                    [True, True])
    print(f"{len(frames)} frames; wrote {args.out}/fes_reweighted.dat")
    return fes


if __name__ == "__main__":
    main()
