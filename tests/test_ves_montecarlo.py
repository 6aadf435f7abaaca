"""Monte Carlo target of Deep-VES (no grid): sampler, grid-vs-MC Eq. 10 average, monitors, restarts."""

import math
import os

import numpy as np
import pytest
import torch

from openmm_nnbias.bias import NeuralBias
from openmm_nnbias.ves import CVGrid, DeepVESOptimizer
from openmm_nnbias.ves.monitors import MarginalKLMonitor, RecrossingMonitor
from openmm_nnbias.ves.montecarlo import MetropolisSampler, MonteCarloTarget

from _devices import DEFAULT_PLATFORM, DEVICES, platform_properties

torch.set_num_threads(1)
F64 = torch.float64
KT, GAMMA = 2.494, 10.0
PI = math.pi


def torsion_bias(n_cv, seed=3, scale=300.0, hidden=(16, 8)):
    """Smooth (tanh) random bias over n_cv torsions; ``scale`` sets V's range (~58 kJ/mol in 2D)."""
    bias = NeuralBias([True] * n_cv, [-PI] * n_cv, [PI] * n_cv, hidden=hidden, activation="tanh",
                      seed=seed, zero_output=False)
    with torch.no_grad():
        bias.layers[-1].weight.mul_(scale)
    return bias


def param_grad(bias, points, weights):
    """∂/∂w Σ_i weights_i V(points_i), flattened."""
    params = list(bias.parameters())
    loss = (weights * bias(points)).sum()
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])


# ---------------------------------------------------------------------------------------- sampler
def test_periodic_moves_wrap_and_keep_uniform_target_uniform():
    sampler = MetropolisSampler([-PI, 0.0], [PI, 1.0], [True, True], chains=400, stepSize=[5.0, 0.7],
                                seed=2)
    x = sampler.run(lambda s: torch.zeros(s.shape[0], dtype=F64), steps=25)
    assert x.shape == (10000, 2)
    assert bool((x[:, 0] >= -PI).all() and (x[:, 0] < PI).all())
    assert bool((x[:, 1] >= 0.0).all() and (x[:, 1] < 1.0).all())
    assert sampler.acceptance_rate == 1.0 and sampler.n_proposed == 10000
    # flat target: wrapped Gaussian moves keep the uniform distribution (chi-square over 10 bins)
    for col, lo, w in ((0, -PI, 2 * PI), (1, 0.0, 1.0)):
        counts = torch.histc((x[:, col] - lo) / w, bins=10, min=0.0, max=1.0)
        chi2 = float(((counts - 1000.0) ** 2 / 1000.0).sum())
        assert chi2 < 40.0  # 9 dof (samples are weakly correlated)


@pytest.mark.parametrize("boundary", ["reflect", "reject"])
def test_nonperiodic_truncated_gaussian_mean_and_variance(boundary):
    """Target ∝ exp(-(x-0.3)²/(2·0.5²)) on [0, 2]: moments against quadrature, error from chain blocks."""
    sampler = MetropolisSampler([0.0], [2.0], [False], chains=1000, stepSize=0.4, boundary=boundary, seed=5)
    logp = lambda s: -((s[:, 0] - 0.3) ** 2) / (2 * 0.25)  # noqa: E731
    sampler.run(logp, 50, record=False)
    x = sampler.run(logp, 20)
    assert bool(((x >= 0) & (x <= 2)).all())
    assert 0.3 < sampler.acceptance_rate < 0.95
    xs = torch.linspace(0, 2, 200001, dtype=F64)
    w = torch.exp(logp(xs[:, None]))
    mean_ref = float((w * xs).sum() / w.sum())
    var_ref = float((w * (xs - mean_ref) ** 2).sum() / w.sum())
    blocks = x.reshape(20, 1000)  # (step, chain): independent chains -> 20 groups of 50 chains
    means = torch.stack([blocks[:, g::20].mean() for g in range(20)])
    se = float(means.std() / math.sqrt(20))
    assert abs(float(x.mean()) - mean_ref) < 4 * se
    assert abs(float(x.var()) - var_ref) < 0.05 * var_ref
    assert abs(float(x.mean()) - 0.3) > 10 * se  # truncation at 0 moves the mean (test is sensitive)


