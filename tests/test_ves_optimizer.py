"""Tests of DeepVESOptimizer and reweighted_fes."""

import io
import math

import numpy as np
import pytest
import torch

from openmm_nnbias.ves import CVGrid, DeepVESOptimizer, reweighted_fes

from _devices import DEVICES

torch.set_num_threads(1)
F64 = torch.float64


class MLPBias(torch.nn.Module):
    """Tiny float64 MLP bias (B, 1) -> (B,)."""

    def __init__(self, hidden=(16, 16), scale=2.0, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.scale = scale
        sizes = [1, *hidden]
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.Tanh()]
        layers.append(torch.nn.Linear(sizes[-1], 1))
        self.net = torch.nn.Sequential(*layers).double()

    def forward(self, s):
        return self.net(s / self.scale).squeeze(-1)


def double_well(grid):
    return 4.0 * (grid.points[:, 0] ** 2 - 1.0) ** 2  # kJ/mol, barrier 4 kT at kT = 1


def exact_biased_samples(opt, fes, rng, n):
    """Inverse-CDF samples of P_V ~ exp(-beta (F + V)) on the grid, uniform within bins."""
    v = opt.bias_on_grid().cpu()
    p_v = torch.softmax(-(fes + v) / opt.kT, dim=0).numpy()
    cdf = np.cumsum(p_v)
    cdf /= cdf[-1]
    idx = np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1)
    width = float(opt.grid.bin_width[0])
    s = opt.grid.lower_list[0] + (idx + rng.random(n)) * width
    return torch.from_numpy(s).reshape(-1, 1)


def make_opt(seed=0, **kwargs):
    grid = CVGrid([-1.7], [1.7], [50], [False])
    options = dict(kT=1.0, target="well-tempered", biasFactor=10.0, learningRate=0.03, tauKL=5,
                   klThreshold=0.05, tauDecay=50)
    options.update(kwargs)
    return DeepVESOptimizer(MLPBias(seed=seed), grid, **options)


def params_of(opt):
    return [p.detach().clone() for p in opt.bias.parameters()]


def test_kl_decreases_on_double_well_with_exact_sampling():
    opt = make_opt()
    fes = double_well(opt.grid)
    rng = np.random.default_rng(1)
    kls, phases = [], []
    for _ in range(160):
        stats = opt.step(exact_biased_samples(opt, fes, rng, 500))
        assert not stats["skipped"]
        kls.append(stats["kl"])
        phases.append(stats["phase"])
    first, middle, last = np.mean(kls[:10]), np.mean(kls[70:90]), np.mean(kls[-20:])
    assert first > 0.5  # unbiased sampling is far from the target
    assert last < 0.25 * first and last < middle < first
    assert "decaying" in phases  # the KL threshold (0.05 here) was reached
    # the bias has learned the landscape: Eq. 4 FES close to the truth where F < 4 kT
    fes_bias = opt.fes_from_bias().cpu()
    region = fes < 4.0
    err = (fes_bias - fes)[region]
    assert float(torch.sqrt(((err - err.mean()) ** 2).mean())) < 0.5


def test_first_iteration_does_not_update_and_stats_are_plain():
    opt = make_opt()
    before = params_of(opt)
    samples = torch.randn(200, 1, dtype=torch.float32).clamp(-1.6, 1.6)  # any dtype
    stats = opt.step(samples)
    assert all(torch.equal(a, b) for a, b in zip(before, params_of(opt)))
    assert stats["iteration"] == 0 and not stats["updated"] and not stats["skipped"]
    assert stats["lr"] == 0.0 and stats["lr_next"] == 0.03
    assert opt.target.n_updates == 0 and opt.schedule.n_steps == 0
    assert math.isfinite(stats["grad_norm"]) and math.isfinite(stats["c"])
    for key, value in stats.items():
        assert isinstance(value, (int, float, str, bool)), key
    stats = opt.step(samples[:, 0])  # (N,) accepted for one CV
    assert stats["updated"] and stats["lr"] == 0.03 and stats["iteration"] == 1
    assert not all(torch.equal(a, b) for a, b in zip(before, params_of(opt)))
    assert opt.target.n_updates == 1 and opt.schedule.n_steps == 1
    with pytest.raises(ValueError, match="shape"):
        opt.step(torch.zeros(10, 2))


