"""Solvated alanine dipeptide: Amber99SB-ILDN + TIP3P, PME, HBonds, barostat, built without downloads."""

import math

import mdtraj
import numpy as np
import openmm
import pytest
from openmm import app, unit

from openmm_nnbias.systems import alanine_dipeptide
from openmm_nnbias.systems.solvated import solvated_alanine_dipeptide


@pytest.fixture(scope="module")
def solvated():
    return solvated_alanine_dipeptide(minimize=False)


def test_box_force_field_and_barostat(solvated):
    system, top = solvated.system, solvated.topology
    assert system.usesPeriodicBoundaryConditions() and solvated.name == "alanine-dipeptide-solvated"
    assert [r.name for r in list(top.residues())[:3]] == ["ACE", "ALA", "NME"]
    n_water = sum(r.name == "HOH" for r in top.residues())
    assert n_water > 300 and top.getNumAtoms() == 22 + 3 * n_water
    forces = {type(f).__name__: f for f in system.getForces()}
    nb = forces["NonbondedForce"]
    assert nb.getNonbondedMethod() == openmm.NonbondedForce.PME
    assert math.isclose(nb.getCutoffDistance().value_in_unit(unit.nanometer), 0.9)
    baro = forces["MonteCarloBarostat"]
    assert math.isclose(baro.getDefaultPressure().value_in_unit(unit.bar), 1.0)
    assert math.isclose(baro.getDefaultTemperature().value_in_unit(unit.kelvin), 300.0)
    # HBonds on the peptide (12 H) + 3 rigid-water constraints per water
    assert system.getNumConstraints() == 12 + 3 * n_water
    box = np.array(top.getPeriodicBoxVectors().value_in_unit(unit.nanometer))
    assert np.allclose(box, np.diag(np.diag(box))) and box[0, 0] > 2 * 0.9 + 0.5


def test_peptide_torsions_match_the_vacuum_build_and_mdtraj(solvated):
    assert solvated.torsions == alanine_dipeptide().torsions
    traj = mdtraj.Trajectory(np.asarray(solvated.positions.value_in_unit(unit.nanometer))[None],
                             mdtraj.Topology.from_openmm(solvated.topology))
    traj.unitcell_vectors = np.array(solvated.topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer))[None]
    phi = mdtraj.compute_dihedrals(traj, [solvated.torsions["phi"]], periodic=True)[0, 0]
    assert -2.2 < phi < -0.8  # C7eq start, phi ≈ -80°


def test_energy_is_finite_and_hydrogen_mass_repartitioning():
    pep = solvated_alanine_dipeptide(hydrogenMass=1.5 * unit.amu, pressure=None, minimize=False)
    names = {type(f).__name__ for f in pep.system.getForces()}
    assert "MonteCarloBarostat" not in names
    h = [i for i, a in enumerate(pep.topology.atoms()) if a.element.symbol == "H" and a.residue.name != "HOH"]
    assert all(math.isclose(pep.system.getParticleMass(i).value_in_unit(unit.dalton), 1.5) for i in h)
    ctx = openmm.Context(pep.system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"))
    ctx.setPositions(pep.positions)
    assert math.isfinite(ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    with pytest.raises(ValueError, match="padding and cutoff must be > 0"):
        solvated_alanine_dipeptide(padding=0.0)
    with pytest.raises(ValueError, match="pressure must be > 0 bar"):
        solvated_alanine_dipeptide(pressure=-1.0, minimize=False)


def test_hmr_variant_has_heavier_hydrogens_a_4_fs_step_and_the_same_time_per_iteration():
    from openmm_nnbias.recipes import get_recipe, get_system

    pep = get_system("alanine-dipeptide-solvated-hmr", minimize=False)
    top, system = pep.topology, pep.system
    solute_h = [a.index for a in top.atoms() if a.element.symbol == "H" and a.residue.name != "HOH"]
    water_h = [a.index for a in top.atoms() if a.element.symbol == "H" and a.residue.name == "HOH"][:3]
    assert all(math.isclose(system.getParticleMass(i).value_in_unit(unit.dalton), 1.5) for i in solute_h)
    assert all(system.getParticleMass(i).value_in_unit(unit.dalton) < 1.1 for i in water_h)
    total = sum(system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(system.getNumParticles()))
    plain = solvated_alanine_dipeptide(minimize=False).system
    assert math.isclose(total, sum(plain.getParticleMass(i).value_in_unit(unit.dalton)
                                   for i in range(plain.getNumParticles())), rel_tol=1e-9)  # mass moved, not added
    d, m = get_recipe("alanine-dipeptide-solvated-hmr"), get_recipe("alanine-dipeptide-solvated-hmr", "metad")
    d2, m2 = get_recipe("alanine-dipeptide-solvated"), get_recipe("alanine-dipeptide-solvated", "metad")
    assert d.timestep == m.timestep == 2 * d2.timestep == 0.004
    assert d.options["stride"] * d.timestep == d2.options["stride"] * d2.timestep  # 1 ps per iteration
    assert m.frequency * m.timestep == m2.frequency * m2.timestep  # a Gaussian per ps
