"""fes.dat's estimator: Eq. 4 averaged over the last quarter of the iterations while the bias learns fast
(ves.averaging.WindowedFES), the windowed reweighting once the learning rate has decayed (ves.outputs)."""

import math
import os
import sys

import numpy as np
import pytest
import torch

from openmm_nnbias.analysis import read_grid_file
from openmm_nnbias.ves.averaging import EQ4_WINDOW, WindowedFES
from openmm_nnbias.ves.blocks import block_groups
from openmm_nnbias.ves.outputs import REWEIGHT_BELOW

sys.path.insert(0, os.path.dirname(__file__))
from test_ves_updater import make_run  # noqa: E402


def _incremental_merge(starts, since, span):
    """The merge of WindowedReweighting.prune as first written (drop, then merge neighbours in place)."""
    starts = list(starts)
    groups = [[i] for i in range(len(starts))]
    n = 0
    while n < len(starts) - 1 and starts[n] < since - 1e-9:
        n += 1
    del starts[:n], groups[:n]
    i = 1
    while i < len(starts) - 1:
        if span > 0 and starts[i + 1] - starts[i - 1] <= span:
            groups[i - 1] += groups[i]
            del starts[i], groups[i]
        else:
            i += 1
    return groups


def test_block_groups_equal_the_incremental_merge():
    rng = np.random.default_rng(0)
    for _ in range(200):
        starts = np.cumsum(rng.uniform(0.1, 2.0, rng.integers(1, 30))).tolist()
        since, span = rng.uniform(0, starts[-1] + 1), rng.choice([0.0, rng.uniform(0, 5)])
        assert block_groups(starts, since, span) == _incremental_merge(starts, since, span)
    assert block_groups([], 0.0) == []


def test_windowed_fes_is_the_mean_over_the_last_quarter_in_bounded_memory():
    gen = torch.Generator().manual_seed(1)
    w, history, counts = WindowedFES(4, resolution=0.01), [], []
    for it in range(5000):
        f = torch.randn(4, generator=gen, dtype=torch.float64) + it * 1e-3 * torch.arange(4.0, dtype=torch.float64)
        w.update(it, f)
        history.append(f - f.min())
        counts.append(len(w.starts))
    assert max(counts) <= 1 / 0.01 + 5  # ~100 blocks, not 5000
    since = EQ4_WINDOW * it
    assert abs(w.count - (it - since + 1)) <= 0.01 * it + 1  # the window's start exact to 1 % of the run
    exact = torch.stack(history[-w.count:]).mean(0)
    torch.testing.assert_close(w.fes(), exact - exact.min(), rtol=0, atol=1e-9)
    again = WindowedFES(4)
    again.load_state_dict(w.state_dict())
    torch.testing.assert_close(again.fes(), w.fes(), rtol=0, atol=0)
    older = WindowedFES(4)
    older.load_state_dict(None)  # a checkpoint from before the window: it starts empty
    assert older.fes() is None and older.count == 0


def test_windowed_fes_bad_input():
    with pytest.raises(ValueError, match="window"):
        WindowedFES(3, window=1.0)
    with pytest.raises(ValueError, match="resolution"):
        WindowedFES(3, resolution=0.0)
    with pytest.raises(ValueError, match="4 points"):
        WindowedFES(3).update(0, torch.zeros(4))
    with pytest.raises(ValueError, match="another grid"):
        WindowedFES(3).load_state_dict(WindowedFES(5).state_dict())


def test_fes_dat_holds_the_eq4_window_average_while_learning(tmp_path):
    """Iteration by iteration, fes.dat equals the mean of Eq. 4 of the iterations of the last quarter."""
    out = str(tmp_path / "run")
    sim, up, _ = make_run(out, fesInterval=40, checkpointInterval=1000, klThreshold=1e-9)  # no decay: learning
    eq4 = []
    for _ in range(80):
        sim.step(200)
        eq4.append(up.getFreeEnergyFromBias().reshape(-1))
    assert up.optimizer.phase == "learning" and up.getFreeEnergyEstimator() == "bias-window"
    first = math.ceil(EQ4_WINDOW * 79)  # iterations 0..79: the window starts at 59.25
    exact = np.mean(eq4[first:], axis=0)
    pts, fes, _ = read_grid_file(os.path.join(out, "fes.dat"))
    np.testing.assert_allclose(fes, exact - exact.min(), atol=1e-5)  # the file's 8 decimals
    header = open(os.path.join(out, "fes.dat")).read().split("\n#! SET estimator ")[1].split()[0]
    assert header == "bias-window"
    rw = up.getFreeEnergy(estimator="reweighted")
    assert rw is not None and not np.allclose(rw, up.getFreeEnergy(), equal_nan=True)


def test_fes_dat_switches_to_reweighting_once_the_learning_rate_has_decayed(tmp_path):
    out = str(tmp_path / "run")
    sim, up, _ = make_run(out, fesInterval=10, checkpointInterval=1000, klThreshold=10.0)  # decays from the start
    seen = []
    for _ in range(100):
        sim.step(200)
        sch = up.optimizer.schedule
        seen.append((sch.lr / sch.lr0, up.getFreeEnergyEstimator()))
    # (the first iteration has no Eq. 4 yet, its frames are reweighted)
    assert all(e == ("bias-window" if r > REWEIGHT_BELOW else "reweighted") for r, e in seen[1:])
    assert seen[1][1] == "bias-window" and seen[-1][1] == "reweighted"
    up.writeFes()
    assert "#! SET estimator reweighted" in open(os.path.join(out, "fes.dat")).read()
    np.testing.assert_array_equal(up.getFreeEnergy(), up.getFreeEnergy(estimator="reweighted"))


def test_get_free_energy_bad_estimator(tmp_path):
    sim, up, _ = make_run(str(tmp_path / "run"), fesInterval=10, checkpointInterval=1000)
    sim.step(200 * 2)
    with pytest.raises(ValueError, match="estimator"):
        up.getFreeEnergy(estimator="bias")
    with pytest.raises(TypeError, match="estimator"):
        up.getFreeEnergy(estimator=1)