def test_sampler_restart_is_exact():
    logp = lambda s: torch.cos(s).sum(dim=1)  # noqa: E731
    a = MetropolisSampler([-PI] * 3, [PI] * 3, [True] * 3, chains=50, seed=7)
    a.run(logp, 5)
    state = a.state_dict()
    first = [a.run(logp, 3) for _ in range(2)]
    b = MetropolisSampler([-PI] * 3, [PI] * 3, [True] * 3, chains=50, seed=99)
    b.load_state_dict(state)
    second = [b.run(logp, 3) for _ in range(2)]
    for x, y in zip(first, second):
        assert torch.equal(x, y)
    assert (a.n_accepted, a.n_proposed) == (b.n_accepted, b.n_proposed)
    with pytest.raises(ValueError, match="n_chains"):
        MetropolisSampler([-PI] * 3, [PI] * 3, [True] * 3, chains=51).load_state_dict(state)


def test_argument_errors():
    with pytest.raises(ValueError, match="lower < upper"):
        MetropolisSampler([1.0], [0.0], [False])
    with pytest.raises(ValueError, match="boundary"):
        MetropolisSampler([0.0], [1.0], [False], boundary="wrap")
    with pytest.raises(ValueError, match="stepSize"):
        MetropolisSampler([0.0, 0.0], [1.0, 1.0], [False, False], stepSize=[0.1])
    with pytest.raises(ValueError, match="biasFactor"):
        MonteCarloTarget([0.0], [1.0], [False], kT=1.0, biasFactor=1.0)


# ---------------------------------------------------------------------------------------- Eq. 10
def test_mc_and_grid_target_averages_of_dV_dw_agree_in_2d():
    """⟨∂V/∂w⟩_p with p ∝ exp(βV/(γ−1)): 100x100 grid quadrature vs 20 000 Metropolis samples."""
    bias = torsion_bias(2)
    grid = CVGrid([-PI] * 2, [PI] * 2, [100, 100], [True, True])
    v = bias(grid.points).detach()
    assert 2.0 < float(v.max() - v.min()) / (KT * (GAMMA - 1)) < 3.5  # a clearly non-uniform target
    g_grid = param_grad(bias, grid.points, torch.softmax(v / (KT * (GAMMA - 1)), 0))
    target = MonteCarloTarget.from_bias(bias, KT, GAMMA, chains=2000, steps=10, burnIn=150, seed=1)
    x = target.draw(bias)
    assert x.shape == (20000, 2) and torch.allclose(target.probabilities.sum(), torch.tensor(1.0, dtype=F64))
    print(f"acceptance rate (2D, step 0.50 rad): {target.acceptance_rate:.3f}")
    assert 0.2 < target.acceptance_rate < 0.95
    # statistical error from 20 groups of 100 independent chains
    steps = x.reshape(10, 2000, 2)
    groups = [steps[:, g::20].reshape(-1, 2) for g in range(20)]
    per_group = torch.stack([param_grad(bias, s, torch.full((len(s),), 1.0 / len(s), dtype=F64)) for s in groups])
    g_mc, se = per_group.mean(0), per_group.std(0) / math.sqrt(20)
    exact = se < 1e-12  # the output-bias gradient is 1 for every sample
    assert torch.allclose(g_mc[exact], g_grid[exact], atol=1e-9)
    z = ((g_mc - g_grid) / se)[~exact]
    assert float((z ** 2).mean()) < 4.0 and float(z.abs().max()) < 5.5
    # sensitivity: the uniform target or the wrong bias factor are rejected by the same test
    for wrong in (torch.full_like(v, 1.0 / len(v)), torch.softmax(v / (KT * 4.0), 0)):
        z_wrong = ((g_mc - param_grad(bias, grid.points, wrong)) / se)[~exact]
        assert float((z_wrong ** 2).mean()) > 50.0


def test_uniform_mc_target_gives_uniform_samples():
    target = MonteCarloTarget([-PI, 0.0], [PI, 2.0], [True, False], KT, biasFactor=None, chains=100, steps=20)
    x = target.draw(torsion_bias(2))
    assert target.kind == "uniform-mc" and target.acceptance_rate == 1.0 and x.shape == (2000, 2)
    assert abs(float(x[:, 1].mean()) - 1.0) < 0.05 and abs(float(x[:, 0].mean())) < 0.15


