"""Wells, Eq. 5 loss, partial adjoint (vs autograd), Theorem 3.2 decay and the training loop."""

import copy
import math

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

from scipy.stats import chi2  # noqa: E402

from openmm_nnbias.bias import NeuralBias  # noqa: E402
from openmm_nnbias.cvs import CVSet, Distance, Position, Torsion  # noqa: E402
from openmm_nnbias._units import KB  # noqa: E402
from openmm_nnbias.diffsim import (DiffSimTrainer, LangevinSimulator,  # noqa: E402
                                   Well, bias_gradient, crossing_loss,
                                   loss_position_gradient, make_force_fn, partial_adjoint,
                                   success_fraction)
from openmm_nnbias.systems import MuellerBrownEnergy  # noqa: E402

F64 = torch.float64
MB_A = (-0.558, 1.442)
MB_B = (0.623, 0.028)


def _mb_cvs():
    return CVSet([Position([0, 0], ["x", "y"], -2.0, 2.0)])


def _start(xy, B, dtype=F64):
    return torch.tensor([[[xy[0], xy[1], 0.0]]], dtype=dtype).repeat(B, 1, 1)


# --------------------------------------------------------------------------- wells and loss

def test_well_from_samples_threshold_and_coverage():
    g = torch.Generator().manual_seed(0)
    L = torch.tensor([[0.3, 0.0, 0.0], [0.1, 0.2, 0.0], [-0.2, 0.05, 0.1]], dtype=F64)
    samples = torch.randn(20000, 3, generator=g, dtype=F64) @ L.T + torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    w = Well.from_samples(samples, p=0.1)
    assert w.threshold == pytest.approx(chi2.ppf(0.9, 3))
    torch.testing.assert_close(w.mean, torch.tensor([1.0, -2.0, 0.5], dtype=F64), atol=0.01, rtol=0)
    torch.testing.assert_close(w.covariance, L @ L.T, atol=0.003, rtol=0)
    assert float(w.contains(samples).double().mean()) == pytest.approx(0.9, abs=0.01)
    assert w.samples.shape[0] <= 2000
    back = Well.from_dict(w.to_dict())
    assert torch.equal(back.contains(samples[:100]), w.contains(samples[:100]))
    with pytest.raises(ValueError, match="p must lie"):
        Well.from_samples(samples, p=1.0)
    with pytest.raises(ValueError, match="singular"):
        Well.from_samples(torch.stack([samples[:, 0], 2 * samples[:, 0]], 1))
    with pytest.raises(ValueError, match="S > D"):
        Well.from_samples(samples[:3])


def test_periodic_well_wraps_around_pi():
    g = torch.Generator().manual_seed(1)
    phi = torch.remainder(math.pi + 0.1 * torch.randn(3000, generator=g, dtype=F64) + math.pi, 2 * math.pi) - math.pi
    psi = 1.0 + 0.1 * torch.randn(3000, generator=g, dtype=F64)
    w = Well.from_samples(torch.stack([phi, psi], 1), period=[2 * math.pi, math.inf])
    assert abs(abs(float(w.mean[0])) - math.pi) < 0.02
    assert float(w.covariance[0, 0]) == pytest.approx(0.01, rel=0.1)
    inside = w.contains(torch.tensor([[-math.pi + 0.02, 1.0], [math.pi - 0.02, 1.0], [0.0, 1.0]], dtype=F64))
    assert inside.tolist() == [True, True, False]
    # loss with the wrapped distance: a point at -pi+0.1 is 0.1 (not 2pi-0.1) from pi
    tgt = torch.tensor([math.pi, 1.0], dtype=F64)
    traj = torch.tensor([[[-math.pi + 0.5, 1.0]], [[-math.pi + 0.1, 1.0]]], dtype=F64)
    far = Well(tgt, 1e-6 * torch.eye(2, dtype=F64), [2 * math.pi, math.inf], 0.1, 1.0)
    r = crossing_loss(traj, far)
    assert r.loss_frame.tolist() == [1] and float(r.loss[0]) == pytest.approx(0.01)


