"""Tests of the uniform and well-tempered target distributions."""

import math

import pytest
import torch

from openmm_nnbias.ves import CVGrid
from openmm_nnbias.ves.targets import UniformTarget, WellTemperedTarget

torch.set_num_threads(1)
F64 = torch.float64


@pytest.fixture
def grid():
    return CVGrid([-3.0], [3.0], [50], [False])


def test_uniform_target(grid):
    target = UniformTarget(grid)
    p = target.probabilities
    assert p.shape == (50,) and p.dtype == F64
    torch.testing.assert_close(p, torch.full((50,), 1 / 50, dtype=F64))
    target.update(torch.randn(50, dtype=F64))  # no-op
    torch.testing.assert_close(target.probabilities, p)
    assert torch.equal(target.free_energy, torch.zeros(50, dtype=F64))
    with pytest.raises(ValueError, match="50 values"):
        target.update(torch.zeros(3))


@pytest.mark.parametrize("gamma", [2.0, 10.0])
def test_well_tempered_recursion_closed_form(grid, gamma):
    kT = 2.494
    s = grid.points[:, 0]
    v = -5.0 * torch.cos(s) + 0.7 * s  # fixed bias, kJ/mol
    target = WellTemperedTarget(grid, biasFactor=gamma, kT=kT)
    torch.testing.assert_close(target.probabilities, torch.full((50,), 1 / 50, dtype=F64))
    for n in range(1, 8):
        target.update(v)
        expected_f = -v * (1 - gamma ** (-n)) / (1 - 1 / gamma)
        torch.testing.assert_close(target.free_energy, expected_f, rtol=1e-13, atol=1e-12)
        expected_p = torch.exp(-expected_f / (gamma * kT))
        expected_p = expected_p / expected_p.sum()
        torch.testing.assert_close(target.probabilities, expected_p, rtol=1e-12, atol=1e-15)
        assert float(target.probabilities.sum()) == pytest.approx(1.0, abs=1e-14)
    assert target.n_updates == 7
    for _ in range(100):
        target.update(v)
    limit = -gamma / (gamma - 1) * v
    torch.testing.assert_close(target.free_energy, limit, rtol=1e-12, atol=1e-12)
    # at convergence F = -V - kT ln p up to a constant (Eq. 4)
    eq4 = -v - kT * torch.log(target.probabilities)
    torch.testing.assert_close(eq4 - eq4.mean(), limit - limit.mean(), rtol=1e-10, atol=1e-10)


def test_well_tempered_is_stable_for_huge_bias(grid):
    target = WellTemperedTarget(grid, biasFactor=10.0, kT=0.1)
    target.update(1e6 * grid.points[:, 0] ** 2)
    p = target.probabilities
    assert torch.isfinite(p).all()
    assert float(p.sum()) == pytest.approx(1.0)
    assert int(torch.argmax(p)) in (0, 49)  # F = -V is lowest at the edges


def test_well_tempered_validation(grid):
    for gamma in (1.0, 0.5, float("inf")):
        with pytest.raises(ValueError, match="biasFactor"):
            WellTemperedTarget(grid, biasFactor=gamma, kT=1.0)
    for kT in (0.0, -1.0):
        with pytest.raises(ValueError, match="kT"):
            WellTemperedTarget(grid, biasFactor=10.0, kT=kT)
    target = WellTemperedTarget(grid, biasFactor=10.0, kT=1.0)
    bad = torch.zeros(50, dtype=F64)
    bad[3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        target.update(bad)
    assert target.n_updates == 0


def test_state_dict_roundtrip(grid):
    target = WellTemperedTarget(grid, biasFactor=10.0, kT=1.0)
    v = torch.sin(grid.points[:, 0])
    target.update(v)
    state = target.state_dict()
    target.update(v)  # the saved state must be an independent copy
    fresh = WellTemperedTarget(grid, biasFactor=10.0, kT=1.0)
    fresh.load_state_dict(state)
    assert fresh.n_updates == 1
    fresh.update(v)
    assert torch.equal(fresh.free_energy, target.free_energy)
    assert torch.equal(fresh.probabilities, target.probabilities)
    with pytest.raises(ValueError, match="bias_factor"):
        WellTemperedTarget(grid, biasFactor=5.0, kT=1.0).load_state_dict(state)
    with pytest.raises(ValueError, match="kind"):
        UniformTarget(grid).load_state_dict(state)
    uniform = UniformTarget(grid)
    uniform.load_state_dict(UniformTarget(grid).state_dict())
    assert math.isclose(float(uniform.probabilities.sum()), 1.0)
