"""DeepVESUpdater on Wolfe-Quapp: learning in a running Simulation, files, exact restart, errors."""

import copy
import os

import numpy as np
import openmm as mm
import pytest
import torch
from openmm import app, unit

from openmm_nnbias.analysis import read_colvar, read_grid_file
from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
from openmm_nnbias.cvs import CVSet, Position
from openmm_nnbias.systems import wolfe_quapp
from openmm_nnbias.ves import (DeepVESUpdater, ExecutionOptions, KLThreshold, OutputOptions, ScheduleOptions,
                               WellTempered)

from _devices import DEFAULT_PLATFORM, platform_properties


_SCHEDULE = {"learningRate", "outputLearningRateScale", "tauKL", "tauDecay", "freezeRatio"}
_OUTPUTS = {"fesInterval", "checkpointInterval", "snapshotInterval", "colvarStride"}


def make_run(out=None, backend="table", seed=1, lower=-3.0, activation="relu", mode="sync", klThreshold=0.5,
             bins=50, stride=200, sampleStride=10, decay=None, pushInterval=1, precision="mixed", learnerCPUs=None,
             **options):
    """A Wolfe-Quapp run (x only) with the grouped options; ``options`` are schedule and output fields."""
    ms = wolfe_quapp()
    cvs = CVSet([Position(0, "x", lower, 3.0)])
    bias = NeuralBias.from_cvs(cvs, seed=0, hidden=(16, 8), activation=activation)
    force = NeuralBiasForce(cvs, bias, backend=backend)
    force.addToSystem(ms.system)
    integ = mm.LangevinMiddleIntegrator(ms.temperature, ms.friction, ms.timestep)
    integ.setRandomNumberSeed(seed)
    sim = app.Simulation(ms.topology, ms.system, integ, mm.Platform.getPlatformByName(DEFAULT_PLATFORM),
                         platform_properties(DEFAULT_PLATFORM, threads=1))
    sim.context.setPositions(ms.positions)
    unknown = set(options) - _SCHEDULE - _OUTPUTS
    assert not unknown, unknown
    schedule = ScheduleOptions(**{"tauKL": 50, "tauDecay": 20, **{k: v for k, v in options.items() if k in _SCHEDULE}},
                               decay=decay or KLThreshold(klThreshold))
    outputs = OutputOptions(out, **{k: v for k, v in options.items() if k in _OUTPUTS})
    execution = ExecutionOptions(mode=mode, pushInterval=pushInterval, precision=precision, learnerCPUs=learnerCPUs)
    updater = DeepVESUpdater(force, ms.temperature, target=WellTempered(10.0, bins=bins), stride=stride,
                             sampleStride=sampleStride, schedule=schedule, outputs=outputs, execution=execution)
    sim.reporters.append(updater)
    return sim, updater, bias


def test_short_run_learns_pushes_and_writes(tmp_path):
    out = str(tmp_path / "run")
    sim, up, bias = make_run(out, fesInterval=20, checkpointInterval=1000)
    sim.step(200 * 120)
    kl = np.array([h["kl"] for h in up.history])
    assert len(kl) == 120
    assert kl[-20:].mean() < kl[5:25].mean()  # the running KL decreases
    # the running simulation carries the learned bias
    x = sim.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)[0, 0]
    expected = float(bias(torch.tensor([[x]], dtype=torch.float64)).detach())
    assert abs(up.force.getBiasEnergy(sim).value_in_unit(unit.kilojoule_per_mole) - expected) < 0.05
    col = read_colvar(os.path.join(out, "colvar"))
    assert list(col) == ["time", "x", "bias", "rbias"] and len(col["x"]) == 120 * 20
    assert np.all(np.diff(col["time"]) > 0)
    log = open(os.path.join(out, "ves.log")).read().splitlines()
    rows = [ln for ln in log if not ln.startswith("#")]
    assert log[0].startswith("#! FIELDS iteration time grad_norm kl lr c phase") and len(rows) == 120
    pts, fes, names = read_grid_file(os.path.join(out, "fes_bias.dat"))
    assert names == ["x"] and len(fes) == 50 and fes.min() == 0.0
    assert open(os.path.join(out, "fes_bias.dat")).readline().startswith("#! FIELDS x file.free")
    assert os.path.exists(os.path.join(out, "bias.pt"))


def test_restart_gives_same_weights_as_uninterrupted_run(tmp_path):
    sim, up, bias = make_run(str(tmp_path / "a"), checkpointInterval=10)
    sim.step(200 * 10)
    sim.step(200 * 6)
    reference = [p.detach().clone() for p in bias.parameters()]

    sim2, up2, bias2 = make_run(str(tmp_path / "b"), checkpointInterval=1000, seed=99)
    up2.loadCheckpoint(str(tmp_path / "a" / "checkpoint.pt"), sim2)
    assert up2.optimizer.iteration == 10 and sim2.currentStep == 2000
    sim2.step(200 * 6)
    for p, q in zip(bias2.parameters(), reference):
        assert torch.equal(p.detach(), q)