def test_crossing_loss_and_success_fraction():
    w = Well(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64), [math.inf, math.inf], 0.1, 1.0)
    traj = torch.tensor([[[3.0, 0.0], [0.0, 5.0], [4.0, 0.0]],
                         [[2.0, 0.0], [0.0, 0.5], [3.0, 0.0]],
                         [[2.5, 0.0], [0.0, 9.0], [1.5, 0.0]]], dtype=F64)
    r = crossing_loss(traj, w)
    assert r.entered.tolist() == [False, True, False]
    assert r.loss.tolist() == [4.0, 0.0, 2.25]
    assert r.loss_frame.tolist() == [1, 1, 2]
    r2 = crossing_loss(traj, w, target=torch.tensor([[3.0, 0.0], [0.0, 0.0], [0.0, 0.0]], dtype=F64))
    assert r2.loss.tolist() == [0.0, 0.0, 2.25] and r2.loss_frame.tolist() == [0, 1, 2]
    assert success_fraction(traj, w) == pytest.approx(1 / 3)
    assert success_fraction(traj, w, criterion="closest") == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="criterion"):
        success_fraction(traj, w, criterion="any")


# --------------------------------------------------------------------------- adjoint vs autograd

def _oracle_gradient(U, cvs, net, masses, R0, V0, dt, gamma, T, n_steps, seed, loss_frames, targets, cut=None):
    """Autograd through the simulator with positions detached at every step.

    ``cut``: detach the velocity after this step (truncated back-propagation).
    """
    gen = torch.Generator().manual_seed(seed)
    m = masses[None, :, None]
    sigma = torch.sqrt(2 * gamma * KB * T * dt / m)
    R, V = R0, V0.clone().requires_grad_(True)
    frames = [R]
    for n in range(1, n_steps + 1):
        xi = torch.randn(R0.shape, generator=gen, dtype=R0.dtype)
        R = R.detach() + dt * V
        if not R.requires_grad:
            R.requires_grad_(True)
        E = U(R) + net(cvs(R))
        (g,) = torch.autograd.grad(E.sum(), R, create_graph=True)
        V = V + dt * (-g / m - gamma * V) + sigma * xi
        if cut is not None and n == cut:
            V = V.detach()
        frames.append(R)
    B = R0.shape[0]
    loss = sum(((cvs(frames[int(L)][b]) - targets[b]) ** 2).sum() for b, L in enumerate(loss_frames)) / B
    params = list(net.parameters())
    return [g if g is not None else torch.zeros_like(p)
            for g, p in zip(torch.autograd.grad(loss, params, allow_unused=True), params)], torch.stack(
        [f.detach() for f in frames])


def _adjoint_gradient(U, cvs, net, masses, positions, dt, gamma, loss_frames, targets, window):
    B = positions.shape[1]
    frames = torch.as_tensor(loss_frames)
    R_L = positions[frames, torch.arange(B)]
    lg = loss_position_gradient(cvs, R_L, targets, cvs.period())
    pairs = partial_adjoint(positions, frames, lg, masses, dt, gamma,
                            make_force_fn(lambda x: U(x) + net(cvs(x))), window)
    return bias_gradient(pairs, lambda x: net(cvs(x)), net.parameters(), dt, n_replicas=B), pairs


@pytest.fixture
def mb_setup():
    """Three particles of different masses: Müller–Brown on particle 0, springs to particles 1 and 2;
    a tanh MLP bias over (x0, y0, |r2 − r0|)."""
    mb = MuellerBrownEnergy()

    def U(x):
        d1 = x[..., 1, :] - x[..., 0, :]
        d2 = torch.linalg.norm(x[..., 2, :] - x[..., 0, :], dim=-1)
        return mb(x) + 100.0 * (d1 ** 2).sum(-1) + 400.0 * (d2 - 0.15) ** 2

    cvs = CVSet([Position([0, 0], ["x", "y"], -2.0, 2.0), Distance([0, 2], 0.0, 1.0, names="d")])
    net = NeuralBias.from_cvs(cvs, hidden=(8, 8), activation="tanh", zero_output=False, seed=3)
    with torch.no_grad():
        for layer in net.layers:
            layer.weight.mul_(3.0)  # a bias whose Hessian matters
        net.layers[-1].weight.mul_(30.0)
    masses = torch.tensor([1.0, 4.0, 12.0], dtype=F64)
    g = torch.Generator().manual_seed(2)
    R0 = torch.tensor([[MB_A[0], MB_A[1], 0.0], [MB_A[0] + 0.05, MB_A[1], 0.0], [MB_A[0], MB_A[1] + 0.15, 0.0]],
                      dtype=F64).repeat(3, 1, 1) + 0.02 * torch.randn(3, 3, 3, generator=g, dtype=F64)
    V0 = 3.0 * torch.randn(3, 3, 3, generator=g, dtype=F64) / masses[None, :, None].sqrt()
    targets = torch.tensor([MB_B + (0.2,), MB_B + (0.1,), (0.0, 0.5, 0.3)], dtype=F64)
    return U, cvs, net, masses, R0, V0, targets