def test_state_dict_roundtrip_is_bit_identical():
    fes = double_well(make_opt().grid)
    rng = np.random.default_rng(7)
    batches = [exact_biased_samples(make_opt(), fes, rng, 300) for _ in range(30)]
    # high threshold and short decay: the run crosses into "decaying" before the save
    kwargs = dict(klThreshold=5.0, tauDecay=4, freezeRatio=1e-6)
    opt = make_opt(**kwargs)
    for batch in batches[:12]:
        opt.step(batch)
    assert opt.phase == "decaying"
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    saved_in_memory = opt.state_dict()
    stats_a = [opt.step(batch) for batch in batches[12:]]

    for state in (saved_in_memory, torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)):
        fresh = make_opt(seed=123, **kwargs)  # different initial weights
        fresh.load_state_dict(state)
        stats_b = [fresh.step(batch) for batch in batches[12:]]
        assert all(torch.equal(a, b) for a, b in zip(params_of(opt), params_of(fresh)))
        assert torch.equal(opt.target.probabilities, fresh.target.probabilities)
        assert torch.equal(opt.kl_monitor.histogram, fresh.kl_monitor.histogram)
        assert opt.schedule.state_dict() == fresh.schedule.state_dict()
        assert stats_a == stats_b
    with pytest.raises(ValueError, match="kT"):
        make_opt(kT=2.0).load_state_dict(saved_in_memory)
    with pytest.raises(ValueError, match="target"):
        make_opt(target="uniform").load_state_dict(saved_in_memory)


def test_nan_samples_are_skipped_without_changes():
    opt = make_opt()
    good = torch.linspace(-1.5, 1.5, 100, dtype=F64).reshape(-1, 1)
    opt.step(good)
    opt.step(good)
    before, adam_before = params_of(opt), opt.state_dict()
    bad = good.clone()
    bad[17, 0] = float("nan")
    bad[3, 0] = float("inf")
    stats = opt.step(bad)
    assert stats["skipped"] and "non-finite" in stats["reason"] and "2 of 100" in stats["reason"]
    assert not stats["updated"] and stats["iteration"] == 2
    assert all(torch.equal(a, b) for a, b in zip(before, params_of(opt)))
    assert torch.equal(opt.kl_monitor.histogram, adam_before["kl_monitor"]["histogram"])
    assert opt.target.n_updates == adam_before["target"]["n_updates"]
    assert opt.step(torch.zeros(0, 1))["reason"] == "no samples"
    assert opt.step(good)["updated"]


def test_non_finite_update_is_rolled_back():
    opt = make_opt()
    good = torch.linspace(-1.5, 1.5, 100, dtype=F64).reshape(-1, 1)
    opt.step(good)
    opt.step(good)
    before, state_before = params_of(opt), opt.state_dict()
    real_step = opt.adam.step

    def poisoned_step():
        real_step()
        with torch.no_grad():
            next(opt.bias.parameters()).view(-1)[0] = float("nan")

    opt.adam.step = poisoned_step
    stats = opt.step(good)
    assert stats["skipped"] and "rolled back" in stats["reason"]
    assert all(torch.equal(a, b) for a, b in zip(before, params_of(opt)))
    adam_state = opt.adam.state_dict()["state"]
    for key, value in state_before["adam"]["state"].items():
        for name, tensor in value.items():
            assert torch.equal(tensor, adam_state[key][name]), (key, name)
    assert opt.target.n_updates == state_before["target"]["n_updates"]
    assert opt.schedule.n_steps == state_before["schedule"]["n_steps"]
    opt.adam.step = real_step
    assert opt.step(good)["updated"]


def test_out_of_range_samples_are_counted_not_fatal():
    opt = make_opt()
    samples = torch.tensor([[0.0], [1.0], [2.5], [-3.0]], dtype=F64)
    stats = opt.step(samples)
    assert stats["n_out_of_range"] == 2 and not stats["skipped"]
    assert opt.kl_monitor.histogram.sum() == pytest.approx(1 / 5)  # first update: (c/N)/tau


def test_frozen_optimizer_does_not_update():
    opt = make_opt(klThreshold=10.0, tauDecay=1, freezeRatio=0.5)
    good = torch.linspace(-1.5, 1.5, 100, dtype=F64).reshape(-1, 1)
    opt.step(good)
    stats = opt.step(good)  # first below-threshold iteration: scale -> 0 -> frozen
    assert stats["updated"] and stats["phase"] == "frozen" and opt.frozen
    assert stats["lr_next"] == 0.0 and opt.schedule.iteration_frozen == 1
    before = params_of(opt)
    stats = opt.step(good)
    assert not stats["updated"] and not stats["skipped"] and math.isfinite(stats["kl"])
    assert all(torch.equal(a, b) for a, b in zip(before, params_of(opt)))


def test_fes_from_bias_is_eq4():
    opt = make_opt()
    v = opt.bias_on_grid()
    p = opt.target.probabilities
    expected = -v - opt.kT * torch.log(p)
    torch.testing.assert_close(opt.fes_from_bias(), expected - expected.min())
    good = torch.linspace(-1.5, 1.5, 100, dtype=F64).reshape(-1, 1)
    for _ in range(3):
        opt.step(good)
    # with the well-tempered target, F = -V + F_n / gamma + const
    fes = opt.fes_from_bias()
    alt = -opt.bias_on_grid() + opt.target.free_energy / 10.0
    torch.testing.assert_close(fes, alt - alt.min())
    assert float(fes.min()) == 0.0


