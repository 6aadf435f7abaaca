"""NeuralBiasForce in periodic Systems: every backend computes the CVs with the minimum image.

The dipeptide is centred on a box corner and wrapped atom by atom (every molecule split across
the box faces); the bias energy of the Context must be the network applied to mdtraj's periodic
CVs, and the forces minus finite differences of that energy.
"""

import math

import mdtraj as md
import numpy as np
import openmm as mm
import pytest
import torch
from openmm import unit
from test_cvs_periodic import BOXES, mdtraj_traj, straddling_frames

from openmm_nnbias.bias import NeuralBias, NeuralBiasForce, load_bias
from openmm_nnbias.cvs import CVSet, Distance, Position, Torsion
from openmm_nnbias.platforms import get_platform

GROUP = 7


def periodic_system(pep, box):
    """The dipeptide's particles, no interactions, but periodic (a CutoffPeriodic NonbondedForce)."""
    system = mm.System()
    for i in range(pep.system.getNumParticles()):
        system.addParticle(pep.system.getParticleMass(i))
    system.setDefaultPeriodicBoxVectors(*[mm.Vec3(*row) for row in box] * unit.nanometer)
    nb = mm.NonbondedForce()
    nb.setNonbondedMethod(mm.NonbondedForce.CutoffPeriodic)
    nb.setCutoffDistance(1.0)
    for _ in range(system.getNumParticles()):
        nb.addParticle(0.0, 0.1, 0.0)
    system.addForce(nb)
    assert system.usesPeriodicBoundaryConditions()
    return system


def attach(pep, box, cvs, backend, platform="Reference", scale=20.0, **kwargs):
    bias = NeuralBias.from_cvs(cvs, seed=4, zero_output=False, activation="softplus")
    with torch.no_grad():
        bias.layers[-1].weight.mul_(scale)  # 20: a few tens of kJ/mol over the CV domain
    nnforce = NeuralBiasForce(cvs, bias, backend=backend, forceGroup=GROUP, **kwargs)
    system = periodic_system(pep, box)
    nnforce.addToSystem(system)
    context = mm.Context(system, mm.VerletIntegrator(0.001), get_platform(platform))
    context.setPeriodicBoxVectors(*[mm.Vec3(*row) for row in box])
    return nnforce, bias, context


def energy_forces(context, x):
    context.setPositions(x)
    state = context.getState(getEnergy=True, getForces=True, groups={GROUP})
    return state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole), state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)


def mdtraj_cvs(pep, frames, box, cvs):
    """CV vector of each frame from mdtraj with periodic=True (in the CVSet's order)."""
    traj = mdtraj_traj(frames, pep.topology, box)
    columns = []
    for cv in cvs.sources:
        rows = cv.atoms.tolist()
        if isinstance(cv, Torsion):
            columns.append(md.compute_dihedrals(traj, rows, periodic=True))
        elif isinstance(cv, Distance):
            columns.append(md.compute_distances(traj, rows, periodic=True))
        else:
            columns.append(md.compute_angles(traj, rows, periodic=True))
    return torch.tensor(np.concatenate(columns, axis=1), dtype=torch.float64)


def assert_forces_are_minus_gradient(context, x, atoms, h=1e-5, tol=1e-4):
    _, f = energy_forces(context, x)
    for atom in atoms:
        for k in range(3):
            xp, xm = x.copy(), x.copy()
            xp[atom, k] += h
            xm[atom, k] -= h
            fd = -(energy_forces(context, xp)[0] - energy_forces(context, xm)[0]) / (2 * h)
            assert abs(fd - f[atom, k]) < tol * max(1.0, abs(fd)), (atom, k, fd, f[atom, k])


def mixed_cvs(pep):
    from openmm_nnbias.cvs import Angle

    return CVSet([Torsion(pep.torsions["phi"], "phi"), Distance([1, 18], 0.1, 1.2, names="d"),
                  Torsion(pep.torsions["psi"], "psi"), Angle([4, 6, 8], 1.4, 2.6, names="a")])


