"""EnvironmentSimilarity: number of cubic-diamond atoms (PLUMED ENVIRONMENTSIMILARITY, MORE_THAN)."""

import copy
import math
import pickle

import numpy as np
import pytest
import torch

import openmm as mm
from openmm import unit

from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
from openmm_nnbias.cvs import CVSet, EnvironmentSimilarity, Torsion
from openmm_nnbias.systems.silicon import silicon_crystal, stillinger_weber_system

F64 = torch.float64
torch.set_num_threads(1)


def _numpy_reference(x, box, a=0.5431, sigma=0.04, lam=100.0, r0=0.5, nn=12, mm_=24):
    """The published formula, written out: k_χ(i) = (1/4) Σ_l Σ_j exp(−|r_ij − r_l^χ|²/(4σ²))."""
    even = np.array([[1, 1, 1], [-1, -1, 1], [1, -1, -1], [-1, 1, -1]]) * a / 4
    odd = np.array([[1, -1, 1], [-1, 1, 1], [1, 1, -1], [-1, -1, -1]]) * a / 4
    rc = math.sqrt(3) * a / 4 + 3 * sigma
    L = np.diag(box)
    total = 0.0
    for i in range(len(x)):
        ks = []
        for ref in (even, odd):
            k = 0.0
            for j in range(len(x)):
                d = x[j] - x[i]
                d -= L * np.round(d / L)  # cubic box
                r = np.linalg.norm(d)
                if 1e-4 < r < rc:
                    k += np.exp(-((d - ref) ** 2).sum(1) / (4 * sigma ** 2)).sum() / 4
            ks.append(k)
        k = np.log(np.exp(lam * np.array(ks)).sum()) / lam
        q = k / r0
        total += 1 - (1 - q ** nn) / (1 - q ** mm_)
    return total


@pytest.fixture(scope="module")
def crystal64():
    xt = silicon_crystal(2)
    return torch.as_tensor(xt.positions), torch.as_tensor(xt.box)


@pytest.fixture(scope="module")
def liquid64():
    """A liquid frame made in seconds: the 64-atom crystal melted by 2 ps of NVT at 3 500 K."""
    from openmm_nnbias.systems.silicon.md import silicon_npt_context

    ctx = silicon_npt_context(temperature=3500.0, n_cells=2, barostat="none", friction=5.0, seed=3)
    ctx.getIntegrator().step(1000)
    state = ctx.getState(getPositions=True)
    x = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
    return torch.as_tensor(np.asarray(x)), torch.as_tensor(np.asarray(box))


def test_perfect_crystals_count_every_atom(crystal64):
    x, box = crystal64
    cv = EnvironmentSimilarity(range(64))
    per_atom = cv.per_atom(x, box)
    assert torch.allclose(per_atom, torch.ones(64, dtype=F64), atol=1e-12)
    expected = 64 * 4096 / 4097  # 1 − s(2) = 2^12/(1 + 2^12) per atom
    assert float(cv(x, box)[0]) == pytest.approx(expected, abs=1e-9)
    xt = silicon_crystal(3)
    cv216 = EnvironmentSimilarity(range(216))
    assert float(cv216(torch.as_tensor(xt.positions), torch.as_tensor(xt.box))[0]) == pytest.approx(
        216 * 4096 / 4097, abs=1e-9)


def test_liquid_counts_almost_none(liquid64):
    x, box = liquid64
    cv = EnvironmentSimilarity(range(64))
    value = float(cv(x, box)[0])
    assert 0.0 <= value < 3.0
    assert float(cv.per_atom(x, box).mean()) < 0.5


def test_matches_numpy_formula(crystal64, liquid64):
    x, box = crystal64
    rng = np.random.default_rng(0)
    noisy = x + torch.as_tensor(rng.normal(0, 0.02, x.shape))
    cv = EnvironmentSimilarity(range(64))
    for frame, b in ((noisy, box), liquid64):
        ref = _numpy_reference(frame.numpy(), b.numpy())
        assert float(cv(frame, b)[0]) == pytest.approx(ref, rel=1e-10, abs=1e-10)


def test_translation_and_wrapping_invariant(crystal64):
    x, box = crystal64
    cv = EnvironmentSimilarity(range(64))
    noisy = x + 0.015 * torch.randn(x.shape, dtype=F64, generator=torch.Generator().manual_seed(1))
    v0 = float(cv(noisy, box)[0])
    shift = torch.tensor([0.123, -0.456, 0.789], dtype=F64)
    assert float(cv(noisy + shift, box)[0]) == pytest.approx(v0, abs=1e-10)
    images = torch.randint(-2, 3, (64, 3), generator=torch.Generator().manual_seed(2)).to(F64)
    assert float(cv(noisy + images @ box, box)[0]) == pytest.approx(v0, abs=1e-10)


def test_reference_frame_is_the_box_frame():
    """Fixed references: 90° about z maps diamond onto itself (sublattices swapped), 45° does not match."""
    xt = silicon_crystal(4)
    x = torch.as_tensor(xt.positions) - torch.as_tensor(xt.box).diagonal() / 2
    cv = EnvironmentSimilarity(range(len(x)), upper=512.0)
    v0 = float(cv(x)[0])  # a finite cluster (no box): the inner atoms count
    assert v0 > 200

    def rotated(deg):
        c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
        return x @ torch.tensor([[c, s, 0], [-s, c, 0], [0, 0, 1]], dtype=F64)

    assert float(cv(rotated(90.0))[0]) == pytest.approx(v0, abs=1e-8)
    assert float(cv(rotated(45.0))[0]) < 1.0


