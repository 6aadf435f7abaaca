"""Cost per MD step of the protein CVs in the ``torch`` backend of NeuralBiasForce, on solvated villin.

Run (one CPU core, as recorded in benchmarks/results/protein_cvs.md):
    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/bench_protein_cvs.py [--steps 40] [--platform CPU]

OpenMM's ``app/data/test.pdb`` (villin headpiece, 8867 atoms with water), Amber14 + TIP3P, PME
(0.9 nm), HBonds, 2 fs Langevin. For each CV the bias is a fresh NeuralBias (MLP [48, 24, 12]) on
that CV alone; the script prints ms/step of plain MD and of MD + bias, their difference, and
the time of the CV's kernel alone (scripted value_and_jacobians + apply_forces, with the box).
The first steps (TorchScript warm-up) are not timed.
"""

import argparse
import os
import time

import numpy as np
import openmm as mm
import torch
from openmm import app, unit

from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
from openmm_nnbias.cvs import (CentroidDistance, CVSet, HelixTorsionContent, NumberOfContacts, PathCV,
                               RadiusOfGyration, RMSD)


def build(platform, threads):
    pdb = app.PDBFile(os.path.join(os.path.dirname(app.__file__), "data", "test.pdb"))
    ff = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    system = ff.createSystem(pdb.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer,
                             constraints=app.HBonds)
    return pdb, system


def time_steps(pdb, system, platform, threads, steps):
    integ = mm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 2 * unit.femtosecond)
    plat = mm.Platform.getPlatformByName(platform)
    props = {"Threads": str(threads)} if platform == "CPU" else {}
    ctx = mm.Context(system, integ, plat, props)
    ctx.setPositions(pdb.positions)
    integ.step(5)  # warm-up (TorchScript profiling runs)
    ctx.getState(getEnergy=True)
    t0 = time.perf_counter()
    integ.step(steps)
    ctx.getState(getEnergy=True)
    return 1e3 * (time.perf_counter() - t0) / steps


def kernel_us(cvs, x, box, reps=300):
    """µs per call of the scripted CVSet's value_and_jacobians + apply_forces (what the torch backend runs)."""
    module = torch.jit.script(cvs)
    dvds = torch.ones(cvs.n_cvs, dtype=torch.float64)
    with torch.no_grad():
        for _ in range(10):
            s, jac = module.value_and_jacobians(x, box)
            module.apply_forces(dvds, jac, torch.zeros_like(x))
        t0 = time.perf_counter()
        for _ in range(reps):
            s, jac = module.value_and_jacobians(x, box)
            module.apply_forces(dvds, jac, torch.zeros_like(x))
    return 1e6 * (time.perf_counter() - t0) / reps


def cvs_of(pdb):
    top = pdb.topology
    residues = list(top.residues())[:35]
    protein = [a.index for r in residues for a in r.atoms()]
    heavy = [a.index for a in top.atoms() if a.index in set(protein) and a.element.symbol != "H"]
    ca = [a.index for a in top.atoms() if a.name == "CA" and a.index in set(protein)]
    x0 = np.array(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    x1 = x0 + np.random.default_rng(0).normal(scale=0.05, size=x0.shape)
    a = [at.index for r in residues[:10] for at in r.atoms() if at.element.symbol != "H"]
    b = [at.index for r in residues[15:] for at in r.atoms() if at.element.symbol != "H"]
    masses = [at.element.mass.value_in_unit(unit.dalton) for at in top.atoms()]
    return {
        f"RadiusOfGyration (heavy, {len(heavy)} atoms, mass-weighted)":
            RadiusOfGyration(heavy, weights=[masses[i] for i in heavy]),
        f"RMSD (heavy, {len(heavy)} atoms)": RMSD(heavy, x0),
        f"RMSD (CA, {len(ca)} atoms)": RMSD(ca, x0),
        f"NumberOfContacts ({len(a)}x{len(b)} heavy-atom pairs)": NumberOfContacts(a, b, r0=0.45, upper=1e4),
        "NumberOfContacts (native Q, heavy, 0.45 nm in the PDB)":
            NumberOfContacts(heavy, r0=0.45, reference=x0, referenceCutoff=0.45, normalize=True),
        "CentroidDistance (residues 1-10 / 16-35, heavy)": CentroidDistance(a, b),
        "HelixTorsionContent (35 residues)": HelixTorsionContent(residues),
        f"PathCV s, z (CA, 2 frames)": PathCV(ca, [x0, x1], lam=100.0),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--platform", default="CPU")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    pdb, base = build(args.platform, args.threads)
    plain = time_steps(pdb, base, args.platform, args.threads, args.steps)
    print(f"# {pdb.topology.getNumAtoms()} atoms, platform {args.platform}, {args.threads} thread(s), {args.steps} steps")
    print(f"{'plain MD':58s} {plain:8.2f} ms/step")
    x = torch.tensor(np.array(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer)))
    box = torch.tensor(np.array(pdb.topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer)))
    for label, cv in cvs_of(pdb).items():
        pdb2, system = build(args.platform, args.threads)
        cvs = CVSet([cv])
        force = NeuralBiasForce(cvs, NeuralBias.from_cvs(cvs, seed=0), backend="torch")
        force.addToSystem(system)
        ms = time_steps(pdb2, system, args.platform, args.threads, args.steps)
        us = kernel_us(cvs, x, box)
        print(f"{label:58s} {ms:8.2f} ms/step   (+{ms - plain:.2f})   CV kernel alone {us:7.0f} us/call")
    print(f"{'plain MD (again)':58s} {time_steps(pdb, base, args.platform, args.threads, args.steps):8.2f} ms/step")


if __name__ == "__main__":
    main()
