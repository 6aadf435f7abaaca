"""Every number a Deep-VES run writes belongs to the bias in force, in every execution mode.

Defects these tests pin (each failed on the code before the learner redesign):
1. sync mode, pushInterval > 1: colvar's bias was V of the newest network, not of the Context's;
2. any mode, pushInterval > 1: rbias used the newest c(t);
3. process mode, pushInterval > 1: bias_<it>.pt snapshots came from a stale copy of the network;
4. a restart silently kept the checkpoint's schedule options;
5. colvarStride rows fell at steps 10, 110, … instead of multiples of the stride.
"""

import copy
import os
import sys

import numpy as np
import pytest
import torch
from openmm import unit

from openmm_nnbias.analysis import read_colvar

sys.path.insert(0, os.path.dirname(__file__))
from test_ves_updater import make_run  # noqa: E402

STRIDE = 200  # MD steps per iteration in make_run


def _in_force_step(block: int, mode: str, push_interval: int):
    """Optimizer step whose weights are in the Context during MD block ``block`` (None: the initial bias)."""
    last = block - 1 if mode == "sync" else block - 2  # async: the bias in force lags one more iteration
    pushed = [k for k in range(last + 1) if k == 0 or (k + 1) % push_interval == 0]
    return pushed[-1] if pushed else None


@pytest.mark.parametrize("mode", ["sync", "thread", "process"])
def test_colvar_bias_and_rbias_are_those_of_the_weights_in_the_context(tmp_path, mode):
    sim, up, bias = make_run(str(tmp_path), backend="torch", mode=mode, pushInterval=3, checkpointInterval=1000,
                             fesInterval=1000)
    n_blocks = 9
    in_force = [up.force.backend.weights.read().clone()]  # during block m: the weights after block m - 1
    for _ in range(n_blocks):
        sim.step(STRIDE)
        in_force.append(up.force.backend.weights.read().clone())
    up.close()
    c_of_step = [h["c"] for h in up.history]
    col = read_colvar(str(tmp_path / "colvar"))
    dt = sim.integrator.getStepSize().value_in_unit(unit.picosecond)
    steps = np.rint(col["time"] / dt).astype(int)
    net = copy.deepcopy(bias)
    for m in range(n_blocks):
        rows = (steps > m * STRIDE) & (steps <= (m + 1) * STRIDE)
        assert rows.sum() == STRIDE // 10
        torch.nn.utils.vector_to_parameters(in_force[m].to(torch.float64), net.parameters())
        with torch.no_grad():
            v = net(torch.as_tensor(col["x"][rows]).reshape(-1, 1)).double().numpy()
        np.testing.assert_allclose(col["bias"][rows], v, atol=2e-6, err_msg=f"V of block {m}")
        k = _in_force_step(m, mode, 3)
        c = 0.0 if k is None else c_of_step[k]
        np.testing.assert_allclose(col["rbias"][rows], col["bias"][rows] - c, atol=2e-6, err_msg=f"c of block {m}")
    assert len({round(float(c), 6) for c in c_of_step}) > 3  # c(t) really changes from step to step


def test_snapshots_are_the_network_at_their_iteration_in_every_mode(tmp_path):
    params = {}
    for mode in ("thread", "process"):
        sim, up, _ = make_run(str(tmp_path / mode), mode=mode, pushInterval=3, snapshotInterval=4,
                              checkpointInterval=1000, fesInterval=1000)
        sim.step(STRIDE * 9)
        up.close()
        params[mode] = {n: dict(torch.jit.load(str(tmp_path / mode / f"bias_{n}.pt")).named_parameters())
                        for n in (4, 8)}
    for n in (4, 8):
        for name, p in params["thread"][n].items():
            assert torch.equal(p, params["process"][n][name]), (n, name)


def test_restart_with_other_schedule_options_is_refused(tmp_path):
    sim, up, _ = make_run(str(tmp_path / "a"), checkpointInterval=5)
    sim.step(STRIDE * 5)
    for change in (dict(tauDecay=7), dict(klThreshold=0.2), dict(learningRate=2e-3), dict(tauKL=60)):
        sim2, up2, _ = make_run(None, **change)
        with pytest.raises(ValueError, match="does not match this run.*'schedule'"):
            up2.loadCheckpoint(str(tmp_path / "a" / "checkpoint.pt"), sim2)
    sim3, up3, _ = make_run(None)  # the same options: accepted
    up3.loadCheckpoint(str(tmp_path / "a" / "checkpoint.pt"), sim3)
    assert up3.optimizer.iteration == 5


@pytest.mark.parametrize("stride, sample_stride, colvar_stride", [(200, 10, 100), (300, 20, 80)])
def test_colvar_rows_fall_on_multiples_of_the_colvar_stride(tmp_path, stride, sample_stride, colvar_stride):
    sim, up, _ = make_run(str(tmp_path), stride=stride, sampleStride=sample_stride, colvarStride=colvar_stride,
                          checkpointInterval=1000)
    sim.step(stride * 4)
    up.close()
    col = read_colvar(str(tmp_path / "colvar"))
    dt = sim.integrator.getStepSize().value_in_unit(unit.picosecond)
    steps = np.rint(col["time"] / dt).astype(int)
    assert steps[0] == colvar_stride and np.all(steps % colvar_stride == 0)
    assert np.all(np.diff(steps) == colvar_stride) and steps[-1] == (stride * 4) // colvar_stride * colvar_stride


def test_sync_thread_and_process_write_identical_runs(tmp_path):
    """With pushes only at checkpoints, the three modes have the same bias in force: identical files."""
    runs = {}
    for mode in ("sync", "thread", "process"):
        sim, up, bias = make_run(str(tmp_path / mode), mode=mode, pushInterval=5, checkpointInterval=5, fesInterval=5,
                                 klThreshold=100.0, tauDecay=5, freezeRatio=1e-4)
        sim.step(STRIDE * 17)
        up.flush()
        runs[mode] = (up, bias)
        assert up.optimizer.phase == "decaying"
    ref_up, ref_bias = runs["sync"]
    for mode in ("thread", "process"):
        up, bias = runs[mode]
        for p, q in zip(ref_bias.parameters(), bias.parameters()):
            assert torch.equal(p, q), mode
        for name in ("colvar", "ves.log", "fes_bias.dat", "fes_bias_avg.dat"):
            assert open(tmp_path / "sync" / name).read() == open(tmp_path / mode / name).read(), (mode, name)
        a, b = ref_up.optimizer.state_dict(), up.optimizer.state_dict()
        assert torch.equal(a["adam"]["state"][0]["exp_avg"], b["adam"]["state"][0]["exp_avg"])
        assert torch.equal(a["target"]["free_energy"], b["target"]["free_energy"])
        assert a["schedule"] == b["schedule"] and torch.equal(a["kl_monitor"]["histogram"], b["kl_monitor"]["histogram"])
        up.close()