# ---------------------------------------------------------------------------------------- monitors
def test_marginal_kl_matches_hand_value():
    monitor = MarginalKLMonitor([0.0], [1.0], [False], bins=2, tau=1, pseudo_count=1e-9)
    monitor.update(monitor.histogram(torch.tensor([[0.1], [0.2], [0.3], [0.9]], dtype=F64)))
    target = torch.tensor([[0.25], [0.75]], dtype=F64)
    assert monitor.kl(target) == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5), abs=1e-8)


def gridless_optimizer(**kwargs):
    bias = NeuralBias([True] * 6, [-PI] * 6, [PI] * 6, hidden=(24, 12), seed=0)
    target = MonteCarloTarget.from_bias(bias, KT, GAMMA, chains=500, steps=4, burnIn=10, seed=4)
    opts = dict(kT=KT, learningRate=1e-3, tauKL=2, klThreshold=0.05, tauDecay=5, targetSampler=target,
                marginalBins=20)
    opts.update(kwargs)
    return DeepVESOptimizer(bias, None, **opts)


def test_gridless_optimizer_on_six_cvs_runs_and_monitor_responds():
    opt = gridless_optimizer()
    assert opt.grid is None and opt.target_kind == "well-tempered-mc" and opt.n_cv == 6
    g = torch.Generator().manual_seed(0)
    concentrated = lambda: 0.3 * torch.randn(200, 6, generator=g, dtype=F64)  # noqa: E731
    kls = [opt.step(concentrated())["kl"] for _ in range(4)]
    assert min(kls) > 1.0  # far from the (nearly uniform) target
    assert opt.n_updates == 3 and opt.phase == "learning"
    # samples distributed as the target (an independent sampler of the same p): the KL falls
    independent = MonteCarloTarget.from_bias(opt.bias, KT, GAMMA, chains=1000, steps=1, burnIn=50, seed=11)
    stats = [opt.step(independent.draw(opt.bias)) for _ in range(8)]
    kl_after = [s["kl"] for s in stats]
    assert kl_after[-1] < 0.05 < kls[-1] and kl_after[-1] < kl_after[0]
    assert all(0.2 < s["mc_acceptance"] <= 1.0 and s["updated"] for s in stats)
    assert math.isfinite(stats[-1]["c"]) and opt.phase == "decaying"  # the KL gated the decay
    with pytest.raises(ValueError, match="no grid"):
        opt.fes_from_bias()


def test_gridless_optimizer_restart_is_bit_identical():
    g = torch.Generator().manual_seed(1)
    batches = [torch.remainder(torch.randn(100, 6, generator=g, dtype=F64) + PI, 2 * PI) - PI for _ in range(6)]
    rec = RecrossingMonitor([0], [(-3.0, -0.3), (0.3, 3.0)], transitions=50)
    a = gridless_optimizer(recrossing=rec, learningRate=0.01)
    for b in batches[:3]:
        a.step(b)
    state = a.state_dict()
    tail_a = [a.step(b) for b in batches[3:]]
    b_opt = gridless_optimizer(recrossing=RecrossingMonitor([0], [(-3.0, -0.3), (0.3, 3.0)], 50), learningRate=0.01)
    b_opt.load_state_dict(state)
    tail_b = [b_opt.step(b) for b in batches[3:]]
    for p, q in zip(a.bias.parameters(), b_opt.bias.parameters()):
        assert torch.equal(p, q)
    assert [s["kl"] for s in tail_a] == [s["kl"] for s in tail_b]
    assert torch.equal(a.target.points, b_opt.target.points) and a.recrossing.counts == b_opt.recrossing.counts
    with pytest.raises(ValueError, match="recrossing"):
        gridless_optimizer(recrossing=RecrossingMonitor([0], [(-3.0, -0.3), (0.3, 3.0)], 50)).load_state_dict(
            gridless_optimizer().state_dict())


