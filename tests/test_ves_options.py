"""DeepVESUpdater's grouped options, target choices, decay triggers, flat keywords refused,
ending a run from Python, and the errors of misuse."""

import os
import sys
import openmm as mm
import pytest
import torch
from openmm import app, unit

from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
from openmm_nnbias.cvs import CVSet, Position
from openmm_nnbias.systems import wolfe_quapp
from openmm_nnbias.ves import (DeepVESUpdater, ExecutionOptions, KLThreshold, MinimumTime, MonteCarlo,
                               OutputOptions, Recrossings, ScheduleOptions, Uniform, WellTempered)
from openmm_nnbias.ves import WalkerDeepVESUpdater, WalkerGroup
from openmm_nnbias.ves.triggers import AllOf

sys.path.insert(0, os.path.dirname(__file__))
from test_ves_updater import make_run  # noqa: E402


def _force():
    ms = wolfe_quapp()
    cvs = CVSet([Position(0, "x", -3.0, 3.0)])
    force = NeuralBiasForce(cvs, NeuralBias.from_cvs(cvs, seed=0, hidden=(8,)), backend="table")
    force.addToSystem(ms.system)
    return ms, force


def test_option_groups_validate_each_field():
    with pytest.raises(TypeError, match="learningRate must be a number"):
        ScheduleOptions(learningRate="fast")
    with pytest.raises(ValueError, match="freezeRatio must be a finite number > 0.0 and < 1.0"):
        ScheduleOptions(freezeRatio=2.0)
    with pytest.raises(TypeError, match="decay must be a DecayTrigger"):
        ScheduleOptions(decay=0.5)
    with pytest.raises(TypeError, match="checkpointInterval must be an integer number"):
        OutputOptions("run", checkpointInterval=10.5)
    with pytest.raises(ValueError, match="mode must be one of"):
        ExecutionOptions(mode="async")
    with pytest.raises(TypeError, match="bins must be an int"):
        WellTempered(bins=50.0)
    with pytest.raises(ValueError, match="biasFactor must be a finite number > 1"):
        WellTempered(biasFactor=1.0)
    with pytest.raises(ValueError, match="exactly one of time and iterations"):
        MinimumTime()
    assert MinimumTime(10 * unit.nanosecond).time_ps == 10000.0


def test_stride_must_be_an_integer_step_count():
    ms, force = _force()
    with pytest.raises(TypeError, match=r"stride must be an integer number of steps .*500\.7"):
        DeepVESUpdater(force, ms.temperature, stride=500.7)
    with pytest.raises(TypeError, match="sampleStride must be an integer.*Quantity of time is not a step count"):
        DeepVESUpdater(force, ms.temperature, sampleStride=1 * unit.picosecond)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        DeepVESUpdater(force, ms.temperature, stride=0)
    with pytest.raises(TypeError, match="target must be a TargetChoice"):
        DeepVESUpdater(force, ms.temperature, target="well-tempered")
    with pytest.raises(TypeError, match="biasForce must be a NeuralBiasForce"):
        DeepVESUpdater(force.bias, ms.temperature)


def test_temperature_of_the_integrator_must_match_and_nothing_is_written(tmp_path):
    ms, force = _force()
    integ = mm.LangevinMiddleIntegrator(ms.temperature * 2, ms.friction, ms.timestep)
    sim = app.Simulation(ms.topology, ms.system, integ, mm.Platform.getPlatformByName("CPU"))
    sim.context.setPositions(ms.positions)
    out = tmp_path / "run"
    sim.reporters.append(DeepVESUpdater(force, ms.temperature, stride=20, sampleStride=10, outputs=str(out)))
    with pytest.raises(ValueError, match=r"differs from the integrator's \(.* K\)"):
        sim.step(20)
    assert not out.exists()  # the folder is made at the first report that passes its checks


def test_grouped_options_reach_the_optimizer():
    ms, force = _force()
    up = DeepVESUpdater(force, ms.temperature, target=WellTempered(5, bins=40),
                        schedule=ScheduleOptions(tauDecay=7, decay=KLThreshold(0.3)),
                        outputs=OutputOptions(None), execution=ExecutionOptions(mode="thread", pushInterval=2))
    assert up.target == WellTempered(5.0, bins=40) and up.execution.mode == "thread"
    assert up.schedule.decay == KLThreshold(0.3) and up.schedule.tauDecay == 7.0 and up.pushInterval == 2
    assert up.optimizer.target.biasFactor == 5.0 and up.grid.bins_list == [40]
    assert up.optimizer.schedule.kl_threshold == 0.3 and up.optimizer.schedule.tau_decay == 7.0
    up = DeepVESUpdater(force, ms.temperature, target=MonteCarlo(chains=50, steps=2, marginalBins=40))
    assert up.grid is None and up.target.chains == 50
    assert up.optimizer.target.sampler.n_chains == 50 and up.optimizer.target.n_steps == 2
    assert up.optimizer.kl_monitor.bins == 40
    with pytest.raises(ValueError, match="getFreeEnergyFromBias needs a grid target"):
        up.getFreeEnergyFromBias()
    with pytest.raises(ValueError, match="getReweightedFreeEnergy needs a grid target"):
        up.getReweightedFreeEnergy()