def _rel_close(got, ref, rtol):
    num = math.sqrt(sum(float(((a - b) ** 2).sum()) for a, b in zip(got, ref)))
    den = math.sqrt(sum(float((b ** 2).sum()) for b in ref))
    assert den > 0
    assert num <= rtol * den, (num, den)


def test_adjoint_gradient_equals_autograd_full_window(mb_setup):
    U, cvs, net, masses, R0, V0, targets = mb_setup
    dt, gamma, T, n = 0.002, 5.0, 300.0, 20
    frames_given = [20, 13, 7]
    ref, _ = _oracle_gradient(U, cvs, net, masses, R0, V0, dt, gamma, T, n, 11, frames_given, targets)
    sim = LangevinSimulator(U, masses, T, dt, gamma, seed=11)
    traj = sim.run(R0, V0, n, bias=lambda x: net(cvs(x)))
    got, pairs = _adjoint_gradient(U, cvs, net, masses, traj.positions, dt, gamma, frames_given, targets, 50)
    assert len(pairs) == 19 + 12 + 6 and sorted(set(pairs.step.tolist())) == list(range(1, 20))
    _rel_close(got, ref, 1e-6)
    # the Hessian term matters: dropping it (pure friction decay) breaks the agreement
    pairs_nohess = partial_adjoint(traj.positions, torch.tensor(frames_given),
                                   loss_position_gradient(cvs, traj.positions[frames_given, torch.arange(3)],
                                                          targets, cvs.period()),
                                   masses, dt, gamma, make_force_fn(lambda x: 0.0 * x.sum((-2, -1))), 50)
    bad = bias_gradient(pairs_nohess, lambda x: net(cvs(x)), net.parameters(), dt, n_replicas=3)
    num = math.sqrt(sum(float(((a - b) ** 2).sum()) for a, b in zip(bad, ref)))
    assert num > 1e-2 * math.sqrt(sum(float((b ** 2).sum()) for b in ref))
    # so does the bias part of the Hessian
    pairs_u = partial_adjoint(traj.positions, torch.tensor(frames_given),
                              loss_position_gradient(cvs, traj.positions[frames_given, torch.arange(3)],
                                                     targets, cvs.period()),
                              masses, dt, gamma, make_force_fn(U), 50)
    bad = bias_gradient(pairs_u, lambda x: net(cvs(x)), net.parameters(), dt, n_replicas=3)
    num = math.sqrt(sum(float(((a - b) ** 2).sum()) for a, b in zip(bad, ref)))
    assert num > 1e-5 * math.sqrt(sum(float((b ** 2).sum()) for b in ref))


def test_adjoint_gradient_equals_autograd_with_loss_rule_and_truncation(mb_setup):
    U, cvs, net, masses, R0, V0, targets = mb_setup
    dt, gamma, T, n = 0.002, 5.0, 300.0, 20
    sim = LangevinSimulator(U, masses, T, dt, gamma, seed=5)
    traj = sim.run(R0, V0, n, bias=lambda x: net(cvs(x)))
    far = Well(torch.tensor(MB_B + (0.2,), dtype=F64), 1e-4 * torch.eye(3, dtype=F64), [math.inf] * 3, 0.1, 6.3)
    res = crossing_loss(cvs(traj.positions), far, targets)
    assert not bool(res.entered.any()) and int(res.loss_frame.max()) > 1
    frames = res.loss_frame.tolist()
    ref, _ = _oracle_gradient(U, cvs, net, masses, R0, V0, dt, gamma, T, n, 5, frames, targets)
    got, _ = _adjoint_gradient(U, cvs, net, masses, traj.positions, dt, gamma, frames, targets, 50)
    _rel_close(got, ref, 1e-6)
    # truncated window K = 5 from a common loss frame 20 == autograd with V detached after step 14
    K = 5
    ref_cut, _ = _oracle_gradient(U, cvs, net, masses, R0, V0, dt, gamma, T, n, 5, [20] * 3, targets, cut=20 - K - 1)
    got_cut, pairs = _adjoint_gradient(U, cvs, net, masses, traj.positions, dt, gamma, [20] * 3, targets, K)
    assert len(pairs) == 3 * K and pairs.window_steps == K and pairs.n_vjp_calls == K - 1
    _rel_close(got_cut, ref_cut, 1e-6)
    full, _ = _adjoint_gradient(U, cvs, net, masses, traj.positions, dt, gamma, [20] * 3, targets, 50)
    num = math.sqrt(sum(float(((a - b) ** 2).sum()) for a, b in zip(full, got_cut)))
    assert num > 1e-6 * math.sqrt(sum(float((b ** 2).sum()) for b in full))