@pytest.mark.parametrize("platform", ["Reference", "CPU"])
@pytest.mark.parametrize("boxname", sorted(BOXES))
def test_torch_backend_periodic(dipeptide, dipeptide_frames, boxname, platform):
    box = BOXES[boxname]
    whole, wrapped = straddling_frames(dipeptide_frames[:4], box)
    cvs = mixed_cvs(dipeptide)
    nnforce, bias, context = attach(dipeptide, box, cvs, "torch", platform)
    assert nnforce.getForce().usesPeriodicBoundaryConditions()
    with torch.no_grad():
        e_md = bias(mdtraj_cvs(dipeptide, wrapped, box, cvs)).numpy()
    x = torch.tensor(whole, requires_grad=True)  # the unbroken molecule, no box: same CVs
    e_ref = bias(cvs(x))
    f_ref = -torch.autograd.grad(e_ref.sum(), x)[0].numpy()
    for i, frame in enumerate(wrapped):
        e, f = energy_forces(context, frame)
        assert abs(e - e_md[i]) < 1e-3 and abs(e - float(e_ref[i])) < 1e-9
        np.testing.assert_allclose(f, f_ref[i], rtol=1e-7, atol=1e-7)
    assert_forces_are_minus_gradient(context, wrapped[1], [1, 4, 6, 8, 14, 16, 18])
    context.setPositions(wrapped[1])
    np.testing.assert_allclose(nnforce.getCollectiveVariables(context),
                               mdtraj_cvs(dipeptide, wrapped[1:2], box, cvs)[0].numpy(), atol=2e-5)


@pytest.mark.parametrize("backend", ["table", "cmap"])
@pytest.mark.parametrize("boxname", sorted(BOXES))
def test_grid_backends_periodic_torsions(dipeptide, dipeptide_frames, boxname, backend):
    """Split molecule in the box = whole molecule (same grid); near the network at mdtraj's CVs."""
    box = BOXES[boxname]
    whole, wrapped = straddling_frames(dipeptide_frames[:6], box)
    cvs = CVSet([Torsion(dipeptide.torsions["phi"], "phi"), Torsion(dipeptide.torsions["psi"], "psi")])
    nnforce, bias, context = attach(dipeptide, box, cvs, backend, "CPU", gridBins=96)
    assert nnforce.getForce().usesPeriodicBoundaryConditions()
    with torch.no_grad():
        e_md = bias(mdtraj_cvs(dipeptide, wrapped, box, cvs)).numpy()
    for i in range(len(wrapped)):
        e, f = energy_forces(context, wrapped[i])
        e_whole, f_whole = energy_forces(context, whole[i])
        assert abs(e - e_whole) < 1e-6 and abs(e - e_md[i]) < 0.1
        np.testing.assert_allclose(f, f_whole, rtol=1e-5, atol=1e-5)
    assert_forces_are_minus_gradient(context, wrapped[2], [4, 6, 8, 14, 16], tol=1e-3)


def test_table_backend_periodic_distance_and_angle(dipeptide, dipeptide_frames):
    from openmm_nnbias.cvs import Angle

    box = BOXES["triclinic"]
    whole, wrapped = straddling_frames(dipeptide_frames[:6], box)
    cvs = CVSet([Distance([1, 18], 0.1, 1.2, names="d"), Angle([4, 6, 8], 1.4, 2.6, names="a")])
    nnforce, bias, context = attach(dipeptide, box, cvs, "table", gridBins=200)
    with torch.no_grad():
        e_md = bias(mdtraj_cvs(dipeptide, wrapped, box, cvs)).numpy()
    for i in range(len(wrapped)):
        e, _ = energy_forces(context, wrapped[i])
        assert abs(e - energy_forces(context, whole[i])[0]) < 1e-6 and abs(e - e_md[i]) < 0.05
    assert_forces_are_minus_gradient(context, wrapped[3], [1, 18, 4, 6, 8], tol=1e-3)