def test_frozen_bias_accumulates_reweighted_fes(tmp_path):
    out = str(tmp_path / "run")
    sim, up, bias = make_run(out, klThreshold=100.0, tauDecay=2, freezeRatio=0.3, fesInterval=5)
    sim.step(200 * 20)
    assert up.optimizer.frozen
    rw = up.getReweightedFreeEnergy()
    assert rw is not None and np.nanmin(rw) == 0.0
    up.writeFes()
    assert os.path.exists(os.path.join(out, "fes_reweighted.dat"))
    avg = up.getAveragedFreeEnergyFromBias()  # decay-phase average, written next to fes_bias.dat
    assert avg is not None and avg.shape == up.grid.shape and avg.min() == 0.0
    assert os.path.exists(os.path.join(out, "fes_bias_avg.dat"))


def test_bad_input(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="not writable"):
        make_run(str(blocker / "sub"))
    with pytest.raises(ValueError, match="multiple of sampleStride"):
        make_run(None, stride=205)
    sim, up, _ = make_run(None, lower=-1.0)
    with pytest.raises(ValueError, match="CV 'x' = .* outside its declared range"):
        sim.step(200)
    sim, up, _ = make_run(str(tmp_path / "a"), checkpointInterval=1)
    sim.step(200)
    sim2, up2, _ = make_run(None, bins=40)
    with pytest.raises(ValueError, match="does not match this run"):
        up2.loadCheckpoint(str(tmp_path / "a" / "checkpoint.pt"), sim2)
    sim3, up3, _ = make_run(None, activation="elu")  # same shapes, another network: no silent restart
    with pytest.raises(ValueError, match="does not match this run.*'network'"):
        up3.loadCheckpoint(str(tmp_path / "a" / "checkpoint.pt"), sim3)
    sim4, up4, _ = make_run(None, outputLearningRateScale=10.0)  # a checkpoint made before the option: scale 1
    with pytest.raises(ValueError, match="used outputLearningRateScale 1, this one 10: pass outputLearningRateScale=1"):
        up4.loadCheckpoint(str(tmp_path / "a" / "checkpoint.pt"), sim4)


def test_nan_cvs_skip_the_update_and_keep_weights(tmp_path):
    sim, up, bias = make_run(str(tmp_path / "run"))
    sim.step(400)
    before = [p.detach().clone() for p in bias.parameters()]
    up._samples = [(np.full((1, 3), np.nan), float(t), 400 + 10 * (t + 1), None) for t in range(20)]  # (x, t, step, box)
    with pytest.warns(UserWarning, match="skipped: non-finite CV values"):
        up._iterate(sim)
    assert up.history[-1]["skipped"]
    for p, q in zip(bias.parameters(), before):
        assert torch.equal(p.detach(), q)
    sim.step(200)  # and learning goes on
    assert up.history[-1]["updated"]


@pytest.mark.parametrize("backend", ["table", "torch"])
def test_async_learning_is_deterministic_and_pushes_the_network(tmp_path, backend):
    runs = []
    for name in "ab":
        sim, up, bias = make_run(str(tmp_path / name), backend=backend, mode="thread", checkpointInterval=1000)
        sim.step(200 * 25)
        up.flush()
        runs.append((sim, up, bias))
    (sim, up, bias), (_, up_b, bias_b) = runs
    assert len(up.history) == 25 and all(h["updated"] for h in up.history[1:])
    assert [h["iteration"] for h in up.history] == list(range(25))
    for p, q in zip(bias.parameters(), bias_b.parameters()):
        assert torch.equal(p, q)  # deterministic
    x = sim.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)[0, 0]
    expected = float(bias(torch.tensor([[x]], dtype=torch.float64)).detach())
    assert abs(up.force.getBiasEnergy(sim).value_in_unit(unit.kilojoule_per_mole) - expected) < 0.05
    log = open(os.path.join(str(tmp_path / "a"), "ves.log")).read().splitlines()
    assert [int(ln.split()[0]) for ln in log if not ln.startswith("#")] == list(range(25))


def test_async_restart_gives_same_weights_as_uninterrupted_run(tmp_path):
    sim, up, bias = make_run(str(tmp_path / "a"), checkpointInterval=10, mode="thread")
    sim.step(200 * 16)
    up.flush()
    reference = [p.detach().clone() for p in bias.parameters()]

    sim2, up2, bias2 = make_run(str(tmp_path / "b"), checkpointInterval=1000, seed=99, mode="thread")
    up2.loadCheckpoint(str(tmp_path / "a" / "checkpoint.pt"), sim2)
    assert up2.optimizer.iteration == 10
    sim2.step(200 * 6)
    up2.flush()
    for p, q in zip(bias2.parameters(), reference):
        assert torch.equal(p.detach(), q)