def test_constructor_validation():
    grid = CVGrid([-1.0], [1.0], [10], [False])
    with pytest.raises(ValueError, match="kT"):
        DeepVESOptimizer(MLPBias(), grid, kT=0.0)
    with pytest.raises(ValueError, match="target"):
        DeepVESOptimizer(MLPBias(), grid, kT=1.0, target="flat")
    with pytest.raises(ValueError, match="biasFactor"):
        DeepVESOptimizer(MLPBias(), grid, kT=1.0, biasFactor=1.0)
    with pytest.raises(ValueError, match="grid"):
        DeepVESOptimizer(MLPBias(), "grid", kT=1.0)


def test_reweighted_fes_exact_and_statistical():
    grid = CVGrid([0.0], [3.0], [3], [False])
    samples = torch.tensor([[0.5], [1.5], [1.6], [9.0]], dtype=F64)
    v = torch.tensor([2.0, 1.0, 1.0, 0.0], dtype=F64)
    with pytest.raises(ValueError, match="outside"):
        reweighted_fes(samples, v, grid, kT=2.0)
    fes = reweighted_fes(samples, v, grid, kT=2.0, out_of_range="ignore")
    expected = [-2.0 * 1.0, -2.0 * math.log(2 * math.exp(0.5)), float("inf")]
    expected = [e - min(expected[:2]) for e in expected]
    assert fes.tolist() == pytest.approx(expected)
    # huge biases do not overflow
    assert torch.isfinite(reweighted_fes(samples[:3], v[:3] + 1e6, grid, kT=2.0)[:2]).all()
    with pytest.raises(ValueError, match="one value per sample"):
        reweighted_fes(samples, v[:2], grid, kT=2.0)

    # statistical: frames from a static bias V = -F/2 recover F
    grid = CVGrid([-1.7], [1.7], [34], [False])
    true_fes = double_well(grid)
    bias_grid = -0.5 * true_fes
    p_v = torch.softmax(-(true_fes + bias_grid), dim=0).numpy()
    rng = np.random.default_rng(3)
    idx = rng.choice(grid.n_points, size=200_000, p=p_v / p_v.sum())
    frames = grid.points[idx]
    est = reweighted_fes(frames, bias_grid[idx], grid, kT=1.0)
    region = true_fes < 4.0
    diff = (est - true_fes)[region]
    assert float((diff - diff.mean()).abs().max()) < 0.1


@pytest.mark.parametrize("device", DEVICES)
def test_step_and_checkpoint_on_device_match_cpu(device):
    """Optimizer on ``device`` (grid, target, Adam state there): same weights as on the CPU within
    float64 rounding, and a checkpoint restored on the device continues identically."""
    opt, cpu = make_opt(device=device), make_opt()
    assert opt.grid.points.device.type == opt.target.probabilities.device.type == torch.device(device).type
    fes = double_well(cpu.grid)
    rng = np.random.default_rng(0)
    for _ in range(5):
        batch = exact_biased_samples(cpu, fes, rng, 200)  # CPU samples, moved by step()
        stats, ref = opt.step(batch), cpu.step(batch)
        assert not stats["skipped"]
        assert stats["kl"] == pytest.approx(ref["kl"], rel=1e-9, abs=1e-12)
    for p, q in zip(opt.bias.parameters(), cpu.bias.parameters()):
        assert p.device.type == torch.device(device).type
        torch.testing.assert_close(p.detach().cpu(), q.detach(), rtol=1e-9, atol=1e-12)
    state = opt.state_dict()
    fresh = make_opt(seed=5, device=device)
    fresh.load_state_dict(state)
    batch = exact_biased_samples(cpu, fes, rng, 200).to(device)
    assert opt.step(batch) == fresh.step(batch)


def test_decay_averaged_fes_is_the_mean_of_eq4_over_decay_iterations_and_survives_state_dict():
    opt = make_opt(klThreshold=1e-12)  # never below the threshold: learning only
    rng = np.random.default_rng(3)
    samples = lambda: torch.from_numpy(rng.uniform(-1.5, 1.5, (100, 1)))  # noqa: E731
    for _ in range(3):
        opt.step(samples())
    assert opt.phase == "learning" and opt.averaged_fes_from_bias() is None

    opt = make_opt(klThreshold=1e9, tauDecay=4)  # decays from the first update on
    total, weight = torch.zeros(50, dtype=F64), 0.0
    opt.step(samples())  # iteration 0: no Adam step, nothing averaged
    for _ in range(6):
        stats = opt.step(samples())
        f = opt.fes_from_bias().cpu()  # Eq. 4 for the weights after this step, min 0
        total += f
        weight += 1.0
    expected = total / weight
    torch.testing.assert_close(opt.averaged_fes_from_bias(), expected - expected.min())
    assert opt.fes_average.count == 6

    clone = make_opt(klThreshold=1e9, tauDecay=4)
    clone.load_state_dict(opt.state_dict())
    torch.testing.assert_close(clone.averaged_fes_from_bias(), opt.averaged_fes_from_bias(), rtol=0, atol=0)


