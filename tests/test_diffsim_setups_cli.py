"""Müller–Brown DiffSim setup (barrier, wells vs Boltzmann quadrature) and the ``diffsim`` command line."""

import functools
import os

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

from openmm_nnbias.bias import NeuralBias  # noqa: E402
from openmm_nnbias.cli import main  # noqa: E402
from openmm_nnbias.cvs import CVSet, Position  # noqa: E402
from openmm_nnbias._units import KB  # noqa: E402
from openmm_nnbias.diffsim import unbiased_well_run  # noqa: E402
from openmm_nnbias.recipes.diffsim import mueller_brown as setups  # noqa: E402
from openmm_nnbias.recipes.diffsim.mueller_brown import MB_ENERGY_SCALE, MB_MASS, MB_MINIMA, mueller_brown_setup  # noqa: E402
from openmm_nnbias.runners.diffsim import LOG_HEADER, build_diffsim, run_diffsim  # noqa: E402
from openmm_nnbias.systems import MuellerBrownEnergy  # noqa: E402

F64 = torch.float64
TINY = dict(well_replicas=4, well_steps=150)  # cheap wells for CLI mechanics


def _mb_cvs():
    return CVSet([Position(0, "x", -1.5, 1.2), Position(0, "y", -0.2, 2.0)])


def test_mueller_brown_setup_matches_authors_difficulty():
    s = mueller_brown_setup(n_replicas=6, n_steps=60, adjoint_steps=20, **TINY)
    kT = KB * 300.0
    # literature MB values (Müller & Brown 1979): A = -146.70, A/C saddle = -40.66 (MB units);
    # the authors' 0.0866 kcal/mol per unit -> 9.18 kcal/mol
    assert s.info["barrier_kT"] == pytest.approx((146.70 - 40.66) * 0.0866 * 4.184 / kT, abs=0.01)
    assert s.info["barrier_kT"] == pytest.approx(15.40, abs=0.01)
    assert MB_ENERGY_SCALE == pytest.approx(0.36234, abs=1e-5) and MB_MASS == pytest.approx(2.56)
    assert s.cvs.names == ["x", "y"] and s.trainer.bias is s.bias
    a = torch.tensor(MB_MINIMA["A"], dtype=F64)
    b = torch.tensor(MB_MINIMA["B"], dtype=F64)
    assert bool(s.reactant_well.contains(a)) and not bool(s.reactant_well.contains(b))
    assert bool(s.product_well.contains(b)) and not bool(s.product_well.contains(a))
    with torch.no_grad():
        start_cv = s.cvs(s.start_positions)
        assert float(s.bias(start_cv).abs().max()) == 0.0  # training starts from B = 0
    assert float(s.reactant_well.contains(start_cv).double().mean()) > 0.7
    r = s.trainer.train_epoch()
    assert r.success_fraction == 0.0 and r.mean_loss > 1.0  # nm^2: far from B
    with pytest.raises(ValueError, match="n_replicas"):
        mueller_brown_setup(n_replicas=0)
    with pytest.raises(ValueError, match="mass"):
        mueller_brown_setup(mass=-1.0)


def test_reactant_well_matches_boltzmann_quadrature():
    """Mean and covariance of the unbiased samples in A vs exact ∫ x exp(−U/kT) on a grid."""
    U = MuellerBrownEnergy(MB_ENERGY_SCALE)
    kT = KB * 300.0
    xs, ys = np.linspace(-1.3, 0.2, 300), np.linspace(0.9, 2.1, 300)
    X, Y = np.meshgrid(xs, ys)
    grid = torch.tensor(np.stack([X.ravel(), Y.ravel(), 0 * X.ravel()], 1))[:, None, :]
    e = U(grid).numpy()
    w = np.exp(-(e - e.min()) / kT)
    w /= w.sum()
    mean = np.array([(w * X.ravel()).sum(), (w * Y.ravel()).sum()])
    d = np.stack([X.ravel() - mean[0], Y.ravel() - mean[1]], 1)
    cov = (d * w[:, None]).T @ d
    well, frames = unbiased_well_run(U, torch.tensor([MB_MASS], dtype=F64),
                                     torch.tensor([[*MB_MINIMA["A"], 0.0]], dtype=F64), _mb_cvs(),
                                     temperature=300.0, timestep=0.002, friction=10.0, n_replicas=32,
                                     n_steps=600, equilibration=150, record_every=5, seed=3)
    assert frames.shape == (32 * 90, 1, 3)
    np.testing.assert_allclose(well.mean.numpy(), mean, atol=0.03)
    np.testing.assert_allclose(well.covariance.numpy(), cov, rtol=0, atol=0.25 * np.abs(cov).max())
    with pytest.raises(ValueError, match="equilibration"):
        unbiased_well_run(U, torch.ones(1, dtype=F64), torch.zeros(1, 3, dtype=F64), _mb_cvs(),
                          temperature=300.0, timestep=0.001, friction=1.0, n_replicas=2, n_steps=10,
                          equilibration=10)