def test_push_interval_pushes_every_nth_iteration():
    sim, up, bias = make_run(None, backend="torch", pushInterval=3)
    flat = lambda: torch.cat([p.detach().reshape(-1) for p in bias.parameters()])  # noqa: E731
    sim.step(200 * 7)  # iterations 0..6: pushes after 2 and 5, not after 6
    assert not torch.equal(up.force.backend.weights.read(), flat())
    sim.step(200 * 2)  # iteration 8 pushes
    assert torch.equal(up.force.backend.weights.read(), flat())
    with pytest.raises(ValueError, match="pushInterval"):
        make_run(None, pushInterval=0)


def test_process_learner_matches_thread_learner_and_restarts(tmp_path):
    """asynchronous='process' computes exactly what the worker thread computes, files included."""
    runs = {}
    for mode in ("thread", "process"):
        sim, up, bias = make_run(str(tmp_path / mode), mode=mode, checkpointInterval=10, fesInterval=5,
                                 klThreshold=100.0, tauDecay=5, freezeRatio=0.01, pushInterval=3)
        sim.step(200 * 23)  # learning, decay, frozen; checkpoints at 10 and 20
        sim.step(200 * 2)  # frozen: reweighting
        up.writeFes()
        runs[mode] = (sim, up, bias)
    (_, up_t, bias_t), (sim_p, up_p, bias_p) = runs["thread"], runs["process"]
    assert up_p.optimizer.frozen and up_t.optimizer.frozen
    for p, q in zip(bias_t.parameters(), bias_p.parameters()):
        assert torch.equal(p, q)
    for name in ("ves.log", "colvar", "fes_bias.dat", "fes_bias_avg.dat", "fes_reweighted.dat"):
        assert open(tmp_path / "thread" / name).read() == open(tmp_path / "process" / name).read(), name
    # the parent's optimizer mirror is complete after flush(): Adam moments and target included
    def same(x, y):
        if isinstance(x, torch.Tensor):
            return torch.equal(x, y)
        if isinstance(x, dict):
            return x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
        if isinstance(x, (list, tuple)):
            return len(x) == len(y) and all(same(u, v) for u, v in zip(x, y))
        return x == y or (x != x and y != y)

    assert same(up_t.optimizer.state_dict(), up_p.optimizer.state_dict())
    up_p.close()
    assert up_p._learner is None

    sim2, up2, bias2 = make_run(str(tmp_path / "restart"), mode="process", checkpointInterval=1000,
                                fesInterval=5, klThreshold=100.0, tauDecay=5, freezeRatio=0.01, seed=7, pushInterval=3)
    up2.loadCheckpoint(str(tmp_path / "process" / "checkpoint.pt"), sim2)
    assert not up2.optimizer.frozen  # still learning at the checkpoint: the restart is a real test
    sim2.step(200 * 3)
    up2.close()
    assert up2.optimizer.frozen
    for p, q in zip(bias2.parameters(), bias_p.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="mode must be one of"):
        make_run(None, mode="processes")


def test_process_learner_raises_the_child_exception_type():
    from openmm_nnbias.ves.learner import LearnerCore
    from openmm_nnbias.ves.learner_process import ProcessLearner
    from openmm_nnbias.ves.samples import SampleEvaluator

    _, up, _ = make_run(None)
    ev = SampleEvaluator(up.cvs, up.cvs, copy.deepcopy(up.bias), need_v=True, grid=True)
    learner = ProcessLearner(LearnerCore(up.optimizer, up.force.backend, ev, 1), threads=1)
    try:
        learner.submit(np.zeros((5, 2, 4)), np.arange(5.0), np.arange(5), -1, False)  # wrong shape
        with pytest.raises(ValueError, match="positions must have shape") as info:
            learner.result()
        assert isinstance(info.value.__cause__, RuntimeError)
        assert "learner process traceback" in str(info.value.__cause__)
        learner.submit(np.zeros((5, 1, 3)), np.arange(5.0), np.arange(5), -1, False)
        result = learner.result()  # the child survives a failed step
        assert result.iteration == 0 and result.record.s.shape == (5, 1) and result.payload is None
        with pytest.raises(RuntimeError, match="busy"):
            learner.submit(np.zeros((5, 1, 3)), np.arange(5.0), np.arange(5), 0, False)
            learner.submit(np.zeros((5, 1, 3)), np.arange(5.0), np.arange(5), 0, False)
    finally:
        learner.close()


