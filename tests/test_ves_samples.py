"""SampleEvaluator: positions → checked CVs and V of the bias in force (MD thread or learner process)."""

import copy
import math
import pickle
import sys
import os

import numpy as np
import pytest
import torch

from openmm_nnbias.bias import NeuralBias
from openmm_nnbias.cvs import CVSet, Distance, Torsion
from openmm_nnbias.ves.samples import SampleEvaluator

sys.path.insert(0, os.path.dirname(__file__))
from test_ves_updater import make_run  # noqa: E402


def _setup():
    # CVs over atoms 3, 5, 7, 9 of a 10-atom system; the evaluator sees only those 4 atoms
    cvs = CVSet([Torsion((3, 5, 7, 9), "t"), Distance((3, 9), 0.0, 0.8, "d")])
    sub = copy.deepcopy(cvs)
    lookup = torch.full((10,), -1, dtype=torch.long)
    lookup[[3, 5, 7, 9]] = torch.arange(4)
    for g in sub.groups:
        g.atoms = lookup[g.atoms]
    net = NeuralBias.from_cvs(cvs, seed=0, hidden=(8,))
    with torch.no_grad():
        net.layers[-1].weight.normal_()
    return cvs, sub, net


def _frames(n=6, seed=0):
    g = np.random.default_rng(seed)
    i = np.arange(10)
    chain = np.stack([0.1 * i, 0.1 * (i % 2), 0.05 * (i % 3)], axis=-1)  # zigzag: |r3 - r9| ≈ 0.6 nm
    return chain[None] + 0.02 * g.standard_normal((n, 10, 3))


def test_values_match_the_full_cv_set_and_the_network():
    cvs, sub, net = _setup()
    full = _frames()
    ev = SampleEvaluator(cvs, sub, net, need_v=True, grid=True, frozen=False, c=1.5)
    rec = ev(full[:, [3, 5, 7, 9]], times=np.arange(6) * 0.1)
    with torch.no_grad():
        ref = cvs(torch.as_tensor(full))
        assert torch.allclose(rec.s, ref, atol=1e-12, rtol=0)
        assert torch.allclose(rec.v, net(ref).double(), atol=1e-12, rtol=0)
    assert rec.c == 1.5 and rec.reweight is False  # not frozen: no reweighting
    ev.frozen = True
    assert ev(full[:, [3, 5, 7, 9]], times=None).reweight is True
    ev_no_v = SampleEvaluator(cvs, sub, net, need_v=False, grid=True)
    assert ev_no_v(full[:, [3, 5, 7, 9]], times=None).v is None  # no colvar, not frozen: V not needed


def test_range_error_names_cv_value_and_time_and_nan_passes_through():
    cvs, sub, net = _setup()
    x = _frames()[:, [3, 5, 7, 9]]
    x[4, 3] = x[4, 0] + [0.9, 0.0, 0.0]  # d = 0.9 nm > 0.8
    ev = SampleEvaluator(cvs, sub, net, need_v=True, grid=True, frozen=True)
    with pytest.raises(ValueError, match=r"CV 'd' = 0\.9000 at t = 0\.400 ps is outside its declared range \[0\.0, 0\.8\]"):
        ev(x, times=np.arange(6) * 0.1)
    with pytest.raises(ValueError, match=r"positions must have shape \(samples, >= 4 atoms, 3\) in nm, got \(6, 3, 3\)"):
        ev(x[:, :3], times=None)
    x[4] = np.nan
    rec = ev(x, times=np.arange(6) * 0.1)  # non-finite: returned as is (the optimizer skips the iteration)
    assert not torch.isfinite(rec.s).all() and rec.reweight is False


def test_staged_steps_take_effect_in_order_once_finished():
    cvs, sub, net = _setup()
    ev = SampleEvaluator(cvs, sub, copy.deepcopy(net), need_v=True, grid=True)
    x = _frames()[:, [3, 5, 7, 9]]
    v0 = ev(x, None).v
    new = [p.detach() + 0.1 for p in net.parameters()]
    ev.stage(4, new, frozen=False, c=2.0)  # step 4 pushed new weights
    ev.stage(5, None, frozen=True, c=3.0)  # step 5: same weights in force, now frozen
    ev.stage(6, None, frozen=True, c=float("nan"))  # a skipped step: no c(t), the previous one stays
    ev.advance(3)
    assert torch.equal(ev(x, None).v, v0) and ev.c == 0.0  # MD has not finished step 4 yet
    ev.advance(4)
    moved = copy.deepcopy(net)
    with torch.no_grad():
        for p, q in zip(moved.parameters(), new):
            p.copy_(q)
        v4 = moved(ev(x, None).s).double()
    rec = ev(x, None)
    assert torch.allclose(rec.v, v4) and rec.c == 2.0 and not rec.reweight
    ev.advance(5)
    rec = ev(x, None)
    assert torch.allclose(rec.v, v4) and rec.c == 3.0 and rec.reweight  # same weights, now frozen
    ev.advance(6)
    assert ev(x, None).c == 3.0
    ev.reset(net, frozen=False, c=0.5)  # a restart: the network's weights in force, nothing staged
    assert torch.allclose(ev(x, None).v, v0) and ev.c == 0.5 and not ev._staged
    assert pickle.loads(pickle.dumps(ev)).c == 0.5


def test_process_learner_reports_a_range_error_at_the_next_iteration():
    """With asynchronous='process' the CVs are checked in the learner: the error surfaces one iteration later."""
    sim, up, _ = make_run(None, lower=-1.0, mode="process")
    try:
        sim.step(200)  # iteration 0: positions shipped to the learner
        with pytest.raises(ValueError, match="CV 'x' = .* outside its declared range") as info:
            sim.step(200)
        assert "learner process traceback" in str(info.value.__cause__)
    finally:
        up.close()
    assert math.isfinite(up.kT)


def test_getters_record_the_samples_of_a_pending_step():
    """The learner process records an iteration's samples when its step finishes; getters finish it first."""
    sim, up, _ = make_run(None, mode="process", klThreshold=100.0, tauDecay=5, freezeRatio=0.01)
    try:
        sim.step(200 * 30)  # frozen after ~20 iterations: reweighting accumulates (steps still in the learner)
        assert up._learner.pending and up.optimizer.frozen
        n = up._rw_count
        rw = up.getReweightedFreeEnergy()
        assert not up._learner.pending and up._rw_count == n + 20  # the last iteration's 20 samples
        assert rw is not None and np.nanmin(rw) == 0.0
    finally:
        up.close()