@pytest.mark.parametrize("device", DEVICES)
def test_gridless_optimizer_on_device_matches_cpu(device):
    """6-D Monte Carlo target on ``device``: the draws (random numbers from the sampler's CPU
    generator) and the weights after a few steps equal the CPU run's within float64 rounding."""
    g = torch.Generator().manual_seed(2)
    batches = [torch.remainder(torch.randn(100, 6, generator=g, dtype=F64) + PI, 2 * PI) - PI for _ in range(4)]
    opt, cpu = gridless_optimizer(device=device), gridless_optimizer()
    assert opt.target.sampler.device.type == torch.device(device).type
    for b in batches:
        stats, ref = opt.step(b), cpu.step(b)
        assert stats["kl"] == pytest.approx(ref["kl"], rel=1e-9, abs=1e-12)
        assert stats["mc_acceptance"] == ref["mc_acceptance"]
    torch.testing.assert_close(opt.target.points.cpu(), cpu.target.points, rtol=1e-9, atol=1e-12)
    for p, q in zip(opt.bias.parameters(), cpu.bias.parameters()):
        torch.testing.assert_close(p.detach().cpu(), q.detach(), rtol=1e-9, atol=1e-12)


def test_recrossing_rule_starts_the_decay():
    rec = RecrossingMonitor([0, 2], [(-3.0, -0.3), (0.3, 3.0)], transitions=2)
    opt = gridless_optimizer(recrossing=rec, klThreshold=1e-9)
    base = torch.zeros(10, 6, dtype=F64)
    signs = [(-1, -1), (-1, -1), (1, 1), (0, 1), (-1, -1), (-1, 1), (1, 1)]  # 0 = between the states
    phases = []
    for s0, s2 in signs:
        x = base.clone()
        x[:, 0], x[:, 2] = 1.5 * s0, 1.5 * s2
        phases.append(opt.step(x)["phase"])
    # CV 0: -,-,+,(none),-,-,+ and CV 2: -,-,+,+,-,+,+ both reach 2 transitions at iteration 4
    assert rec.counts == [3, 3]
    assert phases[:4] == ["learning"] * 4 and phases[4:] == ["decaying"] * 3
    assert opt.schedule.iteration_threshold_reached == 4 and opt.schedule.n_decays == 3
    with pytest.raises(ValueError, match="two states"):
        RecrossingMonitor([0], [(0.0, 1.0)], 1)


def test_recrossing_min_iterations_delays_the_decay_and_restarts():
    states = [(-3.0, -0.3), (0.3, 3.0)]
    rec = RecrossingMonitor([0], states, transitions=1, minIterations=3)
    flip = [torch.tensor([[-1.0], [1.0]]), torch.tensor([[-1.0], [1.0]]), torch.tensor([[-1.0]])]
    seen = []
    for x in flip:
        rec.update(x)
        seen.append(rec.satisfied)
    assert rec.counts == [4] and seen == [False, False, True]  # counts met at once, time only at 3
    copy = RecrossingMonitor([0], states, 1)
    copy.load_state_dict(rec.state_dict())
    assert copy.min_iterations == 3 and copy.n_updates == 3 and copy.satisfied
    with pytest.raises(ValueError, match="minIterations"):
        RecrossingMonitor([0], states, 1, minIterations=-1)


def test_automatic_gridless_mode_and_errors():
    bias = NeuralBias([True] * 4, [-PI] * 4, [PI] * 4, hidden=(8,), seed=0)
    opt = DeepVESOptimizer(bias, None, kT=KT, target="uniform")
    assert opt.target_kind == "uniform-mc" and opt.target.n_samples == 20000
    grid = CVGrid([-PI] * 2, [PI] * 2, [10, 10], [True, True])
    opt2 = DeepVESOptimizer(torsion_bias(2), grid, kT=KT, target="well-tempered-mc")
    assert opt2.grid is None and opt2.target.lower_list == [-PI, -PI]
    with pytest.raises(ValueError, match="target must be"):
        DeepVESOptimizer(torsion_bias(2), grid, kT=KT, target="metropolis")
    with pytest.raises(ValueError, match="kT"):
        DeepVESOptimizer(torsion_bias(2), None, kT=KT,
                         targetSampler=MonteCarloTarget([-PI] * 2, [PI] * 2, [True] * 2, kT=1.0))