def test_restart_in_the_same_folder_gives_the_files_of_an_uninterrupted_run(tmp_path):
    """Rows written after the last checkpoint are dropped on restart and written again."""
    sim, up, _ = make_run(str(tmp_path / "ref"), checkpointInterval=10)
    sim.step(200 * 16)
    sim, up, _ = make_run(str(tmp_path / "cut"), checkpointInterval=10)
    sim.step(200 * 13)  # "killed" 3 iterations after the checkpoint of iteration 9
    sim2, up2, _ = make_run(str(tmp_path / "cut"), checkpointInterval=10, seed=99)
    up2.loadCheckpoint(str(tmp_path / "cut" / "checkpoint.pt"), sim2)
    log = open(tmp_path / "cut" / "ves.log").read().splitlines()
    assert int(log[-1].split()[0]) == 9  # iterations 10..12 dropped
    sim2.step(200 * 6)
    for name in ("colvar", "ves.log"):
        assert open(tmp_path / "cut" / name).read() == open(tmp_path / "ref" / name).read(), name


def test_fresh_run_in_a_used_folder_backs_up_the_previous_files(tmp_path):
    """A new run never appends to (or overwrites) a previous run's files: they move to bck.<n>.*"""
    out = str(tmp_path / "run")
    sim, up, _ = make_run(out, checkpointInterval=5)
    sim.step(200 * 6)
    up.flush()
    for name in ("fes_bias_x.dat", "fes_colvar_reweighted.dat", "fes_bias.png"):  # analysis outputs of that run
        open(os.path.join(out, name), "w").write(name)
    first = {n: open(os.path.join(out, n), "rb").read()
             for n in ("colvar", "ves.log", "checkpoint.pt", "fes_bias_x.dat", "fes_colvar_reweighted.dat", "fes_bias.png")}
    sim2, up2, _ = make_run(out, checkpointInterval=1000, seed=5)
    assert open(os.path.join(out, "colvar"), "rb").read() == first["colvar"]  # nothing moves before a step
    with pytest.warns(UserWarning, match=r"moved to bck\.0\."):
        sim2.step(200 * 2)
    up2.flush()
    for name, data in first.items():
        assert open(os.path.join(out, f"bck.0.{name}"), "rb").read() == data
    assert not os.path.exists(os.path.join(out, "checkpoint.pt"))
    log = open(os.path.join(out, "ves.log")).read().splitlines()
    assert log[0].startswith("#! FIELDS") and [int(r.split()[0]) for r in log[1:] if r[0] != "#"] == [0, 1]
    colvar = np.loadtxt(os.path.join(out, "colvar"), comments="#")
    assert np.all(np.diff(colvar[:, 0]) > 0)  # one run, time increasing
    # a third run backs up into bck.1; a restart from a checkpoint keeps the files
    sim3, up3, _ = make_run(out, checkpointInterval=1000)
    with pytest.warns(UserWarning, match=r"bck\.1\."):
        sim3.step(200)
    sim4, up4, _ = make_run(out)
    up4.loadCheckpoint(os.path.join(out, "bck.0.checkpoint.pt"), sim4)
    sim4.step(200)
    up4.flush()
    assert not any(n.startswith("bck.2.") for n in os.listdir(out))
    rows = [r for r in open(os.path.join(out, "ves.log")).read().splitlines() if not r.startswith("#")]
    assert [int(r.split()[0]) for r in rows] == [0, 5]


def test_precision_option_sets_the_optimizer_passes():
    _, up, _ = make_run(None)
    assert up.optimizer.evaluator.compute_dtype == torch.float32  # default "mixed": float32 passes
    assert up.optimizer.dtype == torch.float64  # float64 weights, Adam and target
    _, up, _ = make_run(None, precision="double")
    assert up.optimizer.evaluator.compute_dtype == torch.float64
    with pytest.raises(ValueError, match="precision must be"):
        make_run(None, precision="single")


def test_learner_cpus_pin_the_learner_process():
    import os

    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this OS")
    cpu = max(os.sched_getaffinity(0))
    sim, up, _ = make_run(None, mode="process", learnerCPUs=[cpu])
    sim.step(200 * 2)
    assert os.sched_getaffinity(up._learner._proc.pid) == {cpu}
    up.close()
    with pytest.raises(ValueError, match="learner CPUs must be a non-empty subset"):
        make_run(None, mode="process", learnerCPUs=[10_000])
    with pytest.raises(ValueError, match="learnerCPUs applies to the 'process' execution mode only"):
        make_run(None, learnerCPUs=[cpu])


def test_learner_warns_when_it_would_share_the_pinned_cpu():
    import os

    if not hasattr(os, "sched_getaffinity") or (os.cpu_count() or 1) < 2:
        pytest.skip("needs CPU affinity and two CPUs")
    saved = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(saved)})
        sim, up, _ = make_run(None, mode="process")
        with pytest.warns(RuntimeWarning, match="learner process inherits the pin"):
            sim.step(200)
        up.close()
    finally:
        os.sched_setaffinity(0, saved)
