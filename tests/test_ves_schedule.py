"""Tests of the KL monitor and the learning-rate schedule."""

import math

import pytest
import torch

from openmm_nnbias.ves.schedule import KLMonitor, LearningRateSchedule

torch.set_num_threads(1)
F64 = torch.float64


# ---------------------------------------------------------------- KL monitor
def test_kl_of_histogram_equal_to_target_is_zero():
    p = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64)
    monitor = KLMonitor(4, tau=50)
    for _ in range(5):
        monitor.update(1000 * p)
    assert abs(monitor.kl(p)) < 1e-14
    assert abs(monitor.kl(7 * p)) < 1e-14  # target normalised inside


def test_two_bin_kl_by_hand():
    monitor = KLMonitor(2, tau=10)
    monitor.update(torch.tensor([3.0, 1.0]))
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert monitor.kl(torch.tensor([0.5, 0.5])) == pytest.approx(expected, rel=1e-14)
    # empty bins contribute 0; a zero-probability target bin gives a large finite value
    monitor = KLMonitor(2, tau=10)
    monitor.update(torch.tensor([4.0, 0.0]))
    assert monitor.kl(torch.tensor([0.25, 0.75])) == pytest.approx(math.log(4.0))
    assert math.isfinite(monitor.kl(torch.tensor([0.0, 1.0])))
    assert monitor.kl(torch.tensor([0.0, 1.0])) > 700


def test_running_average_is_bias_corrected_exponential_average():
    tau = 4.0
    rng = torch.Generator().manual_seed(0)
    counts = [torch.randint(0, 20, (3,), generator=rng).to(F64) + 1 for _ in range(6)]
    monitor = KLMonitor(3, tau=tau)
    for c in counts:
        monitor.update(c)
    # h~ = sum_k (1 - 1/tau)^(n-1-k) c_k/N_k, normalised: no over-weight of the first batch
    decay = 1 - 1 / tau
    ref = sum(decay ** (len(counts) - 1 - k) * c / c.sum() for k, c in enumerate(counts))
    torch.testing.assert_close(monitor.normalized_histogram(), ref / ref.sum())
    # tau = 1 keeps only the last iteration
    last = KLMonitor(3, tau=1)
    for c in counts:
        last.update(c)
    torch.testing.assert_close(last.normalized_histogram(), counts[-1] / counts[-1].sum())


def test_kl_monitor_edge_cases_and_state():
    monitor = KLMonitor(3, tau=10)
    assert math.isnan(monitor.kl(torch.ones(3)))  # no data yet
    monitor.update(torch.zeros(3))  # an empty iteration changes nothing
    assert monitor.n_updates == 0
    with pytest.raises(ValueError, match="3 entries"):
        monitor.update(torch.ones(4))
    with pytest.raises(ValueError, match="non-negative"):
        monitor.update(torch.tensor([1.0, -1.0, 0.0]))
    with pytest.raises(ValueError, match="tau"):
        KLMonitor(3, tau=0.5)
    monitor.update(torch.tensor([1.0, 2.0, 3.0]))
    state = monitor.state_dict()
    monitor.update(torch.tensor([5.0, 0.0, 0.0]))
    fresh = KLMonitor(3, tau=10)
    fresh.load_state_dict(state)
    fresh.update(torch.tensor([5.0, 0.0, 0.0]))
    assert torch.equal(fresh.histogram, monitor.histogram)
    with pytest.raises(ValueError, match="n_points"):
        KLMonitor(4, tau=10).load_state_dict(state)


# ---------------------------------------------------------------- schedule
def test_constant_lr_while_kl_above_threshold():
    schedule = LearningRateSchedule(learningRate=1e-3, klThreshold=0.5, tauDecay=100)
    for kl in [2.0, 0.5, 0.9, float("nan"), None, 0.5000001]:
        assert schedule.step(kl) == 1e-3
    assert schedule.phase == "learning"
    assert schedule.iteration_threshold_reached is None


