"""Multiple-time-step bias: openmm_nnbias.bias.mts against independent integrators."""

import math

import numpy as np
import pytest
import torch  # noqa: F401  (before openmmtorch)
import openmm as mm
from openmm import unit

from openmm_nnbias.bias.mts import bias_force_group, mts_langevin_integrator

from _devices import DEFAULT_PLATFORM, PLATFORMS, make_context, require_torch_force

KF, B, H, X0 = 900.0, 40.0, 0.004, 0.3  # fast spring (kJ/mol/nm²), slow term, inner step (ps), start (nm)


def _one_particle():
    system = mm.System()
    system.addParticle(1.0)
    fast = mm.CustomExternalForce(f"0.5*{KF}*x^2")
    fast.addParticle(0, [])
    system.addForce(fast)
    slow = mm.CustomExternalForce(f"{B}*cos(3*x)")  # nonlinear: its force depends on where it is taken
    slow.addParticle(0, [])
    slow.setForceGroup(31)
    system.addForce(slow)
    return system, slow


def _numpy_trajectory(k, n_outer, slow_every_inner):
    """Velocity-Verlet RESPA (Tuckerman 1992) in numpy; mass 1, 1-D."""
    ff = lambda x: -KF * x  # noqa: E731
    fs = lambda x: 3 * B * math.sin(3 * x)  # noqa: E731
    x, v, out = X0, 0.0, []
    for _ in range(n_outer):
        if not slow_every_inner:
            v += 0.5 * k * H * fs(x)
        for _ in range(k):
            f = ff(x) + (fs(x) if slow_every_inner else 0.0)
            v += 0.5 * H * f
            x += H * v
            f = ff(x) + (fs(x) if slow_every_inner else 0.0)
            v += 0.5 * H * f
        if not slow_every_inner:
            v += 0.5 * k * H * fs(x)
        out.append(x)
    return np.array(out)


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("k", [1, 3, 8])
def test_slow_group_only_on_outer_step(k, platform):
    system, slow = _one_particle()
    integ = mts_langevin_integrator(300.0, 0.0, H, slow, k, system)  # friction 0: deterministic RESPA
    assert math.isclose(integ.getStepSize().value_in_unit(unit.picosecond), k * H)
    ctx = make_context(system, integ, platform)
    ctx.setPositions([[X0, 0, 0]])
    xs = []
    for _ in range(40):
        integ.step(1)
        xs.append(ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)[0, 0])
    respa = _numpy_trajectory(k, 40, slow_every_inner=False)
    np.testing.assert_allclose(xs, respa, atol=1e-10)
    if k > 1:  # the slow force taken every inner step gives a visibly different trajectory
        assert np.max(np.abs(_numpy_trajectory(k, 40, slow_every_inner=True) - respa)) > 1e-3


def _dipeptide_with_bias(seed=3):
    from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
    from openmm_nnbias.cvs import CVSet, Torsion
    from openmm_nnbias.systems import alanine_dipeptide

    pep = alanine_dipeptide(constraints=None)
    cvs = CVSet([Torsion(pep.torsions["phi"], "phi"), Torsion(pep.torsions["psi"], "psi")])
    bias = NeuralBias.from_cvs(cvs, seed=seed, zero_output=False)
    force = NeuralBiasForce(cvs, bias, backend="torch")
    force.addToSystem(pep.system)
    return pep, force


@pytest.mark.parametrize("platform", PLATFORMS)
def test_k1_is_velocity_verlet_with_torch_bias(platform):
    """k = 1, no friction: every group every step, i.e. velocity Verlet on the total force."""
    require_torch_force(platform)
    pep, force = _dipeptide_with_bias()
    dt = 0.0005
    traj = []
    verlet = mm.CustomIntegrator(dt)  # velocity Verlet with the total force of all groups
    verlet.addUpdateContextState()  # the CMMotionRemover, as in the MTS integrator
    verlet.addComputePerDof("v", "v+0.5*dt*f/m")
    verlet.addComputePerDof("x", "x+dt*v")
    verlet.addComputePerDof("v", "v+0.5*dt*f/m")
    for integ in (verlet, mts_langevin_integrator(300.0, 0.0, dt, force, 1, pep.system)):
        ctx = make_context(pep.system, integ, platform)
        ctx.setPositions(pep.positions)
        ctx.setVelocitiesToTemperature(300.0, 5)
        v0 = ctx.getState(getVelocities=True).getVelocities(asNumpy=True).value_in_unit(unit.nanometer / unit.picosecond)
        ctx.setVelocities(v0 if not traj else traj[0][1])
        integ.step(20)
        traj.append((ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer), v0))
        del ctx
    np.testing.assert_allclose(traj[0][0], traj[1][0], atol=1e-8)


def test_langevin_run_with_torch_bias_on_slow_step():
    require_torch_force(DEFAULT_PLATFORM)
    pep, force = _dipeptide_with_bias()
    integ = mts_langevin_integrator(300.0, 1.0, 0.001, force, 4, pep.system)
    integ.setRandomNumberSeed(2)
    ctx = make_context(pep.system, integ, DEFAULT_PLATFORM, threads=1)
    ctx.setPositions(pep.positions)
    ctx.setVelocitiesToTemperature(300.0, 2)
    integ.step(50)
    state = ctx.getState(getEnergy=True)
    assert math.isclose(state.getTime().value_in_unit(unit.picosecond), 50 * 4 * 0.001, rel_tol=1e-9)
    assert math.isfinite(state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    assert math.isfinite(force.getBiasEnergy(ctx).value_in_unit(unit.kilojoule_per_mole))


def test_bad_arguments():
    system, slow = _one_particle()
    for k in (0, -2, 1.5, True, "2"):
        with pytest.raises(ValueError, match="slowSteps"):
            mts_langevin_integrator(300.0, 1.0, 0.002, slow, k, system)
    with pytest.raises(ValueError, match="no force of the System"):
        mts_langevin_integrator(300.0, 1.0, 0.002, 12, 2, system)
    system.getForce(0).setForceGroup(31)  # the fast force now shares the bias group
    with pytest.raises(ValueError, match="alone in its group"):
        mts_langevin_integrator(300.0, 1.0, 0.002, slow, 2, system)
    with pytest.raises(ValueError, match="0..31"):
        bias_force_group(40)
    with pytest.raises(ValueError, match="timestep"):
        mts_langevin_integrator(300.0, 1.0, -0.002, slow, 2, system)