def test_adjoint_decays_as_friction_power_without_forces():
    masses = torch.tensor([1.0, 12.0], dtype=F64)
    dt, gamma, n = 0.001, 7.0, 40
    g = torch.Generator().manual_seed(0)
    positions = torch.randn(n + 1, 2, 2, 3, generator=g, dtype=F64)
    loss_grad = torch.randn(2, 2, 3, generator=g, dtype=F64)
    pairs = partial_adjoint(positions, torch.tensor([n, n - 5]), loss_grad, masses, dt, gamma,
                            make_force_fn(lambda x: 0.0 * x.sum((-2, -1))), window=n)
    m = masses[None, :, None]
    for b, L in ((0, n), (1, n - 5)):
        sel = pairs.replica == b
        steps, adj = pairs.step[sel], pairs.adjoints[sel]
        assert steps.tolist() == list(range(L - 1, 0, -1))
        j = (L - 1 - steps).to(F64)[:, None, None]
        expected = (1.0 - gamma * dt) ** j * dt * loss_grad[b] / m
        torch.testing.assert_close(adj, expected, rtol=1e-12, atol=0)


def test_adjoint_norm_decay_rate_theorem_3_2():
    """Anisotropic harmonic well U = ½ Σ k_d x_d², mass M: the late-time decay rate of ‖a(τ)‖,
    fitted as the slope of log‖a‖ over τ ∈ [1, 3] ps, equals ε = γ + dt·h_min/M within 10 %,
    and ‖a(τ)‖ ≤ ‖a(0)‖ exp(−ε τ) holds at every step (Theorem 3.2)."""
    k = torch.tensor([400.0, 1600.0, 4000.0], dtype=F64)
    M, dt, gamma, n = 2.0, 0.01, 5.0, 310
    masses = torch.tensor([M], dtype=F64)

    def energy(x):
        return 0.5 * (k * x ** 2).sum((-2, -1))

    sim = LangevinSimulator(energy, masses, 300.0, dt, gamma, seed=0)
    traj = sim.run(torch.zeros(1, 1, 3, dtype=F64), torch.zeros(1, 1, 3, dtype=F64), n)
    loss_grad = torch.tensor([[[1.0, 1.0, 1.0]]], dtype=F64)
    pairs = partial_adjoint(traj.positions, torch.tensor([n]), loss_grad, masses, dt, gamma,
                            make_force_fn(energy), window=n)
    tau = dt * (n - 1 - pairs.step).to(F64)
    norm = pairs.adjoints.flatten(1).norm(dim=1)
    eps = gamma + dt * float(k.min()) / M
    assert bool((norm <= norm[0] * torch.exp(-eps * tau) * (1 + 1e-12)).all())
    sel = (tau >= 1.0) & (tau <= 3.0)
    rate = -np.polyfit(tau[sel].numpy(), np.log(norm[sel].numpy()), 1)[0]
    assert rate == pytest.approx(eps, rel=0.10)
    # exactly: the slow mode is multiplied by (1 − ε dt) per step
    assert rate == pytest.approx(-math.log(1.0 - eps * dt) / dt, rel=1e-6)
    # the fastest mode would give a very different rate
    assert abs(rate - (gamma + dt * float(k.max()) / M)) > 0.5 * eps


# --------------------------------------------------------------------------- training loop

