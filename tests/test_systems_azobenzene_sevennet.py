"""SevenNet-0 energy of the differentiable simulator (``openmm_nnbias[sevenn]``) and the azobenzene setup.

References: sevenn's own ASE calculator (its graph builder and force head, float32),
central finite differences (float64) for forces and vector–Hessian products, rigid motions.
Small molecules (diazene N2H2, 4 atoms) keep the finite-difference checks to seconds.
"""

import math
import sys

import pytest
import torch

torch.set_num_threads(1)

from openmm_nnbias.diffsim import LangevinSimulator, make_force_fn, partial_adjoint  # noqa: E402
from openmm_nnbias.systems.azobenzene.molecule import AZOBENZENE_MASSES, AZOBENZENE_NUMBERS  # noqa: E402
from openmm_nnbias.systems.azobenzene.sevennet import EV_TO_KJ_PER_MOL  # noqa: E402

try:
    import sevenn  # noqa: F401
    HAVE_SEVENN = True
except ImportError:
    HAVE_SEVENN = False

needs_sevenn = pytest.mark.skipif(not HAVE_SEVENN, reason="optional extra 'sevenn' not installed "
                                  "(pip install 'openmm_nnbias[sevenn]')")

#: trans-diazene HN=NH in nm (N=N 1.25 Å, N–H 1.03 Å, HNN 106°), slightly distorted.
DIAZENE = torch.tensor([[0.0, 0.0625, 0.0], [0.0, -0.0625, 0.0], [0.099, 0.091, 0.004],
                        [-0.099, -0.091, -0.006]], dtype=torch.float64)


@pytest.fixture(scope="module")
def azo_energy():
    from openmm_nnbias.systems.azobenzene import SevenNetEnergy
    return SevenNetEnergy(AZOBENZENE_NUMBERS, dtype=torch.float32)  # float32: ~3x faster on a CPU


@pytest.fixture(scope="module")
def diazene_energy():
    from openmm_nnbias.systems.azobenzene import SevenNetEnergy
    return SevenNetEnergy([7, 7, 1, 1])


def _replicas(n, scale=0.003, seed=0):
    g = torch.Generator().manual_seed(seed)
    return DIAZENE + scale * torch.randn((n,) + DIAZENE.shape, generator=g, dtype=torch.float64)


def _forces(U, x):
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(U(x).sum(), x)
    return -g


def test_missing_extra_gives_one_clear_import_error(monkeypatch):
    from openmm_nnbias.systems.azobenzene.sevennet import SevenNetEnergy
    monkeypatch.setitem(sys.modules, "sevenn", None)
    monkeypatch.setitem(sys.modules, "sevenn._keys", None)
    with pytest.raises(ImportError, match=r"openmm_nnbias\[sevenn\]"):
        SevenNetEnergy([1, 1])


@needs_sevenn
def test_matches_sevenn_ase_calculator(diazene_energy):
    """Energy and forces against SevenNetCalculator (float32, its own graph builder and force head)."""
    from ase import Atoms
    from sevenn.calculator import SevenNetCalculator

    x = _replicas(1, seed=7)[0]
    atoms = Atoms("N2H2", positions=10.0 * x.numpy())
    atoms.calc = SevenNetCalculator("7net-0", device="cpu")
    e_ref = atoms.get_potential_energy() * EV_TO_KJ_PER_MOL
    f_ref = torch.tensor(atoms.get_forces()) * EV_TO_KJ_PER_MOL * 10.0  # eV/Å -> kJ/mol/nm
    e = float(diazene_energy(x[None])[0])
    f = _forces(diazene_energy, x[None])[0]
    assert abs(e - e_ref) < 1e-5 * abs(e_ref)  # float32 reference
    assert float((f - f_ref).abs().max()) < 1e-3 * float(f_ref.abs().max()) + 0.05


@needs_sevenn
def test_batched_equals_one_by_one(diazene_energy):
    x = _replicas(4)
    e_batch = diazene_energy(x)
    f_batch = _forces(diazene_energy, x)
    for b in range(4):
        assert torch.allclose(e_batch[b], diazene_energy(x[b:b + 1])[0], rtol=0, atol=1e-9)
        assert torch.allclose(f_batch[b], _forces(diazene_energy, x[b:b + 1])[0], rtol=0, atol=1e-8)
    assert diazene_energy(x.reshape(2, 2, 4, 3)).shape == (2, 2)
    assert torch.allclose(diazene_energy(x.reshape(2, 2, 4, 3)).reshape(4), e_batch, rtol=0, atol=1e-9)
    assert diazene_energy(x.float()).dtype == torch.float32


@needs_sevenn
def test_forces_are_minus_gradient_by_finite_differences(diazene_energy):
    x = _replicas(2, seed=1)
    f = _forces(diazene_energy, x)
    h = 1e-5  # nm
    for b, i, k in ((0, 0, 0), (0, 2, 1), (1, 3, 2), (1, 1, 1)):
        dx = torch.zeros_like(x)
        dx[b, i, k] = h
        fd = -(diazene_energy(x + dx) - diazene_energy(x - dx)).sum() / (2 * h)
        assert abs(float(fd - f[b, i, k])) < 1e-4 * float(f.abs().max()) + 1e-3