def test_distance_range_beyond_half_the_box_is_refused(dipeptide):
    cvs = CVSet([Distance([1, 18], 0.1, 1.5, names="d_far")])
    nnforce = NeuralBiasForce(cvs, NeuralBias.from_cvs(cvs))
    with pytest.raises(ValueError, match=r"Distance CV 'd_far': its upper bound 1.5 nm exceeds half the "
                                         r"shortest box width 1.4 nm"):
        nnforce.addToSystem(periodic_system(dipeptide, BOXES["triclinic"]))
    nnforce.addToSystem(periodic_system(dipeptide, np.diag([3.0, 3.1, 3.2])))  # 1.5 fits


@pytest.mark.parametrize("backend", ["torch", "table", "cmap"])
def test_vacuum_systems_stay_non_periodic(dipeptide, backend):
    cvs = CVSet([Torsion(dipeptide.torsions["phi"], "phi"), Torsion(dipeptide.torsions["psi"], "psi")])
    nnforce = NeuralBiasForce(cvs, NeuralBias.from_cvs(cvs), backend=backend)
    system = mm.System()
    for _ in range(22):
        system.addParticle(1.0)
    nnforce.addToSystem(system)
    assert not system.usesPeriodicBoundaryConditions()
    assert not nnforce.getForce().usesPeriodicBoundaryConditions()


def test_exported_bias_in_a_periodic_system(dipeptide, dipeptide_frames, tmp_path):
    box = BOXES["triclinic"]
    _, wrapped = straddling_frames(dipeptide_frames[:3], box)
    cvs = mixed_cvs(dipeptide)
    nnforce, bias, context = attach(dipeptide, box, cvs, "torch")
    path = str(tmp_path / "bias.pt")
    nnforce.exportBias(path)
    system = periodic_system(dipeptide, box)
    force = load_bias(path, forceGroup=GROUP, periodic=system.usesPeriodicBoundaryConditions())
    assert force.usesPeriodicBoundaryConditions()
    system.addForce(force)
    exported = mm.Context(system, mm.VerletIntegrator(0.001), get_platform("Reference"))
    with torch.no_grad():
        e_md = bias(mdtraj_cvs(dipeptide, wrapped, box, cvs)).numpy()
    for x, e0 in zip(wrapped, e_md):
        e, f = energy_forces(exported, x)
        e_live, f_live = energy_forces(context, x)
        assert abs(e - e_live) < 1e-9 and abs(e - e0) < 1e-3
        np.testing.assert_allclose(f, f_live, rtol=1e-8, atol=1e-8)
    with pytest.raises(TypeError, match="periodic must be a bool"):
        load_bias(path, periodic="yes")


@pytest.mark.parametrize("backend", ["torch", "table"])
def test_position_cv_is_the_unwrapped_coordinate(dipeptide, backend):
    """Position ignores the box: a particle outside the box keeps its stored coordinate."""
    box = BOXES["rectangular"]
    cvs = CVSet([Position(0, "x", -2.0, 6.0, names="x0"), Position(0, "y", -2.0, 6.0, names="y0")])
    grid = {"gridBins": 161} if backend == "table" else {}
    nnforce, bias, context = attach(dipeptide, box, cvs, backend, scale=500.0, **grid)
    x = np.array(straddling_frames(np.array(dipeptide.positions.value_in_unit(unit.nanometer))[None], box)[1][0])
    x[0] = [4.7, -1.3, 0.2]  # outside the box: wrapping would give (1.7, 1.9, 0.2)
    e, f = energy_forces(context, x)
    with torch.no_grad():
        e0 = float(bias(torch.tensor([[4.7, -1.3]], dtype=torch.float64))[0])
        wrapped = float(bias(torch.tensor([[1.7, 1.9]], dtype=torch.float64))[0])
    assert abs(e - e0) < (1e-9 if backend == "torch" else 0.05) and abs(e0 - wrapped) > 0.5
    assert nnforce.getCollectiveVariables(context) == pytest.approx([4.7, -1.3], abs=1e-12)
    assert math.isfinite(f[0, 0])