def _mb_trainer(n_steps, seed=0, window=40, n_replicas=4):
    torch.manual_seed(0)
    U = MuellerBrownEnergy()
    cvs = _mb_cvs()
    masses = torch.ones(1, dtype=F64)
    sim = LangevinSimulator(U, masses, 300.0, 0.001, 10.0, seed=1)
    samples_B = sim.run(_start(MB_B, 4), torch.zeros(4, 1, 3, dtype=F64), 150, record_every=5).positions[5:]
    well_B = Well.from_samples(cvs(samples_B).reshape(-1, 2))
    pool_A = sim.run(_start(MB_A, 4), torch.zeros(4, 1, 3, dtype=F64), 100, record_every=10).positions[2:]
    net = NeuralBias.from_cvs(cvs, hidden=(16, 16), activation="tanh", seed=0)
    return DiffSimTrainer(U, cvs, net, masses, well_B, pool_A.reshape(-1, 1, 3), temperature=300.0,
                          timestep=0.001, friction=10.0, n_steps=n_steps, n_replicas=n_replicas,
                          adjoint_steps=window, batch_size=30, lr=1e-2, seed=seed)


def test_training_smoke_changes_weights_and_window_is_fixed(tmp_path):
    tr = _mb_trainer(n_steps=200)
    w0 = copy.deepcopy(tr.bias.state_dict())
    results = tr.train(2, checkpoint_dir=str(tmp_path))
    assert [r.epoch for r in results] == [1, 2] and len(tr.history) == 2
    assert all(math.isfinite(r.mean_loss) and r.mean_loss > 0 for r in results)
    assert results[0].success_fraction == 0.0 and results[0].n_active > 0
    assert results[0].n_updates == math.ceil(results[0].n_pairs / 30) > 0
    changed = any(not torch.equal(w0[k], v) for k, v in tr.bias.state_dict().items())
    assert changed
    assert (tmp_path / "epoch_0002.pt").exists() and (tmp_path / "latest.pt").exists()
    # the backward window is K steps whatever the trajectory length
    for r in results:
        assert r.window_steps == 40 and r.n_vjp_calls <= 39 and r.n_pairs <= 40 * 4
    long = _mb_trainer(n_steps=600).train_epoch()
    assert long.window_steps == 40 and long.n_vjp_calls <= 39 and long.n_pairs <= 40 * 4
    # exported bias = bias(cvs(x))
    tr.export(str(tmp_path / "bias.pt"))
    module = torch.jit.load(str(tmp_path / "bias.pt"))
    x = torch.tensor([[0.1, 0.7, 0.0]], dtype=F64)
    with torch.no_grad():
        assert float(module(x)) == pytest.approx(float(tr.bias_energy(x[None])[0]), rel=1e-12, abs=1e-12)


def test_checkpoint_resume_is_bitwise_reproducible():
    a = _mb_trainer(n_steps=120, window=20, n_replicas=3)
    a.train_epoch()
    state = copy.deepcopy(a.state_dict())
    a.train_epoch()
    b = _mb_trainer(n_steps=120, window=20, n_replicas=3, seed=99)
    b.load_state_dict(state)
    assert b.epoch == 1
    b.train_epoch()
    for k, v in a.bias.state_dict().items():
        assert torch.equal(v, b.bias.state_dict()[k]), k
    assert a.history[-1]["mean_loss"] == b.history[-1]["mean_loss"]
    with pytest.raises(ValueError, match="lacks"):
        b.load_state_dict({"epoch": 1})


def test_trainer_validation():
    cvs = CVSet([Torsion([0, 1, 2, 3], "phi")])
    net = NeuralBias.from_cvs(_mb_cvs(), hidden=(4,))
    well = Well(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64), [math.inf] * 2, 0.1, 4.6)
    with pytest.raises(ValueError, match="dimension mismatch"):
        DiffSimTrainer(MuellerBrownEnergy(), cvs, net, torch.ones(4, dtype=F64), well,
                       torch.zeros(4, 3, dtype=F64), temperature=300.0)
    with pytest.raises(ValueError, match="dtype"):
        DiffSimTrainer(MuellerBrownEnergy(), _mb_cvs(), net, torch.ones(1), well,
                       torch.zeros(1, 3, dtype=torch.float32), temperature=300.0)
    with pytest.raises(ValueError, match="adjoint_steps"):
        DiffSimTrainer(MuellerBrownEnergy(), _mb_cvs(), net, torch.ones(1, dtype=F64), well,
                       torch.zeros(1, 3, dtype=F64), temperature=300.0, adjoint_steps=0)