def test_gradient_matches_finite_differences(crystal64):
    x, box = crystal64
    x = x + 0.02 * torch.randn(x.shape, dtype=F64, generator=torch.Generator().manual_seed(4))
    cv = EnvironmentSimilarity(range(64))
    value, jac = cv.value_and_jacobian(x, box)
    assert jac.shape == (1, 64, 3)
    assert float(value[0]) == pytest.approx(float(cv(x, box)[0]), abs=1e-12)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(cv(xg, box)[0], xg)
    assert torch.allclose(jac[0], grad, atol=1e-12)
    h = 1e-6
    for atom, axis in ((0, 0), (5, 1), (17, 2), (40, 0)):
        e = torch.zeros_like(x)
        e[atom, axis] = h
        fd = (float(cv(x + e, box)[0]) - float(cv(x - e, box)[0])) / (2 * h)
        assert float(jac[0, atom, axis]) == pytest.approx(fd, rel=1e-5, abs=1e-7)


def test_triclinic_box_and_batches(crystal64, liquid64):
    x, box = crystal64
    sheared = box.clone()
    sheared[1, 0] = 0.2  # b tilted along x: a triclinic reduced box
    cv = EnvironmentSimilarity(range(64))
    frames = torch.stack([x, liquid64[0]])
    boxes = torch.stack([box, liquid64[1]])
    batch = cv(frames, boxes)
    assert batch.shape == (2, 1)
    assert float(batch[1, 0]) == pytest.approx(float(cv(liquid64[0], liquid64[1])[0]), abs=1e-12)
    v, jac = cv.value_and_jacobian(x @ torch.linalg.inv(box) @ sheared, sheared)
    assert math.isfinite(float(v[0])) and bool(torch.isfinite(jac).all())


def test_scripted_equals_eager_and_copies(crystal64, liquid64):
    x, box = liquid64
    cv = EnvironmentSimilarity(range(64))
    scripted = torch.jit.script(copy.deepcopy(cv))
    assert float(scripted(x, box)[0]) == float(cv(x, box)[0])
    for a, b in zip(scripted.value_and_jacobian(x, box), cv.value_and_jacobian(x, box)):
        assert torch.allclose(a, b, atol=1e-14)
    assert float(pickle.loads(pickle.dumps(cv))(x, box)[0]) == float(cv(x, box)[0])


def test_verlet_list_follows_moves(liquid64):
    x, box = liquid64
    cv = EnvironmentSimilarity(range(64), skin=0.05)
    fresh = EnvironmentSimilarity(range(64), skin=0.0)
    gen = torch.Generator().manual_seed(5)
    y = x.clone()
    for step in range(30):
        y = y + 0.004 * torch.randn(y.shape, dtype=F64, generator=gen)
        b = box * (1.0 + 0.0005 * (step % 3 - 1))
        assert float(cv(y, b)[0]) == pytest.approx(float(fresh(y, b)[0]), abs=1e-12)
    assert 1 < cv.n_builds < 30


def test_in_cvset_and_torch_backend_forces(crystal64):
    x, box = crystal64
    x = x + 0.03 * torch.randn(x.shape, dtype=F64, generator=torch.Generator().manual_seed(6))
    env = EnvironmentSimilarity(range(64))
    cvs = CVSet([env, Torsion([0, 1, 2, 3], "t")])
    assert cvs.names == ["n_diamond", "t"] and cvs.units[0] == "1"
    values = cvs(x, box)
    assert float(values[0]) == pytest.approx(float(env(x, box)[0]), abs=1e-12)
    cvs1 = CVSet([env])
    bias = NeuralBias.from_cvs(cvs1, hidden=(8, 8), seed=3, zero_output=False)
    system = stillinger_weber_system(64, box.numpy())
    force = NeuralBiasForce(cvs1, bias, backend="torch")
    force.addToSystem(system)
    group = force.forceGroup
    ctx = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(x.numpy())

    def energy(pos):
        ctx.setPositions(pos)
        return ctx.getState(getEnergy=True, groups={group}).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)

    xn = x.numpy()
    ctx.setPositions(xn)
    forces = ctx.getState(getForces=True, groups={group}).getForces(asNumpy=True).value_in_unit(
        unit.kilojoule_per_mole / unit.nanometer)
    with torch.no_grad():
        expected = float(bias(cvs1(x, box)).reshape(-1)[0])
    assert energy(xn) == pytest.approx(expected, abs=1e-6)
    assert np.abs(forces).max() > 1e-3
    h = 1e-5
    for atom, axis in ((0, 0), (9, 2), (33, 1)):
        e = np.zeros_like(xn)
        e[atom, axis] = h
        fd = -(energy(xn + e) - energy(xn - e)) / (2 * h)
        assert forces[atom, axis] == pytest.approx(fd, rel=1e-4, abs=1e-5)


def test_argument_errors(crystal64):
    x, box = crystal64
    with pytest.raises(TypeError, match="atoms must be a sequence"):
        EnvironmentSimilarity(64)
    with pytest.raises(TypeError, match="sigma must be a number"):
        EnvironmentSimilarity(range(8), sigma="0.04")
    with pytest.raises(ValueError, match="sigma must be"):
        EnvironmentSimilarity(range(8), sigma=-1.0)
    with pytest.raises(ValueError, match="nn and mm must differ"):
        EnvironmentSimilarity(range(8), nn=6, mm=6)
    with pytest.raises(TypeError, match="nn must be an int"):
        EnvironmentSimilarity(range(8), nn=6.0)
    with pytest.raises(ValueError, match="references must have shape"):
        EnvironmentSimilarity(range(8), references=np.zeros((2, 4, 2)))
    with pytest.raises(ValueError, match="half the shortest box width"):
        EnvironmentSimilarity(range(64))(x, box * 0.3)