@pytest.mark.parametrize("tau, ratio", [(1000, 5e-5), (7, 0.3), (50, 1e-2)])
def test_iterations_until_frozen(tau, ratio):
    expected = math.ceil(math.log(1 / ratio) / -math.log(1 - 1 / tau))
    schedule = LearningRateSchedule(learningRate=2e-3, klThreshold=0.5, tauDecay=tau, freezeRatio=ratio)
    for it in range(3):
        schedule.step(1.0)
    n_below = 0
    lrs = []
    while not schedule.frozen:
        # above-threshold iterations interleaved: they neither decay nor count
        if n_below % 3 == 1:
            lr_before = schedule.lr
            assert schedule.step(0.7) == lr_before
        lrs.append(schedule.step(0.1))
        n_below += 1
        assert n_below <= expected
    assert n_below == expected
    assert schedule.iteration_threshold_reached == 3
    assert lrs[0] == pytest.approx(2e-3 * (1 - 1 / tau))
    assert lrs[-1] == 0.0 and all(lr > 0 for lr in lrs[:-1])
    assert schedule.phase == "frozen" and schedule.lr == 0.0 and schedule.scale == 0.0
    frozen_at = schedule.iteration_frozen
    assert frozen_at == schedule.n_steps - 1
    # frozen stays frozen, whatever the KL
    for kl in (10.0, 0.0, None):
        assert schedule.step(kl) == 0.0
    schedule.start_decay()
    assert schedule.frozen and schedule.iteration_frozen == frozen_at


def test_paper_default_freezes_after_about_9_9_tau():
    schedule = LearningRateSchedule()  # lr0 1e-3, eps 0.5, tau 1000, ratio 5e-5
    n = 0
    while not schedule.frozen:
        schedule.step(0.0)
        n += 1
    assert n == 9899 and n == pytest.approx(math.log(2e4) * 1000, rel=1e-3)


def test_no_monitor_needs_start_decay():
    schedule = LearningRateSchedule(learningRate=1.0, tauDecay=2, freezeRatio=0.2)
    for _ in range(5):
        assert schedule.step(None) == 1.0
    schedule.start_decay(iteration=42)
    assert schedule.phase == "decaying" and schedule.iteration_threshold_reached == 42
    assert [schedule.step(None) for _ in range(3)] == [0.5, 0.25, 0.0]
    assert schedule.frozen and schedule.iteration_frozen == 7


def test_schedule_state_roundtrip_and_validation():
    schedule = LearningRateSchedule(learningRate=1e-3, tauDecay=10)
    for kl in (1.0, 0.2, 0.3, 0.9, 0.1):
        schedule.step(kl)
    state = schedule.state_dict()
    fresh = LearningRateSchedule(learningRate=5.0)
    fresh.load_state_dict(state)
    for kl in (0.2, 0.8, 0.1):
        assert fresh.step(kl) == schedule.step(kl)
    assert fresh.state_dict() == schedule.state_dict()
    assert fresh.iteration_threshold_reached == 1
    with pytest.raises(ValueError, match="phase"):
        fresh.load_state_dict({**state, "phase": "sleeping"})
    for kwargs, message in [
        (dict(learningRate=0.0), "learningRate"),
        (dict(klThreshold=-1), "klThreshold"),
        (dict(tauDecay=0.5), "tauDecay"),
        (dict(freezeRatio=1.0), "freezeRatio"),
    ]:
        with pytest.raises(ValueError, match=message):
            LearningRateSchedule(**kwargs)


@pytest.mark.parametrize("tau, ratio", [(1, 0.5), (2, 0.2), (3, 0.25), (10, 5e-5), (2000, 5e-5), (7.5, 0.01)])
def test_decays_to_freeze_is_where_step_freezes(tau, ratio):
    # the freeze time the silicon analysis projects: threshold iteration + n - 1 with the KL kept below
    schedule = LearningRateSchedule(learningRate=1.0, klThreshold=0.5, tauDecay=tau, freezeRatio=ratio)
    n = schedule.decays_to_freeze
    for _ in range(3):
        schedule.step(0.9)
    while not schedule.frozen:
        schedule.step(0.1)
    assert schedule.iteration_frozen == schedule.iteration_threshold_reached + n - 1
    assert (1 - 1 / tau) ** n < ratio <= (1 - 1 / tau) ** (n - 1)
    if (tau, ratio) == (2000, 5e-5):
        assert n == 19803  # ≈ 9.9 τ_decay: 19.8 ns at 1 ps per iteration
