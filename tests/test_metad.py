"""WellTemperedMetadynamics: the same bias as OpenMM's app.Metadynamics, exact restart, clear errors."""

import math

import numpy as np
import openmm as mm
import pytest
from openmm import app, unit

from openmm_nnbias.metad import WellTemperedMetadynamics
from openmm_nnbias.systems import alanine_dipeptide

ARGS = dict(temperature=300.0, biasFactor=6.0, height=1.0, width=0.35, frequency=50, gridWidth=25)


@pytest.fixture(scope="module")
def pep():
    return alanine_dipeptide()  # one build: positions differ between builds (random hydrogen placement)


def _simulation(pep, system, seed=1):
    integ = mm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.002 * unit.picosecond)
    integ.setRandomNumberSeed(seed)
    sim = app.Simulation(pep.topology, system, integ, mm.Platform.getPlatformByName("Reference"))
    sim.context.setPositions(pep.positions)
    sim.context.setVelocitiesToTemperature(300 * unit.kelvin, seed)
    return sim


def _ours(pep):
    system = mm.XmlSerializer.clone(pep.system)
    meta = WellTemperedMetadynamics(system, [pep.torsions["phi"], pep.torsions["psi"]], **ARGS)
    return _simulation(pep, system), meta


def test_matches_openmm_metadynamics(pep):
    system = mm.XmlSerializer.clone(pep.system)
    variables = []
    for name in ("phi", "psi"):
        t = mm.CustomTorsionForce("theta")
        t.addTorsion(*pep.torsions[name], [])
        variables.append(app.BiasVariable(t, -math.pi, math.pi, ARGS["width"], True, ARGS["gridWidth"]))
    theirs = app.Metadynamics(system, variables, 300 * unit.kelvin, ARGS["biasFactor"],
                              ARGS["height"] * unit.kilojoule_per_mole, ARGS["frequency"])
    sim_theirs = _simulation(pep, system)
    theirs.step(sim_theirs, 300)
    sim, meta = _ours(pep)
    meta.step(sim, 300)
    expected = theirs.getFreeEnergy().value_in_unit(unit.kilojoule_per_mole)
    assert np.abs(expected).max() > 0.5  # six Gaussians deposited
    np.testing.assert_allclose(meta.getFreeEnergy(), expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(meta.getCollectiveVariables(sim), theirs.getCollectiveVariables(sim_theirs),
                               rtol=0, atol=1e-9)


def test_restart_is_exact(pep):
    sim, meta = _ours(pep)
    meta.step(sim, 230)  # mid-way between depositions
    saved = (meta.getBias(), sim.context.createCheckpoint(), sim.currentStep)
    meta.step(sim, 170)
    sim2, meta2 = _ours(pep)
    meta2.setBias(saved[0], sim2.context)
    sim2.context.loadCheckpoint(saved[1])
    sim2.currentStep = saved[2]
    meta2.step(sim2, 170)
    np.testing.assert_array_equal(meta2.getBias(), meta.getBias())
    pos = [s.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
           for s in (sim, sim2)]
    np.testing.assert_array_equal(pos[0], pos[1])


def test_errors(pep):
    system = mm.XmlSerializer.clone(pep.system)
    with pytest.raises(ValueError, match="biasFactor"):
        WellTemperedMetadynamics(system, [pep.torsions["phi"]], **dict(ARGS, biasFactor=1.0))
    with pytest.raises(ValueError, match="torsions"):
        WellTemperedMetadynamics(system, [pep.torsions["phi"]] * 4, **ARGS)
    with pytest.raises(TypeError, match="frequency must be an int"):
        WellTemperedMetadynamics(system, [pep.torsions["phi"]], **dict(ARGS, frequency=50.0))
    with pytest.raises(ValueError, match="gridWidth must be >= 4"):
        WellTemperedMetadynamics(system, [pep.torsions["phi"]], **dict(ARGS, gridWidth=3))
    meta = WellTemperedMetadynamics(system, [pep.torsions["phi"]], **ARGS)
    with pytest.raises(ValueError, match="bias must have shape"):
        meta.setBias(np.zeros((3, 3)))