def test_cli_tiny_run_writes_bias_log_checkpoint_and_plot(tmp_path, monkeypatch):
    out = str(tmp_path / "run")
    monkeypatch.setattr(setups, "mueller_brown_setup", functools.partial(mueller_brown_setup, **TINY))
    assert main(["diffsim", "--system", "mueller-brown", "--epochs", "2", "--replicas", "4", "--steps", "40",
                 "--out", out, "--threads", "1", "--no-progress"]) == 0
    for name in ("bias.pt", "checkpoint.pt", "diffsim.log"):
        assert os.path.exists(os.path.join(out, name)), name
    lines = open(os.path.join(out, "diffsim.log")).read().splitlines()
    assert lines[0] == LOG_HEADER and [ln.split()[0] for ln in lines[1:]] == ["1", "2"]
    state = torch.load(os.path.join(out, "checkpoint.pt"), weights_only=False)
    assert state["epoch"] == 2 and state["cli"]["n_replicas"] == 4 and state["cli"]["n_steps"] == 40
    from openmm_nnbias.analysis.plots import plot_run

    assert [os.path.basename(p) for p in plot_run(out)] == ["diffsim.png"]


def test_bias_pt_equals_trainer_bias(tmp_path):
    out = str(tmp_path / "run")
    setup = run_diffsim("mueller-brown", out, 2, replicas=4, steps=40, progress=False, lr=0.05, **TINY)
    scripted = torch.jit.load(os.path.join(out, "bias.pt"))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(50, 1, 3, generator=g, dtype=F64) * torch.tensor([2.7, 2.2, 0.2], dtype=F64) \
        + torch.tensor([-1.5, -0.2, -0.1], dtype=F64)
    with torch.no_grad():
        ref = setup.trainer.bias_energy(x)
        assert float(ref.abs().max()) > 1e-3  # a non-trivial bias
        torch.testing.assert_close(scripted(x), ref, rtol=1e-12, atol=1e-12)
        # and the checkpoint's weights rebuild the same function
        state = torch.load(os.path.join(out, "checkpoint.pt"), weights_only=False)
        cfg = dict(state["bias_config"])
        cfg.pop("dtype")
        net = NeuralBias(**cfg)
        net.load_state_dict(state["bias"])
        torch.testing.assert_close(net(_mb_cvs()(x)), ref, rtol=1e-12, atol=1e-12)
    # forces: autograd through bias.pt equal central finite differences of the trainer's bias
    xr = x[:5].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(scripted(xr).sum(), xr)
    h = 1e-6
    with torch.no_grad():
        for k in range(2):
            dx = torch.zeros_like(x[:5])
            dx[:, 0, k] = h
            fd = (setup.trainer.bias_energy(x[:5] + dx) - setup.trainer.bias_energy(x[:5] - dx)) / (2 * h)
            torch.testing.assert_close(grad[:, 0, k], fd, rtol=1e-6, atol=1e-7)


def test_restart_continues_exactly(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    run_diffsim("mueller-brown", a, 2, replicas=4, steps=40, progress=False, lr=0.05, **TINY)
    run_diffsim("mueller-brown", a, 3, replicas=4, steps=40, progress=False, lr=0.05, restart=True, **TINY)
    run_diffsim("mueller-brown", b, 3, replicas=4, steps=40, progress=False, lr=0.05, **TINY)
    sa = torch.load(os.path.join(a, "checkpoint.pt"), weights_only=False)
    sb = torch.load(os.path.join(b, "checkpoint.pt"), weights_only=False)
    assert sa["epoch"] == sb["epoch"] == 3
    for k in sb["bias"]:
        assert torch.equal(sa["bias"][k], sb["bias"][k]), k
    assert torch.equal(sa["sim_rng"], sb["sim_rng"])
    la = [ln.split()[:3] for ln in open(os.path.join(a, "diffsim.log")) if not ln.startswith("#")]
    lb = [ln.split()[:3] for ln in open(os.path.join(b, "diffsim.log")) if not ln.startswith("#")]
    assert la == lb and len(la) == 3
    with pytest.raises(ValueError, match="n_replicas"):
        run_diffsim("mueller-brown", a, 4, replicas=5, steps=40, progress=False, lr=0.05, restart=True, **TINY)
    with pytest.raises(ValueError, match="no checkpoint"):
        run_diffsim("mueller-brown", str(tmp_path / "none"), 1, restart=True, progress=False)


def test_bad_system_gives_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["diffsim", "--system", "argon", "--epochs", "1", "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "invalid choice: 'argon'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="system must be one of mueller-brown, alanine-dipeptide"):
        build_diffsim("argon")
    assert main(["diffsim", "--system", "mueller-brown", "--epochs", "-1", "--out", str(tmp_path)]) == 2
