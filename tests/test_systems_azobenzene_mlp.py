"""AzobenzeneMLP: invariances, derivatives, batching, TorchScript, save/load, fit, argument errors."""

import math

import pytest
import torch

from openmm_nnbias.systems.azobenzene.molecule import azobenzene_positions
from openmm_nnbias.systems.azobenzene.mlp import AzobenzeneMLP, fit
from openmm_nnbias.diffsim.langevin import make_force_fn


def _model(seed=0):
    torch.manual_seed(seed)
    m = AzobenzeneMLP(hidden=(32, 16), seed=seed)
    x = azobenzene_positions("trans") + 0.01 * torch.randn(20, 24, 3, dtype=torch.float64)
    m.set_normalization(x, torch.randn(20, dtype=torch.float64) * 50.0)
    return m


def _rotation(seed=1):
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q * torch.sign(torch.det(q))


def test_rotation_translation_invariance():
    m = _model()
    x = azobenzene_positions("cis")
    y = x @ _rotation().T + torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    assert torch.allclose(m(x), m(y), rtol=0, atol=1e-9)


def test_forces_match_finite_differences():
    m = _model()
    x = azobenzene_positions("trans").clone().requires_grad_(True)
    (g,) = torch.autograd.grad(m(x), x)
    h = 1e-6
    for i, k in [(0, 0), (6, 1), (7, 2), (20, 0)]:
        dx = torch.zeros_like(x)
        dx[i, k] = h
        with torch.no_grad():
            fd = (m(x.detach() + dx) - m(x.detach() - dx)) / (2 * h)
        assert math.isclose(float(g[i, k]), float(fd), rel_tol=1e-5, abs_tol=1e-6)


def test_vector_hessian_product_matches_finite_differences():
    # the simulator's force function (torch.func.grad) and the partial adjoint's vjp of it
    m = _model()
    force = make_force_fn(m)
    x = azobenzene_positions("cis")[None].clone()
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    f0, vjp = torch.func.vjp(force, x)
    (vh,) = vjp(v)
    # the Hessian is symmetric: v·∂F/∂x = ∂F/∂x·v ≈ (F(x + hv) − F(x − hv)) / 2h
    h = 1e-5
    with torch.no_grad():
        fd = (force(x + h * v) - force(x - h * v)) / (2 * h)
    assert torch.allclose(vh, fd, rtol=1e-5, atol=1e-4 * float(fd.abs().max()))
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(m(xr).sum(), xr)
    assert torch.allclose(f0, -g, rtol=0, atol=1e-10)


def test_batched_equals_one_by_one_and_shapes():
    m = _model()
    x = azobenzene_positions("trans") + 0.01 * torch.randn(4, 24, 3, dtype=torch.float64)
    e = m(x)
    assert e.shape == (4,)
    assert torch.allclose(e, torch.stack([m(xi) for xi in x]), rtol=0, atol=1e-10)
    assert m(x.reshape(2, 2, 24, 3)).shape == (2, 2)
    assert m(x[0]).shape == ()
    assert m(x.float()).dtype == torch.float32


def test_scripted_equals_eager():
    m = _model()
    s = torch.jit.script(m)
    x = (azobenzene_positions("cis") + 0.01 * torch.randn(3, 24, 3, dtype=torch.float64)).requires_grad_(True)
    e1, e2 = m(x), s(x)
    assert torch.allclose(e1, e2, rtol=0, atol=1e-10)
    (g1,) = torch.autograd.grad(e1.sum(), x)
    (g2,) = torch.autograd.grad(e2.sum(), x)
    assert torch.allclose(g1, g2, rtol=0, atol=1e-9)


def test_save_load_round_trip(tmp_path):
    m = _model()
    path = str(tmp_path / "mlp.pt")
    m.save(path)
    m2 = AzobenzeneMLP.load(path)
    x = azobenzene_positions("trans")
    assert m2.hidden == (32, 16) and m2.activation == "silu"
    assert torch.equal(m(x), m2(x))
    assert AzobenzeneMLP.load(path, dtype=torch.float32).energy_std.dtype == torch.float32
    torch.save({"foo": 1}, str(tmp_path / "bad.pt"))
    with pytest.raises(ValueError, match="path"):
        AzobenzeneMLP.load(str(tmp_path / "bad.pt"))


