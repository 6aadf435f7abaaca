"""Deep-VES in a periodic box: the updater's samples (colvar, learner process) use the minimum image."""

import mdtraj as md
import numpy as np
import openmm as mm
import pytest
from openmm import app, unit

from openmm_nnbias.analysis import read_colvar
from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
from openmm_nnbias.cvs import CVSet, Distance
from openmm_nnbias.ves import DeepVESUpdater, ExecutionOptions, WellTempered

BOX = 3.0  # nm


class FrameRecorder:
    """Positions and box every ``stride`` steps (what a DCDReporter would write)."""

    def __init__(self, stride):
        self.stride, self.frames = stride, []

    def describeNextReport(self, simulation):
        return {"steps": self.stride - simulation.currentStep % self.stride, "periodic": False,
                "include": ["positions"]}

    def report(self, simulation, state):
        self.frames.append((state.getStepCount(), state.getPositions(asNumpy=True).value_in_unit(unit.nanometer),
                            state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)))


def _dimer_across_the_box():
    """Two atoms bonded (0.25 nm) through the periodic boundary of a 3 nm box."""
    system = mm.System()
    for _ in range(2):
        system.addParticle(39.9)
    system.setDefaultPeriodicBoxVectors(*[mm.Vec3(*r) for r in np.eye(3) * BOX] * unit.nanometer)
    bond = mm.CustomBondForce("0.5*k*(r-0.25)^2")
    bond.addGlobalParameter("k", 2000.0)
    bond.addBond(0, 1, [])
    bond.setUsesPeriodicBoundaryConditions(True)
    system.addForce(bond)
    top = app.Topology()
    chain = top.addChain()
    for i in range(2):
        top.addAtom("Ar", app.element.argon, top.addResidue("AR", chain))
    top.setPeriodicBoxVectors(np.eye(3) * BOX * unit.nanometer)
    return system, top, np.array([[0.05, 1.0, 1.0], [BOX - 0.2, 1.0, 1.0]])


@pytest.mark.parametrize("mode", ["sync", "process"])
def test_colvar_distances_are_minimum_image(tmp_path, mode):
    system, top, x0 = _dimer_across_the_box()
    cvs = CVSet([Distance((0, 1), 0.0, 1.4, "d")])
    force = NeuralBiasForce(cvs, NeuralBias.from_cvs(cvs, seed=0, hidden=(8,)), backend="torch")
    force.addToSystem(system)
    integ = mm.LangevinMiddleIntegrator(300 * unit.kelvin, 5 / unit.picosecond, 0.002 * unit.picosecond)
    integ.setRandomNumberSeed(3)
    sim = app.Simulation(top, system, integ, mm.Platform.getPlatformByName("Reference"))
    sim.context.setPositions(x0)
    up = DeepVESUpdater(force, 300 * unit.kelvin, target=WellTempered(10, bins=20), stride=100, sampleStride=10,
                        outputs=str(tmp_path), execution=ExecutionOptions(mode=mode))
    frames = FrameRecorder(10)
    sim.reporters += [up, frames]
    sim.step(400)
    up.finish()
    col = read_colvar(str(tmp_path / "colvar"))
    traj = md.Trajectory(np.stack([f[1] for f in frames.frames]), md.Topology.from_openmm(top))
    traj.unitcell_vectors = np.stack([f[2] for f in frames.frames])
    d = md.compute_distances(traj, [[0, 1]], periodic=True)[:, 0]
    raw = np.linalg.norm(traj.xyz[:, 0] - traj.xyz[:, 1], axis=1)
    assert len(col["d"]) == len(d) == 40 and raw.min() > 2.0  # the dimer really straddles the box face
    np.testing.assert_allclose(col["d"], d, atol=2e-6)
    assert len(up.history) == 4 and all(np.isfinite(h["kl"]) for h in up.history)


def test_a_distance_range_beyond_half_the_box_is_refused():
    system, _, _ = _dimer_across_the_box()
    cvs = CVSet([Distance((0, 1), 0.0, 1.6, "d")])
    with pytest.raises(ValueError, match="exceeds half the shortest box width"):
        NeuralBiasForce(cvs, NeuralBias.from_cvs(cvs, seed=0, hidden=(8,)), backend="torch").addToSystem(system)