@pytest.mark.parametrize("flat", [dict(biasFactor=5), dict(out="run"), dict(asynchronous=True), dict(gridBins=40),
                                  dict(klThreshold=0.3), dict(monteCarlo=dict(chains=10)), dict(biasfactor=5)])
def test_flat_keywords_are_a_type_error_naming_them(flat):
    ms, force = _force()
    (name,) = flat
    with pytest.raises(TypeError, match=f"unexpected keyword argument '{name}'"):
        DeepVESUpdater(force, ms.temperature, **flat)
    with pytest.raises(TypeError, match=f"unexpected keyword argument '{name}'"):
        DeepVESUpdater(force, ms.temperature, target=Uniform(), **flat)
    with pytest.raises(TypeError, match=f"unexpected keyword argument '{name}'"):
        WalkerDeepVESUpdater(force, ms.temperature, WalkerGroup(rank=0, worldSize=1), **flat)


def test_minimum_time_delays_the_kl_decay():
    # a KL threshold every iteration passes: without a minimum time the decay starts at iteration 1
    sim0, up0, _ = make_run(None, decay=KLThreshold(100.0))
    iteration_ps = 200 * sim0.integrator.getStepSize().value_in_unit(unit.picosecond)
    sim0.step(200 * 3)
    assert next(h["iteration"] for h in up0.history if h["phase"] == "decaying") == 1
    for minimum in (MinimumTime(6 * iteration_ps * unit.picosecond), MinimumTime(iterations=6)):
        sim, up, _ = make_run(None, decay=KLThreshold(100.0) & minimum)
        sim.step(200 * 9)
        assert up.optimizer.decay_after == 6
        assert next(h["iteration"] for h in up.history if h["phase"] == "decaying") == 6


def test_triggers_combine_and_resolve():
    rule = MinimumTime(iterations=5) & Recrossings([0], [(-3.0, -0.3), (0.3, 3.0)], 2)
    assert isinstance(rule, AllOf) and len(rule.parts) == 2
    settings = rule.resolve()
    assert settings["recrossing"].min_iterations == 5 and not settings["useKL"] and settings["decayAfter"] == 0
    assert KLThreshold(0.2).resolve() == {"klThreshold": 0.2, "useKL": True, "recrossing": None, "decayAfter": 0}
    with pytest.raises(ValueError, match="at most one KLThreshold"):
        (KLThreshold(0.1) & KLThreshold(0.2)).resolve()
    with pytest.raises(TypeError, match="DecayTrigger objects"):
        AllOf(KLThreshold(), 3)


def test_monte_carlo_target_is_the_default_for_many_cvs():
    cvs = CVSet([Position([0, 0, 0, 1], ["x", "y", "z", "x"], -3.0, 3.0, names=["x", "y", "z", "x1"])])
    ms = wolfe_quapp()
    ms.system.addParticle(1.0)
    force = NeuralBiasForce(cvs, NeuralBias.from_cvs(cvs, seed=0, hidden=(8,)), backend="torch")
    force.addToSystem(ms.system)
    up = DeepVESUpdater(force, ms.temperature, target=MonteCarlo(chains=20, steps=2))
    assert up.grid is None and up.optimizer.target.n_cv == 4
    assert DeepVESUpdater(force, ms.temperature).target == MonteCarlo()


@pytest.mark.parametrize("mode", ["sync", "process"])
def test_finish_writes_every_file_the_readme_lists(tmp_path, mode):
    out = tmp_path / "run"
    sim, up, _ = make_run(str(out), mode=mode)  # fesInterval and checkpointInterval 100: not reached
    sim.step(200 * 3)
    assert sorted(os.listdir(out)) == ["colvar", "ves.log"]
    up.finish()
    assert sorted(os.listdir(out)) == ["bias.pt", "checkpoint.pt", "colvar", "fes.dat", "fes_bias.dat", "ves.log"]
    assert up._learner is None and len(up.history) == 3
    sim2, up2, _ = make_run(None, mode=mode, seed=9)
    up2.loadCheckpoint(str(out / "checkpoint.pt"), sim2)  # a checkpoint a restart can use
    assert up2.optimizer.iteration == 3


def test_context_manager_finishes_and_warns_mid_iteration(tmp_path):
    out = tmp_path / "run"
    sim, up, _ = make_run(str(out), klThreshold=100.0, tauDecay=2, freezeRatio=0.3)
    with pytest.warns(UserWarning, match="checkpoint.pt stays at the last iteration boundary"):
        with up:
            sim.step(200 * 6 + 50)  # frozen; ends 50 steps into an iteration
    files = sorted(os.listdir(out))
    assert files == ["bias.pt", "colvar", "fes.dat", "fes_bias.dat", "fes_bias_avg.dat", "fes_reweighted.dat", "ves.log"]


def test_close_puts_the_network_in_force_and_a_later_step_goes_on(tmp_path):
    sim, up, bias = make_run(str(tmp_path), backend="torch", pushInterval=4, checkpointInterval=1000)
    flat = lambda: torch.cat([p.detach().reshape(-1) for p in bias.parameters()])  # noqa: E731
    sim.step(200 * 6)  # pushed after iteration 3, not after 5
    assert not torch.equal(up.force.backend.weights.read(), flat())
    up.close()
    assert torch.equal(up.force.backend.weights.read(), flat()) and up.c == up.history[-1]["c"]
    sim.step(200 * 2)  # a new learner, its V the network now in force
    up.close()
    assert len(up.history) == 8
