"""Torch potentials of the differentiable simulator against OpenMM (Reference, float64)."""

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

import openmm  # noqa: E402
from openmm import unit  # noqa: E402

from openmm_nnbias.diffsim import OpenMMTorchEnergy, masses_from_system  # noqa: E402
from openmm_nnbias.systems import MuellerBrownEnergy, alanine_dipeptide, mueller_brown  # noqa: E402

KJ, NM = unit.kilojoule_per_mole, unit.nanometer


def _openmm_energy_forces(system, frames):
    integ = openmm.VerletIntegrator(0.001)
    ctx = openmm.Context(system, integ, openmm.Platform.getPlatformByName("Reference"))
    E, F = [], []
    for x in frames:
        ctx.setPositions(x * NM)
        st = ctx.getState(getEnergy=True, getForces=True)
        E.append(st.getPotentialEnergy().value_in_unit(KJ))
        F.append(st.getForces(asNumpy=True).value_in_unit(KJ / NM))
    return np.array(E), np.array(F)


def _torch_energy_forces(module, frames, dtype=torch.float64):
    x = torch.tensor(np.asarray(frames), dtype=dtype, requires_grad=True)
    e = module(x)
    (g,) = torch.autograd.grad(e.sum(), x)
    return e.detach().double().numpy(), -g.double().numpy()


