"""Batched semi-implicit Langevin simulator of the diffsim module."""

import math

import pytest
import torch

torch.set_num_threads(1)

from openmm_nnbias._units import KB  # noqa: E402
from openmm_nnbias.diffsim import LangevinSimulator, maxwell_boltzmann_velocities  # noqa: E402
from openmm_nnbias.systems import MuellerBrownEnergy  # noqa: E402

F64 = torch.float64


def harmonic(k):
    k = torch.as_tensor(k, dtype=F64)

    def energy(x):
        return 0.5 * (k.to(x.dtype) * x ** 2).sum((-2, -1))
    return energy


def _mb_start(B, dtype=F64):
    return torch.tensor([[[-0.558, 1.442, 0.0]]], dtype=dtype).repeat(B, 1, 1)


def test_one_step_follows_the_documented_order():
    """R1 = R0 + dt V0; F at R1; V1 = V0 + dt (F(R1)/M − γ V0) + sqrt(2γkT dt/M) ξ."""
    masses = torch.tensor([2.0, 5.0], dtype=F64)
    pot = harmonic([[30.0, 60.0, 90.0], [10.0, 20.0, 40.0]])
    dt, gamma, T = 0.01, 3.0, 250.0
    sim = LangevinSimulator(pot, masses, T, dt, gamma, seed=7)
    g = torch.Generator().manual_seed(0)
    R0 = torch.randn(4, 2, 3, generator=g, dtype=F64)
    V0 = torch.randn(4, 2, 3, generator=g, dtype=F64)
    traj = sim.run(R0, V0, n_steps=1)
    xi = torch.randn(R0.shape, generator=torch.Generator().manual_seed(7), dtype=F64)
    m = masses[None, :, None]
    k = torch.tensor([[30.0, 60.0, 90.0], [10.0, 20.0, 40.0]], dtype=F64)
    R1 = R0 + dt * V0
    V1 = V0 + dt * (-k * R1 / m - gamma * V0) + torch.sqrt(2 * gamma * KB * T * dt / m) * xi
    torch.testing.assert_close(traj.positions[1], R1, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(traj.final_velocities, V1, rtol=1e-13, atol=1e-13)
    # using the force at the old positions would be a measurably different scheme
    V1_old = V0 + dt * (-k * R0 / m - gamma * V0) + torch.sqrt(2 * gamma * KB * T * dt / m) * xi
    assert (traj.final_velocities - V1_old).abs().max() > 1e-3


def test_seeding_recording_and_dtypes():
    U = MuellerBrownEnergy()
    m = torch.ones(1, dtype=F64)
    R0 = _mb_start(3)
    V0 = torch.zeros_like(R0)
    a = LangevinSimulator(U, m, 300.0, 0.001, 10.0, seed=1).run(R0, V0, 30, record_every=10)
    b = LangevinSimulator(U, m, 300.0, 0.001, 10.0, seed=1).run(R0, V0, 30, record_every=10)
    c = LangevinSimulator(U, m, 300.0, 0.001, 10.0, seed=2).run(R0, V0, 30, record_every=10)
    assert a.positions.shape == (4, 3, 1, 3) and a.steps.tolist() == [0, 10, 20, 30]
    assert torch.equal(a.positions, b.positions) and not torch.equal(a.positions, c.positions)
    assert torch.equal(a.positions[-1], a.final_positions)
    full = LangevinSimulator(U, m, 300.0, 0.001, 10.0, seed=1).run(R0, V0, 30, record_velocities=True)
    torch.testing.assert_close(full.positions[::10], a.positions, rtol=0, atol=0)
    assert full.velocities.shape == full.positions.shape
    assert not full.positions.requires_grad
    f32 = LangevinSimulator(U, m.float(), 300.0, 0.001, 10.0, seed=1).run(_mb_start(3, torch.float32),
                                                                         torch.zeros(3, 1, 3), 30)
    assert f32.positions.dtype == torch.float32
    assert (f32.positions[-1].double() - full.positions[-1]).abs().max() < 1e-4
    with pytest.raises(ValueError, match="R0 must have shape"):
        LangevinSimulator(U, m, 300.0, 0.001, 10.0).run(torch.zeros(3, 2, 3, dtype=F64),
                                                         torch.zeros(3, 2, 3, dtype=F64), 1)


def test_keep_graph_gives_the_same_trajectory_and_gradients():
    U = MuellerBrownEnergy()
    m = torch.ones(1, dtype=F64)
    R0, V0 = _mb_start(2), torch.zeros(2, 1, 3, dtype=F64)
    w = torch.tensor(3.0, dtype=F64, requires_grad=True)

    def bias(x):
        return w * x[..., 0, 0] ** 2

    plain = LangevinSimulator(U, m, 300.0, 0.001, 5.0, seed=4).run(R0, V0, 15, bias=bias)
    graph = LangevinSimulator(U, m, 300.0, 0.001, 5.0, seed=4).run(R0, V0, 15, bias=bias, keep_graph=True)
    torch.testing.assert_close(graph.positions.detach(), plain.positions, rtol=1e-13, atol=1e-13)
    (gw,) = torch.autograd.grad(graph.positions[-1, :, 0, 0].sum(), w)
    assert torch.isfinite(gw) and float(gw) != 0.0


def test_equipartition_in_harmonic_well():
    """<k x^2> = kT per degree of freedom (small dt, 128 replicas, 3000 steps)."""
    T, k, M = 300.0, 500.0, 4.0
    kT = KB * T
    sim = LangevinSimulator(harmonic(k), torch.full((1,), M, dtype=F64), T, 0.002, 10.0, seed=5)
    R0 = torch.zeros(128, 1, 3, dtype=F64)
    V0 = maxwell_boltzmann_velocities(sim.masses, T, 128, generator=torch.Generator().manual_seed(3))
    traj = sim.run(R0, V0, 3000, record_every=10, record_velocities=True)
    x2 = (traj.positions[50:] ** 2).mean()
    v2 = (traj.velocities[50:] ** 2).mean()
    assert float(k * x2) == pytest.approx(kT, rel=0.06)
    assert float(M * v2) == pytest.approx(kT, rel=0.06)


def test_maxwell_boltzmann_and_validation():
    masses = torch.tensor([1.0, 16.0], dtype=F64)
    v = maxwell_boltzmann_velocities(masses, 300.0, 20000, generator=torch.Generator().manual_seed(0))
    var = v.var(dim=(0, 2))
    torch.testing.assert_close(var, KB * 300.0 / masses, rtol=0.03, atol=0)
    U = MuellerBrownEnergy()
    with pytest.raises(ValueError, match="friction\\*timestep"):
        LangevinSimulator(U, masses, 300.0, 0.1, 20.0)
    with pytest.raises(ValueError, match="masses"):
        LangevinSimulator(U, torch.tensor([1.0, -1.0]), 300.0, 0.001, 1.0)
    with pytest.raises(ValueError, match="timestep"):
        LangevinSimulator(U, masses, 300.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="record_every"):
        LangevinSimulator(U, masses[:1], 300.0, 0.001, 1.0).run(_mb_start(1), torch.zeros(1, 1, 3, dtype=F64), 2,
                                                                record_every=0)
    assert math.isclose(LangevinSimulator(U, masses, 300.0, 0.001, 1.0).kT, KB * 300.0)