def test_fit_reduces_loss_on_synthetic_data():
    # target: harmonic springs on a few bonds of the trans structure
    x0 = azobenzene_positions("trans")
    gen = torch.Generator().manual_seed(0)
    x = x0 + 0.01 * torch.randn(80, 24, 3, generator=gen, dtype=torch.float64)
    pairs = torch.tensor([[6, 7], [3, 6], [7, 8], [0, 14]])

    def target(p):
        r = (p[:, pairs[:, 0]] - p[:, pairs[:, 1]]).norm(dim=-1)
        r0 = (x0[pairs[:, 0]] - x0[pairs[:, 1]]).norm(dim=-1)
        return 1e5 * ((r - r0) ** 2).sum(-1)

    xr = x.clone().requires_grad_(True)
    e = target(xr)
    (g,) = torch.autograd.grad(e.sum(), xr)
    m = AzobenzeneMLP(hidden=(32, 16), seed=1)
    hist = fit(m, x, e.detach(), -g, epochs=30, batch_size=16, lr=3e-3, val_fraction=0.25, patience=30)
    assert hist["val_loss"][hist["best_epoch"]] < 0.5 * hist["val_loss"][0]
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    assert hist["val_index"].numel() == 20 and hist["train_index"].numel() == 60


def test_argument_errors():
    with pytest.raises(TypeError, match="n_atoms"):
        AzobenzeneMLP(n_atoms=2.5)
    with pytest.raises(ValueError, match="n_atoms"):
        AzobenzeneMLP(n_atoms=1)
    with pytest.raises(TypeError, match="hidden"):
        AzobenzeneMLP(hidden="64")
    with pytest.raises(ValueError, match="hidden"):
        AzobenzeneMLP(hidden=(0,))
    with pytest.raises(ValueError, match="activation"):
        AzobenzeneMLP(activation="relu")
    with pytest.raises(ValueError, match="dtype"):
        AzobenzeneMLP(dtype=torch.int64)
    m = AzobenzeneMLP(hidden=(8,))
    x = torch.rand(4, 24, 3, dtype=torch.float64)
    e = torch.zeros(4, dtype=torch.float64)
    with pytest.raises(TypeError, match="model"):
        fit(torch.nn.Linear(1, 1), x, e)
    with pytest.raises(TypeError, match="positions"):
        fit(m, x.numpy(), e)
    with pytest.raises(ValueError, match="positions"):
        fit(m, x[:, :10], e)
    with pytest.raises(ValueError, match="energies"):
        fit(m, x, e[:3])
    with pytest.raises(ValueError, match="forces"):
        fit(m, x, e, x[:, :5])
    with pytest.raises(ValueError, match="val_fraction"):
        fit(m, x, e, val_fraction=1.0)
    with pytest.raises(ValueError, match="epochs"):
        fit(m, x, e, epochs=0)
    with pytest.raises(ValueError, match="lr"):
        fit(m, x, e, lr=-1.0)


def test_repulsion_prevents_collapse():
    m = _model()
    x = azobenzene_positions("trans")
    y = x.clone()
    y[14] = y[0] + 0.2 * (y[14] - y[0])  # H pushed to 0.02 nm of its carbon
    off = AzobenzeneMLP(hidden=(32, 16), repulsion=0.0)
    off.load_state_dict({**m.state_dict(), "repulsion": torch.tensor(0.0, dtype=torch.float64)})
    with torch.no_grad():
        assert float(m(y) - m(x)) > 1e4
        gap = float(m(x) - off(x))
    assert gap == pytest.approx(float(((0.075 / torch.pdist(x)) ** 12).sum()), rel=1e-9)
    with pytest.raises(ValueError, match="repulsion"):
        AzobenzeneMLP(repulsion=-1.0)
    with pytest.raises(ValueError, match="repulsion_radius"):
        AzobenzeneMLP(repulsion_radius=0.0)


def test_pretrained_model_ships_with_the_package_and_knows_both_isomers():
    """The shipped GFN1 fit loads (float64 and float32), scripts, and minimizes to a cis above trans
    by a few kJ/mol (GFN1-xTB: 10 kJ/mol) with the CNNC dihedrals of both isomers."""
    from importlib.resources import files

    from openmm_nnbias.systems.azobenzene.mlp import PRETRAINED_FILE
    from openmm_nnbias.recipes.diffsim.azobenzene import azobenzene_cvs, minimize_positions

    assert (files("openmm_nnbias.systems.azobenzene") / "data" / PRETRAINED_FILE).is_file()
    m = AzobenzeneMLP.pretrained()
    assert m.energy_std.dtype == torch.float64
    assert AzobenzeneMLP.pretrained(dtype=torch.float32).energy_std.dtype == torch.float32
    x = azobenzene_positions("cis") + 0.002 * torch.randn(24, 3, generator=torch.Generator().manual_seed(0),
                                                          dtype=torch.float64)
    assert torch.allclose(torch.jit.script(m)(x), m(x), rtol=0, atol=1e-9)
    (e_cis, s_cis), (e_trans, s_trans) = [
        (e, azobenzene_cvs()(xm).tolist()) for xm, e, _ in
        (minimize_positions(m, azobenzene_positions(k), max_steps=300) for k in ("cis", "trans"))]
    assert 2.0 < e_cis - e_trans < 25.0  # kJ/mol
    assert abs(s_cis[0]) < math.radians(30) and abs(s_trans[0]) > math.radians(160)