@pytest.fixture(scope="module")
def flexible_dipeptide():
    """Unconstrained alanine dipeptide and 6 frames of 800 K Reference MD (0.5 fs steps)."""
    pep = alanine_dipeptide(constraints=None)
    integ = openmm.LangevinMiddleIntegrator(800 * unit.kelvin, 5 / unit.picosecond, 0.0005 * unit.picosecond)
    integ.setRandomNumberSeed(3)
    ctx = openmm.Context(pep.system, integ, openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(pep.positions)
    ctx.setVelocitiesToTemperature(800 * unit.kelvin, 3)
    frames = []
    for _ in range(6):
        integ.step(150)
        frames.append(ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(NM))
    return pep, np.array(frames)


def test_alanine_dipeptide_energy_and_forces_match_openmm(flexible_dipeptide):
    pep, frames = flexible_dipeptide
    # the frames are distinct, non-overlapping conformations
    assert np.min(np.linalg.norm(frames[1:] - frames[:-1], axis=-1).max(axis=-1)) > 0.01
    U = OpenMMTorchEnergy.from_system(pep.system)
    E_ref, F_ref = _openmm_energy_forces(pep.system, frames)
    E, F = _torch_energy_forces(U, frames)
    np.testing.assert_allclose(E, E_ref, rtol=1e-5)
    for f, f_ref in zip(F, F_ref):
        assert np.abs(f - f_ref).max() <= 1e-5 * np.abs(f_ref).max()


def test_float32_and_single_frame(flexible_dipeptide):
    pep, frames = flexible_dipeptide
    U = OpenMMTorchEnergy.from_system(pep.system)
    E64 = U(torch.tensor(frames, dtype=torch.float64))
    E32 = U(torch.tensor(frames, dtype=torch.float32))
    assert E32.dtype == torch.float32 and E32.shape == (len(frames),)
    np.testing.assert_allclose(E32.double().numpy(), E64.numpy(), rtol=1e-4, atol=1e-3)
    single = U(torch.tensor(frames[0], dtype=torch.float64))
    assert single.shape == () and float(single) == pytest.approx(float(E64[0]), rel=1e-12)
    with pytest.raises(ValueError, match=r"\(\.\.\., 22, 3\)"):
        U(torch.zeros(2, 21, 3, dtype=torch.float64))


def test_exceptions_and_exclusions_small_system():
    """Three charged LJ particles: one excluded pair, one scaled 1-4-like exception, one normal pair."""
    system = openmm.System()
    nb = openmm.NonbondedForce()
    nb.setNonbondedMethod(openmm.NonbondedForce.NoCutoff)
    for q, s, e in [(0.5, 0.30, 0.4), (-0.3, 0.25, 0.8), (0.2, 0.35, 0.3)]:
        system.addParticle(12.0)
        nb.addParticle(q, s, e)
    nb.addException(0, 1, 0.0, 1.0, 0.0)          # excluded
    nb.addException(1, 2, -0.03, 0.28, 0.2)       # own parameters
    system.addForce(nb)
    system.addForce(openmm.CMMotionRemover())
    rng = np.random.default_rng(0)
    frames = [rng.uniform(-0.4, 0.4, (3, 3)) for _ in range(5)]
    frames = [f for f in frames if min(np.linalg.norm(f[i] - f[j]) for i, j in ((0, 1), (0, 2), (1, 2))) > 0.2]
    assert len(frames) >= 2
    U = OpenMMTorchEnergy.from_system(system)
    assert U.pair_idx.tolist() == [[0, 2], [1, 2]]
    E_ref, F_ref = _openmm_energy_forces(system, frames)
    E, F = _torch_energy_forces(U, frames)
    np.testing.assert_allclose(E, E_ref, rtol=1e-5)
    np.testing.assert_allclose(F, F_ref, rtol=1e-5, atol=1e-5 * np.abs(F_ref).max())


def test_rejections():
    constrained = alanine_dipeptide().system  # HBonds constraints
    with pytest.raises(ValueError, match="constraints"):
        OpenMMTorchEnergy.from_system(constrained)
    U = OpenMMTorchEnergy.from_system(constrained, ignore_constraints=True)
    assert len(U.constraints) == constrained.getNumConstraints() > 0
    with pytest.raises(ValueError, match="CustomExternalForce"):
        OpenMMTorchEnergy.from_system(mueller_brown().system)
    s = openmm.System()
    s.addParticle(1.0)
    s.addParticle(1.0)
    nb = openmm.NonbondedForce()
    nb.addParticle(0.1, 0.3, 0.5)
    nb.addParticle(-0.1, 0.3, 0.5)
    nb.setNonbondedMethod(openmm.NonbondedForce.CutoffNonPeriodic)
    s.addForce(nb)
    with pytest.raises(ValueError, match="NoCutoff"):
        OpenMMTorchEnergy.from_system(s)
    nb.setNonbondedMethod(openmm.NonbondedForce.PME)
    with pytest.raises(ValueError, match="periodic"):
        OpenMMTorchEnergy.from_system(s)
    s.setParticleMass(1, 0.0)
    with pytest.raises(ValueError, match="zero mass"):
        masses_from_system(s)


@pytest.mark.parametrize("scale", [1.0, 0.3])
def test_mueller_brown_matches_openmm(scale):
    ms = mueller_brown(energy_scale=scale, kz=80.0)
    rng = np.random.default_rng(1)
    frames = np.zeros((12, 1, 3))
    frames[:, 0, 0] = rng.uniform(-1.5, 1.2, 12)
    frames[:, 0, 1] = rng.uniform(-0.4, 2.0, 12)
    frames[:, 0, 2] = rng.uniform(-0.2, 0.2, 12)
    E_ref, F_ref = _openmm_energy_forces(ms.system, frames)
    E, F = _torch_energy_forces(MuellerBrownEnergy(energy_scale=scale, kz=80.0), frames)
    np.testing.assert_allclose(E, E_ref, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(F, F_ref, rtol=1e-5, atol=1e-5 * np.abs(F_ref).max())
    assert masses_from_system(ms.system).tolist() == [1.0]


def test_mueller_brown_validation():
    with pytest.raises(ValueError, match="energy_scale"):
        MuellerBrownEnergy(energy_scale=0.0)
    with pytest.raises(ValueError, match="N > 1"):
        MuellerBrownEnergy(particle=1)(torch.zeros(1, 1, 3))
