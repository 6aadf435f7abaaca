"""fes.dat, the run's best FES estimate: windowed reweighting against an offline reweighting of colvar,
and an exact restart."""

import os
import sys

import numpy as np
import pytest

from openmm_nnbias.analysis import read_colvar, read_grid_file, reweight_colvar
from openmm_nnbias.ves.outputs import BEST_WINDOW

sys.path.insert(0, os.path.dirname(__file__))
from test_ves_updater import make_run  # noqa: E402


def test_fes_dat_equals_offline_reweighting_of_the_last_half(tmp_path):
    out = str(tmp_path / "run")
    sim, up, _ = make_run(out, fesInterval=20, checkpointInterval=1000)
    sim.step(200 * 120)
    fes = up.getFreeEnergy(estimator="reweighted").reshape(-1)
    assert len(fes) == 50 and np.nanmin(fes) == 0.0
    # the same frames reweighted offline from colvar's rbias: the blocks of 20 iterations (20 frames each)
    # whose first frame is at or after t0 + BEST_WINDOW (t - t0)
    col = read_colvar(os.path.join(out, "colvar"))
    t = col["time"]
    starts = t[::20 * 20]
    since = starts[0] + BEST_WINDOW * (t[-1] - starts[0])
    t_min = starts[starts >= since - 1e-9][0]
    assert 0.4 * t[-1] < t_min < 0.7 * t[-1]
    _, offline = reweight_colvar(os.path.join(out, "colvar"), up.kT, bins=50, t_min=t_min, periodic=[False],
                                 lower=[-3.0], upper=[3.0])
    finite = np.isfinite(offline)
    assert np.array_equal(finite, np.isfinite(fes))
    np.testing.assert_allclose(fes[finite], offline[finite], atol=1e-4)


def test_fes_dat_of_a_restarted_run_equals_the_uninterrupted_one(tmp_path):
    sim, up, _ = make_run(str(tmp_path / "a"), checkpointInterval=10, fesInterval=4)
    sim.step(200 * 10)
    sim.step(200 * 6)
    up.writeFes()
    sim2, up2, _ = make_run(str(tmp_path / "b"), checkpointInterval=1000, fesInterval=4, seed=99)
    up2.loadCheckpoint(str(tmp_path / "a" / "checkpoint.pt"), sim2)
    sim2.step(200 * 6)
    up2.writeFes()
    a, b = (read_grid_file(str(tmp_path / d / "fes.dat"))[1] for d in ("a", "b"))
    np.testing.assert_array_equal(a, b)


def test_windowed_reweighting_bad_input():
    from openmm_nnbias.ves.running_fes import WindowedReweighting

    with pytest.raises(ValueError, match="blockIterations"):
        WindowedReweighting(10, blockIterations=0)
    w = WindowedReweighting(10, 5)
    with pytest.raises(ValueError, match="another grid"):
        w.load_state_dict(WindowedReweighting(12, 5).state_dict())


def test_fes_dat_is_written_from_the_first_fes_interval(tmp_path):
    """Before: with one block of frames (the first FES interval, or a short run) no block started in the
    last half of the run and fes.dat was missing."""
    out = str(tmp_path / "run")
    sim, up, _ = make_run(out, fesInterval=20, checkpointInterval=1000)
    sim.step(200 * 20)
    assert os.path.exists(os.path.join(out, "fes.dat"))
    _, fes, _ = read_grid_file(os.path.join(out, "fes.dat"))
    np.testing.assert_allclose(fes, up.getFreeEnergy().reshape(-1), atol=1e-6)
    fes = up.getFreeEnergy(estimator="reweighted").reshape(-1)
    _, offline = reweight_colvar(os.path.join(out, "colvar"), up.kT, bins=50, periodic=[False],
                                 lower=[-3.0], upper=[3.0])
    finite = np.isfinite(offline)
    np.testing.assert_allclose(fes[finite], offline[finite], atol=1e-4)


def test_windowed_reweighting_keeps_only_the_window():
    """Memory and the cost of fes() stay bounded by the last-half window, with the same estimate as keeping all
    blocks; a state written before pruning (no origin) still loads."""
    import torch

    from openmm_nnbias.ves.running_fes import WindowedReweighting

    pruned, full = WindowedReweighting(7, 10), WindowedReweighting(7, 10)
    gen = torch.Generator().manual_seed(3)
    for it in range(1000):
        t = 1.0 + 0.5 * it
        idx, logw = torch.randint(0, 7, (5,), generator=gen), torch.randn(5, generator=gen, dtype=torch.float64)
        for w in (pruned, full):
            w.add(it, t, idx, logw)
        pruned.prune(pruned.origin + BEST_WINDOW * (t - pruned.origin))
    assert pruned.origin == full.origin == 1.0 and len(full.blocks) == 100 and len(pruned.blocks) <= 51
    since = full.origin + BEST_WINDOW * (t - full.origin)
    torch.testing.assert_close(pruned.fes(1.0, since), full.fes(1.0, since), rtol=0, atol=1e-12)
    legacy = {k: v for k, v in full.state_dict().items() if k != "origin"}
    older = WindowedReweighting(7, 10)
    older.load_state_dict(legacy)
    assert older.origin == 1.0


def test_windowed_reweighting_merges_old_blocks_to_a_bounded_number():
    """A long run: blocks stay ≤ ~1/resolution + recent, the window start exact to resolution × run length."""
    import torch

    from openmm_nnbias.ves.running_fes import WindowedReweighting

    w, res = WindowedReweighting(3, 1), 0.01
    one = torch.zeros(1, dtype=torch.long)
    counts = []
    for it in range(20000):
        t = float(it)
        w.add(it, t, one, torch.zeros(1, dtype=torch.float64))  # one frame per iteration, weight 1
        w.prune(w.origin + BEST_WINDOW * (t - w.origin), t, res)
        counts.append(len(w.blocks))
    assert max(counts[1000:]) <= 1 / res + 5
    since = BEST_WINDOW * t
    kept = float(torch.logsumexp(torch.stack([s for s, st in zip(w.logsums, w.starts) if st >= since - 1e-9]),
                                 0)[0].exp())
    assert abs(kept - (t - since + 1)) <= res * t + 1  # frames after the window's start


def test_fes_dat_run_keeps_a_bounded_number_of_blocks(tmp_path):
    sim, up, _ = make_run(str(tmp_path / "run"), fesInterval=5, checkpointInterval=1000)
    sim.step(200 * 100)
    up.writeFes()
    assert len(up._windowed.blocks) <= 11  # 20 blocks made, the last half kept
