"""DeepVESUpdater: an OpenMM reporter that learns a Deep-VES bias on the fly."""

from __future__ import annotations

import copy
import os

import numpy as np
import torch

from .._io import atomic_write
from .._units import KB, strip_unit
from .learner import LearnerCore
from .learner_modes import make_learner
from .options import ExecutionOptions, OutputOptions, ScheduleOptions, step_count
from .optimizer import DeepVESOptimizer
from .outputs import UpdaterFiles
from .running_fes import WindowedReweighting
from .samples import SampleEvaluator
from .targets import MonteCarlo, TargetChoice, WellTempered
from .triggers import MinimumTime

__all__ = ["DeepVESUpdater"]


class DeepVESUpdater(UpdaterFiles):
    """OpenMM reporter running Deep-VES (Bonati, Zhang, Parrinello 2019) during ``simulation.step``.

    Every ``sampleStride`` MD steps it records the positions of the CV atoms (for Force CVs,
    :class:`~openmm_nnbias.cvs.ForceCV`, the CV values OpenMM computes in the Context); every ``stride``
    steps (one iteration) its learner evaluates the CVs, takes one Adam step on Ω (Eq. 10) towards
    the target, and the new weights are pushed into the running Context through the
    :class:`~openmm_nnbias.bias.NeuralBiasForce`; files are written as the steps finish. Once the
    schedule freezes the bias, it accumulates the reweighted FES (Eq. 11). ``colvar``'s ``bias`` and
    ``rbias`` and the reweighting weights are V and c(t) of the weights *in the Context* while each
    sample was drawn, whatever the execution mode and push interval.

    The options are the keywords below, those of Deep-VES grouped in ``target``, ``schedule``,
    ``outputs`` and ``execution``; any other keyword (such as a flat ``biasFactor=``) is a TypeError.

    Parameters
    ----------
    biasForce : NeuralBiasForce
        The bias force, added to the System before the Simulation was created.
    temperature : Quantity or float
        Temperature (K); must equal the integrator's.
    target : TargetChoice, optional
        :class:`~openmm_nnbias.ves.WellTempered` (default for ≤ 3 CVs, γ = 10, 50 bins),
        :class:`~openmm_nnbias.ves.Uniform`, or :class:`~openmm_nnbias.ves.MonteCarlo` (default for
        more CVs: no grid, no FES files or reweighting; reweight ``colvar`` offline).
    stride : int
        MD steps per iteration (paper: 500).
    sampleStride : int
        MD steps between samples (``stride`` must be a multiple of it); the default 10 is that of
        the command line and the input file (``sampleStride``) too: 50 samples per iteration of 500 steps.
    schedule : ScheduleOptions, optional
        Learning rate, τ_KL, τ_decay, freeze ratio and the decay trigger (paper's Ala2 defaults).
    outputs : OutputOptions or str, optional
        Output folder (a str is ``OutputOptions(folder)``) and intervals; None writes nothing.
        The folder gets ``colvar``, ``ves.log``, ``fes_bias.dat``, ``fes_bias_avg.dat`` (from
        the decay on), ``fes_reweighted.dat`` (once frozen), ``bias.pt``, ``checkpoint.pt`` and
        ``bias_<iteration>.pt`` snapshots.
    execution : ExecutionOptions, optional
        Mode ("sync", the paper's scheme; "thread" or "process": the step of iteration k overlaps
        the MD of iteration k+1, so the bias in force lags one iteration), push interval, device,
        precision, learner CPUs. Checkpoint iterations are synchronous in every mode (exact restarts).
    reducer : WalkerGroup, optional
        Multiple walkers (use :class:`~openmm_nnbias.ves.WalkerDeepVESUpdater`).

    Examples
    --------
    >>> up = DeepVESUpdater(nnforce, 300 * unit.kelvin, target=WellTempered(biasFactor=10),
    ...                     stride=500, outputs="run")                            # doctest: +SKIP
    >>> sim.reporters.append(up)                                                  # doctest: +SKIP
    >>> sim.step(500_000)                                                         # doctest: +SKIP
    >>> up.finish()   # pending step, bias.pt, FES files, checkpoint; ends a learner process  # doctest: +SKIP
    """

    def __init__(self, biasForce, temperature, *, target: TargetChoice | None = None, stride: int = 500,
                 sampleStride: int = 10, schedule: ScheduleOptions | None = None,
                 outputs: OutputOptions | str | None = None, execution: ExecutionOptions | None = None,
                 reducer=None):
        from ..bias import NeuralBiasForce

        if not isinstance(biasForce, NeuralBiasForce):
            raise TypeError(f"biasForce must be a NeuralBiasForce, got {type(biasForce).__name__}")
        self.cvs, self.bias, self.force = biasForce.cvs, biasForce.bias, biasForce
        target = (WellTempered() if self.cvs.n_cvs <= 3 else MonteCarlo()) if target is None else target
        outputs = OutputOptions(outputs) if isinstance(outputs, (str, os.PathLike)) or outputs is None else outputs
        schedule, execution = schedule or ScheduleOptions(), execution or ExecutionOptions()
        for name, value, kind in (("target", target, TargetChoice), ("schedule", schedule, ScheduleOptions),
                                  ("outputs", outputs, OutputOptions), ("execution", execution, ExecutionOptions)):
            if not isinstance(value, kind):
                raise TypeError(f"{name} must be a {kind.__name__}, got {type(value).__name__}")
        self.temperature = strip_unit(temperature, "kelvin")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 K, got {self.temperature}")
        self.stride, self.sampleStride = step_count("stride", stride), step_count("sampleStride", sampleStride)
        if self.stride % self.sampleStride:
            raise ValueError(f"stride ({stride}) must be a multiple of sampleStride ({sampleStride})")
        self.colvarStride = outputs.colvarStride or self.sampleStride
        if self.colvarStride % self.sampleStride:
            raise ValueError(f"colvarStride ({self.colvarStride}) must be a multiple of sampleStride ({sampleStride})")
        if execution.mode == "process" and self.cvs.has_force_cvs:
            raise ValueError("execution mode 'process' does not take Force CVs (ForceCV); use mode 'thread' or 'sync'")
        if execution.mode == "process" and reducer is not None:
            raise ValueError("the 'process' execution mode cannot be combined with multiple walkers; use 'thread'")
        self.target, self.schedule, self.outputs, self.execution = target, schedule, outputs, execution
        self.out = outputs.folder
        self.fesInterval, self.checkpointInterval = outputs.fesInterval, outputs.checkpointInterval
        self.snapshotInterval, self.pushInterval = outputs.snapshotInterval, execution.pushInterval
        self.kT = KB * self.temperature
        self._outputs_ready = True  # no folder: no files; _prepare_out defers their set-up to the first report
        if self.out is not None:
            self._prepare_out(self.out)
        decay = schedule.decay
        self._min_time = next((p for p in decay.parts if isinstance(p, MinimumTime) and p.iterations is None), None)
        args = target.optimizer_args(self.cvs, self.kT)
        self.grid = args["grid"]
        device = execution.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.optimizer = DeepVESOptimizer(
            self.bias, kT=self.kT, learningRate=schedule.learningRate,
            outputLearningRateScale=schedule.outputLearningRateScale, tauKL=schedule.tauKL,
            tauDecay=schedule.tauDecay, freezeRatio=schedule.freezeRatio, device=device, reducer=reducer,
            computeDtype=execution.precision, **args, **decay.resolve(iteration_ps=1.0 if self._min_time else None))
        self.config = dict(cvs=list(self.cvs.names), temperature=self.temperature, stride=self.stride,
                           sampleStride=self.sampleStride, target=target.describe(), schedule=schedule.describe(),
                           network=dict(hidden=list(self.bias.hidden), activation=self.bias.activation))
        # atoms the CVs need, and a copy of the CV set indexing into that subset (Force CVs: values recorded)
        self._atoms, self._sub_cvs = None, None
        if not self.cvs.has_force_cvs:
            atoms = sorted({a for g in self.cvs.groups for a in g.atoms.reshape(-1).tolist()})
            lookup = torch.full((max(atoms) + 1,), -1, dtype=torch.long)
            lookup[atoms] = torch.arange(len(atoms))
            self._atoms = np.array(atoms)
            self._sub_cvs = copy.deepcopy(self.cvs)
            for g in self._sub_cvs.groups:
                g.atoms = lookup[g.atoms]
        self._samples, self._keep_states = [], None  # per sample: (State or positions, time, step)
        self.c = 0.0  # c(t) of the bias in force
        self.history = []
        self._rw_logsum, self._rw_count = None, 0  # per-bin log Σ exp(βV) after freezing
        # per-bin log Σ exp(β(V − c)) of every iteration, in blocks of fesInterval iterations (fes.dat)
        self._windowed = (WindowedReweighting(self.grid.n_points, self.fesInterval)
                          if self.grid is not None and self.out is not None else None)
        self._learner, self._simulation, self._checked, self._periodic = None, None, False, False
        self._applied = self.optimizer.iteration - 1  # last optimizer step whose weights reached the Context
        self._last_phase = self.optimizer.phase

    @property
    def asynchronous(self) -> bool:
        """True when learning overlaps MD (execution mode "thread" or "process")."""
        return self.execution.mode != "sync"

    # ----------------------------------------------------------------- reporter protocol
    def describeNextReport(self, simulation):
        steps = self.sampleStride - simulation.currentStep % self.sampleStride
        return {"steps": steps, "periodic": False, "include": [] if self.cvs.has_force_cvs else ["positions"]}

    def report(self, simulation, state):
        if not self._checked:
            self._check_simulation(simulation)
        if not self._outputs_ready:  # first report of a fresh run: back up a previous run's files
            self._ensure_outputs()
        if self._keep_states is None:  # small systems (≤ ~2.4 MB per iteration): read the States at the
            # iteration's end, all at once — right after integrator.step every read is slow (RESULTS.md)
            self._keep_states = simulation.system.getNumParticles() * (self.stride // self.sampleStride) <= 100_000
        if self.cvs.has_force_cvs:  # the values OpenMM computes now, read at this step
            from openmm import unit

            values = np.asarray(self.force.backend.cv_values(simulation.context), dtype=np.float64)
            self._samples.append((values, state.getTime().value_in_unit(unit.picosecond), state.getStepCount(), None))
        else:
            self._samples.append(state if self._keep_states else self._read(state))
        if simulation.currentStep % self.stride == 0:
            self._iterate(simulation)

    def _check_simulation(self, simulation) -> None:
        """Once, before anything is written: the force is in this Context, the temperatures agree."""
        from openmm import unit

        self.force.checkContext(simulation.context)  # added to the System before the Context was made
        self._periodic = simulation.system.usesPeriodicBoundaryConditions()
        if self._periodic:  # CVs with the minimum image; no distance range beyond half the box
            box = simulation.context.getState().getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
            self.cvs.check_box(torch.as_tensor(np.asarray(box), dtype=torch.float64))
        integrator = simulation.integrator
        if hasattr(integrator, "getTemperature"):
            t = integrator.getTemperature().value_in_unit(unit.kelvin)
            if abs(t - self.temperature) > 1e-6 * max(t, 1.0):
                raise ValueError(f"the updater's temperature ({self.temperature} K) differs from the integrator's "
                                 f"({t} K): Deep-VES needs the temperature the system is sampled at")
        if self._min_time is not None:  # a minimum time becomes iterations once the time step is known
            dt = integrator.getStepSize().value_in_unit(unit.picosecond)
            n = self._min_time.iterations_for(self.stride * dt)
            if self.optimizer.recrossing is not None:
                self.optimizer.recrossing.min_iterations = n
            else:
                self.optimizer.decay_after = n
        self._checked = True

    def _read(self, state):
        """(positions, nm; time, ps; step; box vectors, nm, or None) of a State, or a read sample as it is."""
        if isinstance(state, tuple):
            return state
        from openmm import unit

        box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer) if self._periodic else None
        return (state.getPositions(asNumpy=True).value_in_unit(unit.nanometer),
                state.getTime().value_in_unit(unit.picosecond), state.getStepCount(), box)

    # ----------------------------------------------------------------- one iteration
    def _iterate(self, simulation):
        """Finish the pending step, submit this iteration's, finish it now when synchronous or at a checkpoint."""
        self._simulation = simulation
        read = [self._read(r) for r in self._samples]
        self._samples = []
        if self._atoms is None:  # Force CVs: the values, (n, n_cvs)
            positions, boxes = np.stack([r[0] for r in read]), None
        else:
            positions = np.stack([r[0][self._atoms] for r in read])
            boxes = np.stack([r[3] for r in read]) if self._periodic else None
        times, steps = np.array([r[1] for r in read]), np.array([r[2] for r in read])
        applied = self._applied  # the steps whose weights were in force while these samples were drawn
        self._finish_pending()
        force_push = self._sync_point()
        learner = self._learner or self._start_learner()
        learner.submit(positions, times, steps, applied, force_push, boxes)
        if force_push or not self.asynchronous:
            self._finish_pending()

    def _start_learner(self):
        evaluator = SampleEvaluator(self.cvs, self._sub_cvs, copy.deepcopy(self.bias), need_v=self.out is not None,
                                    grid=self.grid is not None, frozen=self.optimizer.frozen, c=self.c)
        core = LearnerCore(self.optimizer, self.force.backend, evaluator, self.pushInterval)
        self._learner = make_learner(self.execution.mode, core, self.execution.learnerCPUs)
        return self._learner

    def _sync_point(self) -> bool:
        """The coming step writes a checkpoint: it runs synchronously and always pushes."""
        return (self.optimizer.iteration + 1) % self.checkpointInterval == 0 and self.out is not None

    def _finish_pending(self):
        if self._learner is not None and self._learner.pending:
            self._finish(self._learner.result())

    def _finish(self, result):
        import time

        simulation, stats, it = self._simulation, result.stats, result.iteration
        self._record(result.record, it)
        t0 = time.perf_counter()
        if result.payload is not None:
            self.force.applyWeights(result.payload, simulation)
        entry = dict(stats, time_ps=float(result.record.times[-1]), t_optimizer_ms=result.t_optimizer_ms,
                     t_prepare_ms=result.t_prepare_ms, t_push_ms=(time.perf_counter() - t0) * 1e3)
        self.c, self._applied = result.c_in_force, it
        self.history.append(entry)
        if self.out is not None:
            self._write_log(entry)
            just_frozen = stats["phase"] == "frozen" and self._last_phase != "frozen"
            fes = (it + 1) % self.fesInterval == 0 or just_frozen
            snapshot = self.snapshotInterval and (it + 1) % self.snapshotInterval == 0
            if fes or snapshot or (it + 1) % self.checkpointInterval == 0:
                self.flush()  # the learner is idle here: complete state for the files
            if fes:
                self.writeFes()
            if snapshot:
                self.force.exportBias(os.path.join(self.out, f"bias_{it + 1}.pt"))
            if (it + 1) % self.checkpointInterval == 0:
                self.saveCheckpoint(os.path.join(self.out, "checkpoint.pt"), simulation)
        self._last_phase = stats["phase"]

    def flush(self):
        """Finish a pending step (its samples are recorded, its weights pushed) and complete ``optimizer``.

        Called before FES, bias and checkpoint output and by the getters; call it yourself after
        ``simulation.step()`` before reading ``bias`` or ``optimizer`` directly.
        """
        self._finish_pending()
        if self._learner is not None:
            self._learner.sync()

    def close(self):
        """Finish a pending step, put the network in force and end the learner (a process exits); idempotent.

        With ``pushInterval > 1`` the Context then holds the network's latest weights, as after a
        checkpoint; a later ``step`` starts a new learner from there.
        """
        if self._learner is not None:
            self.flush()
            self._learner.close()
            self._learner = None
            if self.pushInterval > 1 and self._simulation is not None and self.history:
                self.force.updateWeights(self._simulation)
                c = self.history[-1]["c"]
                self.c = c if c == c else self.c  # NaN after a skipped step: keep the previous one

    def finish(self, simulation=None):
        """End the run: finish the pending step, write ``bias.pt`` and the FES files, a checkpoint at an
        iteration boundary, and end the learner. Use it (or ``with updater:``) after the last ``step``."""
        import warnings

        simulation = simulation or self._simulation
        self.flush()
        if self.out is not None:
            self.writeFes()
            if self._samples:
                warnings.warn(f"the run ended {len(self._samples) * self.sampleStride} steps into an iteration: "
                              "checkpoint.pt stays at the last iteration boundary", stacklevel=2)
            elif simulation is not None:
                self.saveCheckpoint(os.path.join(self.out, "checkpoint.pt"), simulation)
        self.close()

    def __enter__(self) -> "DeepVESUpdater":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.close()

    # ----------------------------------------------------------------- checkpoints
    def saveCheckpoint(self, path, simulation):
        """Atomically save the complete learning state and the OpenMM state (Context checkpoint)."""
        self._simulation = self._simulation or simulation
        self.flush()
        if self._samples:
            raise ValueError("checkpoints are taken at iteration boundaries (step count a multiple of stride)")
        state = {
            "config": self.config, "optimizer": self.optimizer.state_dict(), "c": self.c,
            "rw_logsum": self._rw_logsum, "rw_count": self._rw_count,
            "windowed": None if self._windowed is None else self._windowed.state_dict(),
            "history": self.history[-1000:],  # the full record is ves.log
            "context": simulation.context.createCheckpoint(), "torch_rng": torch.get_rng_state(),
        }

        def write(tmp):
            with open(tmp, "wb") as fh:
                torch.save(state, fh)

        atomic_write(path, write)

    def loadCheckpoint(self, path, simulation):
        """Restore learning state, OpenMM state and the live bias from :meth:`saveCheckpoint`.

        Raises ValueError, before changing anything, when the checkpoint was written by a run with other
        CVs, target, schedule (learning rate, τ, decay trigger), stride, temperature or network.
        """
        if not os.path.exists(path):
            raise ValueError(f"checkpoint {path!r} does not exist")
        state = torch.load(path, weights_only=True)  # plain data only: tensors, numbers, strings, bytes, containers
        if state.get("config") != self.config:
            old = state.get("config", {})
            diff = {k: (old.get(k), v) for k, v in self.config.items() if old.get(k) != v}
            raise ValueError(f"checkpoint {path!r} does not match this run (checkpoint, run): {diff}"
                             + _schedule_hint(old.get("schedule"), self.config["schedule"]))
        if self._learner is not None:  # restarted lazily from the restored state
            self._learner.close()
            self._learner = None
        self.optimizer.load_state_dict(state["optimizer"])
        self.c = state["c"]
        self._rw_logsum, self._rw_count = state["rw_logsum"], state["rw_count"]
        if self._windowed is not None:
            if state.get("windowed") is not None:
                self._windowed.load_state_dict(state["windowed"])
            else:  # a checkpoint of an earlier version: fes.dat covers the frames from this restart on
                import logging

                logging.getLogger(__name__).warning(
                    "checkpoint %s holds no windowed reweighting state: fes.dat covers the frames from here on", path)
        self.history = state["history"]
        torch.set_rng_state(state["torch_rng"])
        simulation.context.loadCheckpoint(state["context"])
        self._samples = []
        if self.out is not None:  # drop rows written after this checkpoint: they will be written again
            from openmm import unit

            t = simulation.context.getState().getTime().value_in_unit(unit.picosecond)
            self._truncate_outputs(t, self.optimizer.iteration)
        self.force.updateWeights(simulation)
        self._applied = self.optimizer.iteration - 1
        self._last_phase = self.optimizer.phase


def _schedule_hint(old, new) -> str:
    """A hint when two schedules differ in ``outputLearningRateScale`` only (absent = 1: checkpoints before the option)."""
    if not isinstance(old, dict):
        return ""
    a, b = dict(old), dict(new)
    sa, sb = a.pop("outputLearningRateScale", 1.0), b.pop("outputLearningRateScale", 1.0)
    if a != b or sa == sb:
        return ""
    return (f"; the checkpoint's run used outputLearningRateScale {sa:g}, this one {sb:g}: pass "
            f"outputLearningRateScale={sa:g} (CLI --output-learning-rate-scale {sa:g}; a recipe's 'paper' preset "
            "has 1) to continue it")