def test_adam_step_applies_a_groups_lr_scale():
    """A parameter group's ``lrScale`` multiplies the schedule's learning rate for that group only."""
    import torch

    from openmm_nnbias.ves.adam import guarded_adam_step

    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    adam = torch.optim.Adam([{"params": [a]}, {"params": [b], "lrScale": 10.0}])
    a.grad, b.grad = torch.ones(1), torch.ones(1)
    assert guarded_adam_step(adam, [a, b], 1e-3)
    assert float(a) == pytest.approx(-1e-3) and float(b) == pytest.approx(-1e-2)


def _periodic_opt(**kwargs):
    from openmm_nnbias.bias import NeuralBias

    bias = NeuralBias([True, True], [-math.pi] * 2, [math.pi] * 2, hidden=(8, 4), seed=0)
    grid = CVGrid([-math.pi] * 2, [math.pi] * 2, [12, 12], [True, True])
    return DeepVESOptimizer(bias, grid, kT=2.494, learningRate=1e-3, **kwargs)


def test_output_learning_rate_scale_steps_the_output_layer_faster():
    """outputLearningRateScale 10: Adam's first step moves the output layer's weights by 10 lr, the hidden ones by lr."""
    samples = (torch.rand(200, 2, dtype=F64, generator=torch.Generator().manual_seed(3)) - 0.5) * 0.5
    steps = {}
    for scale in (1.0, 10.0):
        opt = _periodic_opt(outputLearningRateScale=scale)
        before = [p.detach().clone() for p in opt.bias.parameters()]
        opt.step(samples)  # iteration 0: no update
        opt.step(samples)
        after = list(opt.bias.parameters())
        moved = [float((a.detach() - b).abs().max()) for a, b in zip(after, before)]
        out_ids = {id(p) for p in opt.bias.layers[-1].parameters()}
        steps[scale] = ([m for m, p in zip(moved, after) if id(p) not in out_ids and p.requires_grad],
                        [m for m, p in zip(moved, after) if id(p) in out_ids and p.requires_grad])
    hidden1, out1 = steps[1.0]
    hidden10, out10 = steps[10.0]
    assert max(out1) == pytest.approx(1e-3, rel=1e-6) and max(out10) == pytest.approx(1e-2, rel=1e-6)
    assert max(hidden1) == max(hidden10) == 0.0  # the zero output layer of the start passes no gradient to them
    opt.step(samples)  # the second update: hidden layers at the schedule's rate (Adam: |step| <= ~lr)
    assert 0 < max(float((a.detach() - b).abs().max()) for a, b in zip(list(opt.bias.parameters())[:2], before[:2])) < 1.1e-3
    assert [g.get("lrScale", 1.0) for g in opt.adam.param_groups] == [1.0, 10.0]


def test_output_learning_rate_scale_restarts_and_is_checked():
    samples = (torch.rand(100, 2, dtype=F64, generator=torch.Generator().manual_seed(4)) - 0.5)
    opt = _periodic_opt(outputLearningRateScale=10.0)
    for _ in range(3):
        opt.step(samples)
    clone = _periodic_opt(outputLearningRateScale=10.0)
    clone.load_state_dict(opt.state_dict())
    opt.step(samples)
    clone.step(samples)
    for a, b in zip(opt.bias.parameters(), clone.bias.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="outputLearningRateScale must be a finite number > 0"):
        _periodic_opt(outputLearningRateScale=0.0)
    with pytest.raises(TypeError, match="outputLearningRateScale must be a number"):
        _periodic_opt(outputLearningRateScale="10")
    with pytest.raises(ValueError, match="output layer is bias.layers"):
        make_opt(outputLearningRateScale=10.0)  # MLPBias keeps its layers in .net
    assert make_opt(outputLearningRateScale=1.0).adam.param_groups[0].get("lrScale") is None


def test_schedule_options_describe_the_output_scale_only_when_set():
    """Checkpoints written before the option (no key) still match a run at the default 1."""
    from openmm_nnbias.ves import ScheduleOptions

    assert "outputLearningRateScale" not in ScheduleOptions().describe()
    assert ScheduleOptions(outputLearningRateScale=10).describe()["outputLearningRateScale"] == 10.0
    with pytest.raises(ValueError, match="outputLearningRateScale"):
        ScheduleOptions(outputLearningRateScale=-1.0)