# ---------------------------------------------------------------------------------------- updater
def test_updater_gridless_mode_learns_and_restarts(tmp_path):
    import openmm as mm
    from openmm import app

    from openmm_nnbias.bias import NeuralBiasForce
    from openmm_nnbias.cvs import CVSet, Position
    from openmm_nnbias.systems import wolfe_quapp
    from openmm_nnbias.ves import DeepVESUpdater, MonteCarlo, OutputOptions, ScheduleOptions

    def make(out):
        ms = wolfe_quapp()
        cvs = CVSet([Position(0, "x", -3.0, 3.0)])
        bias = NeuralBias.from_cvs(cvs, seed=0, hidden=(16, 8))
        force = NeuralBiasForce(cvs, bias, backend="table")
        force.addToSystem(ms.system)
        integ = mm.LangevinMiddleIntegrator(ms.temperature, ms.friction, ms.timestep)
        integ.setRandomNumberSeed(1)
        sim = app.Simulation(ms.topology, ms.system, integ, mm.Platform.getPlatformByName(DEFAULT_PLATFORM),
                             platform_properties(DEFAULT_PLATFORM, threads=1))
        sim.context.setPositions(ms.positions)
        up = DeepVESUpdater(force, ms.temperature, target=MonteCarlo(chains=200, steps=5, marginalBins=50),
                            stride=200, sampleStride=10, schedule=ScheduleOptions(tauKL=5),
                            outputs=OutputOptions(out, checkpointInterval=5, fesInterval=5))
        sim.reporters.append(up)
        return sim, up, bias

    sim, up, bias = make(str(tmp_path / "a"))
    sim.step(200 * 5)
    sim.step(200 * 3)
    assert up.grid is None and len(up.history) == 8 and up.optimizer.n_updates == 7
    assert all(0.0 < h["mc_acceptance"] <= 1.0 for h in up.history)
    assert os.path.exists(tmp_path / "a" / "bias.pt") and not os.path.exists(tmp_path / "a" / "fes_bias.dat")
    sim2, up2, bias2 = make(str(tmp_path / "b"))
    up2.loadCheckpoint(str(tmp_path / "a" / "checkpoint.pt"), sim2)
    sim2.step(200 * 3)
    for p, q in zip(bias.parameters(), bias2.parameters()):
        assert torch.equal(p, q)
    assert np.isclose(up.history[-1]["kl"], up2.history[-1]["kl"], rtol=0, atol=0)


def test_unknown_monte_carlo_option_is_one_clear_error():
    from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
    from openmm_nnbias.cvs import CVSet, Position
    from openmm_nnbias.ves import DeepVESUpdater, MonteCarlo

    with pytest.raises(TypeError, match="unexpected keyword argument 'n_chains'"):
        MonteCarlo(n_chains=10)
    with pytest.raises(TypeError, match="unexpected keyword argument 'n_chains'"):
        MonteCarloTarget([-PI], [PI], [True], KT, n_chains=10)
    cvs = CVSet([Position(0, "x", -3.0, 3.0)])
    force = NeuralBiasForce(cvs, NeuralBias.from_cvs(cvs, seed=0, hidden=(8,)), backend="table")
    with pytest.raises(TypeError, match="unexpected keyword argument 'monteCarlo'"):
        DeepVESUpdater(force, 300.0, monteCarlo=dict(chains=10))


def test_optimizer_draws_its_target_in_the_compute_dtype():
    """The Metropolis passes of a mixed-precision optimizer go through its float32 evaluator, not the float64 bias."""
    opt = gridless_optimizer(computeDtype=torch.float32)
    seen = []
    draw = opt.target.draw
    opt.target.draw = lambda bias, evaluate=None: seen.append(evaluate) or draw(bias, evaluate)
    opt.step(0.3 * torch.randn(50, 6, dtype=F64))
    assert seen == [opt.evaluator] and opt.evaluator.compute_dtype == torch.float32
    # ln p of the evaluator equals that of the float64 bias to float32 rounding
    pts = (torch.rand(500, 6, dtype=F64) - 0.5) * 2 * math.pi
    with torch.no_grad():
        opt.bias.layers[-1].weight.normal_(0.0, 50.0, generator=torch.Generator().manual_seed(2))  # V of tens of kJ/mol
        lp64 = opt.target.log_density(opt.bias)(pts)
        lp32 = opt.target.log_density(opt.bias, opt.evaluator)(pts)
    assert lp32.dtype == torch.float64 and float(lp64.std()) > 0.5
    assert torch.allclose(lp32, lp64, rtol=1e-5, atol=1e-6)