@needs_sevenn
def test_vector_hessian_products_by_finite_differences_of_forces(diazene_energy):
    """``torch.func.vjp`` of ``make_force_fn`` (what the partial adjoint uses) vs central FD of the forces."""
    x = _replicas(2, seed=2)
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    force_fn = make_force_fn(diazene_energy)
    _, vjp_fn = torch.func.vjp(force_fn, x)
    (hv,) = vjp_fn(v)
    h = 1e-5
    fd = (_forces(diazene_energy, x + h * v) - _forces(diazene_energy, x - h * v)) / (2 * h)
    assert float((hv - fd).abs().max()) < 1e-5 * float(fd.abs().max()) + 1e-2
    assert torch.allclose(force_fn(x), _forces(diazene_energy, x), atol=1e-9)


@needs_sevenn
def test_rotation_translation_invariance(diazene_energy):
    x = _replicas(2, seed=4)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64))
    q = q * torch.sign(torch.det(q))  # proper rotation
    y = x @ q.T + torch.tensor([0.7, -1.3, 2.1], dtype=torch.float64)
    f = _forces(diazene_energy, x)
    # exact up to rounding: e3nn's float32 constants give ~1e-9 relative errors in float64
    assert torch.allclose(diazene_energy(y), diazene_energy(x), rtol=0, atol=1e-6)
    assert torch.allclose(_forces(diazene_energy, y), f @ q.T, rtol=0, atol=1e-7 * float(f.abs().max()))
    t = x + torch.tensor([0.7, -1.3, 2.1], dtype=torch.float64)
    assert torch.allclose(diazene_energy(t), diazene_energy(x), rtol=0, atol=1e-9)


@needs_sevenn
def test_cutoff_selection_is_smooth(diazene_energy):
    """Two diazenes pulled apart through the 0.5 nm cutoff: energy continuous, additive beyond it."""
    def pair(d):
        shift = torch.tensor([d, 0.0, 0.0], dtype=torch.float64)
        return torch.cat([DIAZENE, DIAZENE + shift])[None]
    from openmm_nnbias.systems.azobenzene import SevenNetEnergy
    U = SevenNetEnergy([7, 7, 1, 1] * 2)
    single = float(diazene_energy(DIAZENE[None])[0])
    far = float(U(pair(1.0))[0])
    assert abs(far - 2 * single) < 1e-8
    e = [float(U(pair(d))[0]) for d in (0.6978, 0.6980, 0.6982)]  # H···H crosses 0.5 nm near d = 0.698
    assert abs(e[2] - e[0]) < 1e-3


@needs_sevenn
def test_simulator_and_partial_adjoint_run_on_sevennet(diazene_energy):
    masses = torch.tensor([14.007, 14.007, 1.008, 1.008], dtype=torch.float64)
    sim = LangevinSimulator(diazene_energy, masses, temperature=300.0, timestep=0.0005, friction=1.0, seed=0)
    R0 = _replicas(2, seed=6)
    traj = sim.run(R0, torch.zeros_like(R0), n_steps=6)
    assert bool(torch.isfinite(traj.positions).all())
    pairs = partial_adjoint(traj.positions, torch.tensor([6, 5]), torch.ones_like(R0), masses, 0.0005, 1.0,
                            make_force_fn(diazene_energy), window=3)
    assert len(pairs) == 6 and pairs.n_vjp_calls == 2 and bool(torch.isfinite(pairs.adjoints).all())


@needs_sevenn
def test_argument_errors():
    from openmm_nnbias.systems.azobenzene import SevenNetEnergy
    with pytest.raises(TypeError, match="atomic_numbers"):
        SevenNetEnergy([1.0, 1.0])
    with pytest.raises(ValueError, match="atomic_numbers"):
        SevenNetEnergy([])
    with pytest.raises(ValueError, match="dtype"):
        SevenNetEnergy([1, 1], dtype=torch.int64)


@needs_sevenn
def test_shape_errors(diazene_energy):
    with pytest.raises(ValueError, match=r"\(\.\.\., 4, 3\)"):
        diazene_energy(torch.zeros(2, 5, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="positions"):
        diazene_energy([[0.0, 0.0, 0.0]] * 4)


@pytest.mark.slow
@needs_sevenn
def test_azobenzene_setup_builds(azo_energy):
    """Minimal sizes (a SevenNet-0 force on azobenzene costs ~0.3 s per replica on one CPU core)."""
    from openmm_nnbias.recipes.diffsim.azobenzene import azobenzene_setup

    setup = azobenzene_setup(potential=azo_energy, n_replicas=2, n_steps=4, adjoint_steps=2, well_replicas=2,
                             well_steps=30, minimize_steps=6, dtype=torch.float32)
    info = setup.info
    assert setup.cvs.names == ["cnnc", "nnc"]
    assert torch.allclose(setup.masses, torch.tensor(AZOBENZENE_MASSES, dtype=torch.float32))
    assert abs(info["cis_cnnc_nnc"][0]) < 0.5 and abs(abs(info["trans_cnnc_nnc"][0]) - math.pi) < 0.3
    assert 0.2 < info["delta_e_cis_trans_ev"] < 0.8  # SevenNet-0 minima: 0.38 eV (benchmarks/RESULTS.md)
    cis_mean, trans_mean = setup.reactant_well.mean, setup.product_well.mean
    assert abs(float(cis_mean[0])) < 0.6 and abs(abs(float(trans_mean[0])) - math.pi) < 0.6
    assert not bool(setup.product_well.contains(cis_mean)) and not bool(setup.reactant_well.contains(trans_mean))
    assert setup.start_positions.shape[1:] == (24, 3)
