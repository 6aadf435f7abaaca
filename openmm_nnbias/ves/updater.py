"""DeepVESUpdater: an OpenMM reporter that learns a Deep-VES bias on the fly."""

import copy
import os
import time

import numpy as np
import torch

from .._io import atomic_write
from .._units import strip_unit
from .grid import CVGrid
from .learner import ProcessLearner, learn_step, validate_cpus
from .montecarlo import MonteCarloTarget
from .outputs import UpdaterFiles, positions_nm
from .optimizer import DeepVESOptimizer
from .reweight import accumulate_log_weights
from .samples import SampleEvaluator

__all__ = ["DeepVESUpdater"]

KB = 0.008314462618  # kJ/mol/K


class DeepVESUpdater(UpdaterFiles):
    """OpenMM reporter running Deep-VES (Bonati, Zhang, Parrinello 2019) during ``simulation.step``.

    Every ``sampleStride`` MD steps it records the CVs; every ``stride`` steps (one iteration) it
    takes one Adam step on Ω (Eq. 10) with a well-tempered target on a grid, pushes the new
    weights into the running Context through the :class:`~openmm_nnbias.bias.NeuralBiasForce`,
    and writes its files. Once the KL-gated schedule freezes the bias, it accumulates the
    reweighted FES (Eq. 11).

    Parameters
    ----------
    biasForce : NeuralBiasForce
        The bias force, already added to the simulation's System.
    temperature : Quantity or float
        Temperature (K).
    biasFactor : float
        Well-tempered bias factor γ (> 1); ``None`` for a uniform target.
    stride : int
        MD steps per optimization iteration (paper: 500).
    sampleStride : int
        MD steps between CV samples (``stride`` must be a multiple of it).
    gridBins : int or sequence of int
        Target/KL grid bins per CV (paper: 50).
    learningRate, tauKL, klThreshold, tauDecay, freezeRatio :
        Optimizer and schedule (tau in iterations); defaults as in the paper's Ala2 run.
    out : str, optional
        Output folder for ``colvar``, ``ves.log``, ``fes_bias.dat``, ``fes_bias_avg.dat`` (decay-phase
        average, from the decay on), ``fes_reweighted.dat``,
        ``bias.pt``, ``checkpoint.pt``. ``None``: write nothing.
    fesInterval, checkpointInterval, snapshotInterval : int
        In iterations (0 disables snapshots of ``bias_<iteration>.pt``).
    device : str, optional
        Where the optimization runs (default ``"cuda"`` when torch sees a GPU, else ``"cpu"``).
    asynchronous : bool or {"thread", "process"}
        Overlap learning with MD: the optimizer step of iteration k (and the tabulation of the new
        bias) runs while the MD of iteration k+1 proceeds, and its weights are pushed at the end of
        that block. The bias in force therefore lags the network by one iteration (samples of
        iteration k+1 come from the weights of iteration k); the results are deterministic and
        restarts exact (checkpoint iterations are synchronous). ``True``/``"thread"``: in a worker
        thread (shares the GIL with the MD loop); ``"process"``: in a child process
        (:class:`~openmm_nnbias.ves.learner.ProcessLearner`, no GIL contention, same numbers as
        the thread; the MD thread ships raw positions and the learner computes and checks the CVs,
        so a CV outside its range raises one iteration later; call :meth:`close` at the end).
        An iteration's colvar rows and reweighting samples are recorded when its step finishes
        (:meth:`flush`, :meth:`close` and the getters finish a pending step). Both use a second CPU core (or the GPU).
        Default False: the paper's synchronous scheme.
    pushInterval : int
        Iterations between pushes of the network into the Context (default 1, the paper's scheme;
        the optimizer still steps every iteration). A table push costs ~10 ms (OpenMM recompiles the
        force): k trades a bias lag of k iterations for speed. Checkpoints and the freeze always push.
    reducer : WalkerGroup, optional
        Passed to :class:`DeepVESOptimizer` (multiple walkers; use :class:`WalkerDeepVESUpdater`).
    targetSampling : {"auto", "grid", "mc"}
        Target average over a grid, or over Monte Carlo samples (:class:`MonteCarloTarget`, no grid;
        KL = max over 1-D marginals with ``gridBins[0]`` bins; no FES files and no reweighting
        accumulation: reweight ``colvar`` offline). "auto": "mc" for more than 3 CVs.
    monteCarlo : dict, optional
        Keyword arguments of :class:`MonteCarloTarget` (``n_chains``, ``n_steps``, ``step_size``, ``seed``).
    recrossing : RecrossingMonitor, optional
        Decay phase after repeated transitions instead of the KL threshold (see DeepVESOptimizer).
    learnerCPUs : sequence of int, optional
        ``asynchronous="process"``: pin the learner process to these CPUs (e.g. ``[1]`` with the MD
        process started under ``taskset -c 0``); default: inherit the MD process's affinity.
    precision : {"mixed", "double"}
        Network passes of the optimizer in float32 with float64 weights, Adam and target ("mixed",
        default: ~2x cheaper learning on a CPU, far below the gradient's noise), or all float64.

    Examples
    --------
    >>> sim.reporters.append(DeepVESUpdater(nnforce, 300 * unit.kelvin, out="run"))  # doctest: +SKIP
    >>> sim.step(500_000)                                                             # doctest: +SKIP
    """

    def __init__(self, biasForce, temperature, biasFactor=10.0, stride: int = 500, sampleStride: int = 1,
                 gridBins=50, learningRate: float = 1e-3, tauKL: float = 10000, klThreshold: float = 0.5,
                 tauDecay: float = 1000, freezeRatio: float = 5e-5, out: str = None, fesInterval: int = 100,
                 checkpointInterval: int = 100, snapshotInterval: int = 0, colvarStride: int = None,
                 device: str = None, asynchronous: bool = False, pushInterval: int = 1, reducer=None, targetSampling: str = "auto",
                 monteCarlo: dict = None, recrossing=None, precision: str = "mixed", learnerCPUs=None):
        self.temperature = strip_unit(temperature, "kelvin")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 K, got {self.temperature}")
        stride, sampleStride = int(stride), int(sampleStride)
        if sampleStride < 1 or stride < 1 or stride % sampleStride:
            raise ValueError(f"stride ({stride}) must be a positive multiple of sampleStride ({sampleStride})")
        colvarStride = sampleStride if colvarStride is None else int(colvarStride)
        if colvarStride < sampleStride or colvarStride % sampleStride:
            raise ValueError(f"colvarStride ({colvarStride}) must be a multiple of sampleStride ({sampleStride})")
        self.force = biasForce
        self.cvs = biasForce.cvs
        self.bias = biasForce.bias
        self.kT = KB * self.temperature
        self.stride, self.sampleStride, self.colvarStride = stride, sampleStride, colvarStride
        self.fesInterval, self.checkpointInterval = int(fesInterval), int(checkpointInterval)
        self.snapshotInterval = int(snapshotInterval)
        self.out = out
        self._outputs_ready = True  # no files (out=None); _prepare_out defers their set-up to the first report
        if out is not None:
            self._prepare_out(out)
        n = self.cvs.n_cvs
        bins = [int(gridBins)] * n if np.isscalar(gridBins) else [int(b) for b in gridBins]
        if targetSampling not in ("auto", "grid", "mc"):
            raise ValueError(f"targetSampling must be 'auto', 'grid' or 'mc', got {targetSampling!r}")
        gridless = targetSampling == "mc" or (targetSampling == "auto" and n > 3)
        self.grid = None if gridless else CVGrid(self.cvs.lower, self.cvs.upper, bins, self.cvs.periodic)
        if monteCarlo is not None:
            import inspect

            known = set(inspect.signature(MonteCarloTarget).parameters) - {"lower", "upper", "periodic", "kT",
                                                                          "bias_factor"}
            unknown = sorted(set(monteCarlo) - known)
            if unknown:
                raise ValueError(f"unknown monteCarlo option(s) {unknown}; known: {sorted(known)}")
        sampler = None if not gridless else MonteCarloTarget(
            self.cvs.lower, self.cvs.upper, self.cvs.periodic, self.kT,
            None if biasFactor is None else float(biasFactor), **(monteCarlo or {}))
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.config = dict(cvs=list(self.cvs.names), bins=bins, temperature=self.temperature,
                           biasFactor=biasFactor, stride=stride, sampleStride=sampleStride,
                           network=dict(hidden=list(self.bias.hidden), activation=self.bias.activation))
        if gridless:
            self.config["targetSampling"] = "mc"
        self.optimizer = DeepVESOptimizer(
            self.bias, self.grid, self.kT, target="uniform" if biasFactor is None else "well-tempered",
            bias_factor=10.0 if biasFactor is None else float(biasFactor), lr=learningRate,
            tau_kl=tauKL, kl_threshold=klThreshold, tau_decay=tauDecay, freeze_ratio=freezeRatio,
            device=device, reducer=reducer, target_sampler=sampler, marginal_bins=bins[0], recrossing=recrossing,
            compute_dtype=precision)
        # atoms the CVs need, and a copy of the CV set indexing into that subset
        atoms = sorted({a for g in self.cvs.groups for a in g.atoms.reshape(-1).tolist()})
        lookup = torch.full((max(atoms) + 1,), -1, dtype=torch.long)
        lookup[atoms] = torch.arange(len(atoms))
        self._atoms = np.array(atoms)
        self._sub_cvs = copy.deepcopy(self.cvs)
        for g in self._sub_cvs.groups:
            g.atoms = lookup[g.atoms]
        self._positions, self._keep_states = [], None  # per sample: a State, or (positions, time)
        self.c = 0.0
        self.history = []
        self._rw_logsum = None  # per-bin log Σ exp(βV) after freezing
        self._rw_count = 0
        if asynchronous not in (False, True, None, "thread", "process"):
            raise ValueError(f"asynchronous must be False, True/'thread' or 'process', got {asynchronous!r}")
        self._async_mode = {False: None, None: None, True: "thread"}.get(asynchronous, asynchronous)
        if self._async_mode == "process" and reducer is not None:
            raise ValueError("asynchronous='process' cannot be combined with multiple walkers; use 'thread'")
        self.asynchronous = self._async_mode is not None
        self._learner, self._synced = None, True
        self.pushInterval = int(pushInterval)
        self.learnerCPUs = validate_cpus(learnerCPUs)
        if self.learnerCPUs is not None and self._async_mode != "process":
            raise ValueError("learnerCPUs applies to asynchronous='process' only")
        if self.pushInterval < 1:
            raise ValueError(f"pushInterval must be >= 1 (iterations), got {pushInterval}")
        self._executor, self._pending, self._simulation = None, None, None
        self._force_bias = copy.deepcopy(self.bias) if self.asynchronous else None  # weights in force
        self._in_force_frozen = self.optimizer.frozen
        self._finished_it = self.optimizer.iteration - 1  # last optimizer step whose weights were pushed
        self._last_phase = self.optimizer.phase

    # ----------------------------------------------------------------- reporter protocol
    def describeNextReport(self, simulation):
        steps = self.sampleStride - simulation.currentStep % self.sampleStride
        return {"steps": steps, "periodic": False, "include": ["positions"]}

    def report(self, simulation, state):
        if not self._outputs_ready:  # first report of a fresh run: back up a previous run's files
            self._ensure_outputs()
        if self._keep_states is None:  # small systems (≤ ~2.4 MB per iteration): read the States at the
            # iteration's end, all at once — right after integrator.step every read is slow (RESULTS.md)
            self._keep_states = simulation.system.getNumParticles() * (self.stride // self.sampleStride) <= 100_000
        self._positions.append(state if self._keep_states else self._sample(state))
        if simulation.currentStep % self.stride == 0:
            self._iterate(simulation)

    def _sample(self, r):
        """(positions of the CV atoms, nm; time, ps) of a State, or an already read sample as it is."""
        return r if isinstance(r, tuple) else (positions_nm(r)[self._atoms], r.getTime()._value)

    # ----------------------------------------------------------------- one iteration
    def _iterate(self, simulation):
        self._simulation = simulation
        read = [self._sample(r) for r in self._positions]
        x = np.stack([r[0] for r in read])
        times = np.array([r[1] for r in read])
        self._positions = []
        if self._async_mode == "process":  # CVs, checks and the step run in the learner process, also once frozen
            finished = self._finished_it  # the bias these samples were drawn with: steps finished before now
            self._wait_pending()  # the previous iteration's step: push its weights, record its samples
            sync_point = self._sync_point()
            if self._learner is None:
                self._learner = ProcessLearner(self.optimizer, self.force.backend, cpus=self.learnerCPUs,
                                               evaluator=self._evaluator().for_learner(self._force_bias))
            self._learner.submit_positions(x, times, finished, sync_point, self.pushInterval)
            self._pending, self._synced = (self._learner, times, None), False
            if sync_point:
                self._wait_pending()
            return
        ev = self._evaluator()  # V with the bias in force while these samples were drawn
        record = ev(x, times)
        self._wait_pending()  # async: finish the previous iteration's step and push its weights
        s, sync_point = record["s"], self._sync_point()
        if self.asynchronous and not sync_point and not self.optimizer.frozen:
            if self._executor is None:
                from concurrent.futures import ThreadPoolExecutor

                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepves")
            self._pending = (self._executor.submit(self._learn, s, False), times, record)
        else:
            self._finish(*self._learn(s, sync_point), times, record)

    def _sync_point(self) -> bool:
        """The coming step writes a checkpoint: it runs synchronously and always pushes."""
        return (self.optimizer.iteration + 1) % self.checkpointInterval == 0 and self.out is not None

    def _evaluator(self) -> SampleEvaluator:
        """Evaluator of this iteration's samples with the state of the bias now in force (made once)."""
        if getattr(self, "_sample_evaluator", None) is None:
            net = self._force_bias if self.asynchronous else self.bias
            self._sample_evaluator = SampleEvaluator(self.cvs, self._sub_cvs, net, need_v=self.out is not None,
                                                     grid=self.grid is not None)
        ev = self._sample_evaluator
        ev.frozen, ev.c = self._in_force_frozen, self.c
        return ev

    def _record(self, record, times):
        """Colvar rows and reweighting of one iteration's samples (written when its step finishes)."""
        s, v = record["s"], record["v"]
        if record["reweight"]:
            self._rw_logsum = accumulate_log_weights(self._rw_logsum, self.grid.index(s.to(self.grid.device)).cpu(),
                                                     v / self.kT, self.grid.n_points)
            self._rw_count += len(v)
        if self.out is not None:
            self._write_colvar(s, v, record["c"], times)

    def _learn(self, s, force_push):
        """Optimizer step and force data for the new weights (may run in the worker thread)."""
        return learn_step(self.optimizer, self.force.backend, s, force_push, self.pushInterval)

    def _wait_pending(self):
        if self._pending is None:
            return
        future, times, record = self._pending
        self._pending = None
        result = future.result()  # (stats, payload) of a thread, (stats, payload, record) of the learner process
        self._finish(result[0], result[1], times, result[2] if len(result) > 2 else record)

    def flush(self):
        """Wait for a pending asynchronous optimizer step and push its weights (no-op otherwise).

        Called automatically before FES, bias and checkpoint output; call it yourself after
        ``simulation.step()`` before reading ``bias`` or ``optimizer`` directly. With
        ``asynchronous="process"`` it also copies the learner's complete state into ``optimizer``.
        """
        self._wait_pending()
        if self._learner is not None and not self._synced:
            self._learner.sync()
            self._synced = True

    def close(self):
        """End the learner process of ``asynchronous="process"`` after a last :meth:`flush` (idempotent)."""
        if self._learner is not None:
            self.flush()
            self._learner.close()
            self._learner = None

    def _finish(self, stats, payload, times, record):
        simulation = self._simulation
        self._record(record, times)
        t0 = time.perf_counter()
        if payload is not None:
            self.force.applyWeights(payload, simulation)
            if self.asynchronous:  # the weights now in force (parameters only: buffers never change)
                with torch.no_grad():
                    for dst, src in zip(self._force_bias.parameters(), self.bias.parameters()):
                        dst.copy_(src)
        stats["t_push_ms"] = (time.perf_counter() - t0) * 1e3
        self.c = stats["c"]
        self._in_force_frozen = self.optimizer.frozen
        stats["time_ps"] = float(times[-1])
        self._finished_it = stats["iteration"]
        self.history.append(stats)
        if self.out is not None:
            self._write_log(stats)
            it = stats["iteration"]
            just_frozen = stats["phase"] == "frozen" and self._last_phase != "frozen"
            if self._learner is not None and ((it + 1) % self.fesInterval == 0 or just_frozen
                                              or (it + 1) % self.checkpointInterval == 0):
                self.flush()  # the learner is idle here: complete state for the files
            if (it + 1) % self.fesInterval == 0 or just_frozen:
                self.writeFes()
            if self.snapshotInterval and (it + 1) % self.snapshotInterval == 0:
                self.force.exportBias(os.path.join(self.out, f"bias_{it + 1}.pt"))
            if (it + 1) % self.checkpointInterval == 0:
                self.saveCheckpoint(os.path.join(self.out, "checkpoint.pt"), simulation)
        self._last_phase = stats["phase"]

    # ----------------------------------------------------------------- results
    def getFreeEnergyFromBias(self) -> np.ndarray:
        """F(s) = −V − kT ln p on the grid (Eq. 4), kJ/mol, min 0, shape ``grid.shape``."""
        self.flush()
        return self.optimizer.fes_from_bias().reshape(self.grid.shape).cpu().numpy()

    def getAveragedFreeEnergyFromBias(self):
        """Eq. 4 averaged uniformly over the decay phase (kJ/mol, min 0); None before the decay.

        Less noisy than :meth:`getFreeEnergyFromBias` at the freeze, see :mod:`~openmm_nnbias.ves.averaging`.
        """
        self.flush()
        f = self.optimizer.averaged_fes_from_bias()
        return None if f is None else f.reshape(self.grid.shape).numpy()

    def getReweightedFreeEnergy(self):
        """Reweighted F(s) from frames sampled with the frozen bias (Eq. 11); None before."""
        self._wait_pending()  # the samples of a pending asynchronous step are recorded when it finishes
        if self._rw_logsum is None:
            return None
        f = -self.kT * self._rw_logsum
        return (f - f[torch.isfinite(f)].min()).reshape(self.grid.shape).numpy()

    def gridAxes(self):
        return [torch.unique(self.grid.points[:, j].cpu()).numpy() for j in range(self.grid.n_cv)]

    # ----------------------------------------------------------------- checkpoints
    def saveCheckpoint(self, path, simulation):
        """Atomically save the complete learning state and the OpenMM state (Context checkpoint)."""
        self._simulation = self._simulation or simulation
        self.flush()
        if self._positions:
            raise ValueError("checkpoints are taken at iteration boundaries (step count a multiple of stride)")
        state = {
            "config": self.config, "optimizer": self.optimizer.state_dict(), "c": self.c,
            "rw_logsum": self._rw_logsum, "rw_count": self._rw_count,
            "history": self.history[-1000:],  # the full record is ves.log
            "context": simulation.context.createCheckpoint(), "torch_rng": torch.get_rng_state(),
        }
        def write(tmp):
            with open(tmp, "wb") as fh:
                torch.save(state, fh)

        atomic_write(path, write)

    def loadCheckpoint(self, path, simulation):
        """Restore learning state, OpenMM state and the live bias from :meth:`saveCheckpoint`."""
        if not os.path.exists(path):
            raise ValueError(f"checkpoint {path!r} does not exist")
        state = torch.load(path, weights_only=False)
        if self._pending is not None:  # let a running step finish before its state is overwritten
            self._pending[0].result()
            self._pending = None
        if self._learner is not None:  # restarted lazily from the restored state
            self._learner.close()
            self._learner, self._synced = None, True
        if state.get("config") != self.config:
            diff = {k: (state.get("config", {}).get(k), v) for k, v in self.config.items()
                    if state.get("config", {}).get(k) != v}
            raise ValueError(f"checkpoint {path!r} does not match this run (checkpoint, run): {diff}")
        self.optimizer.load_state_dict(state["optimizer"])
        self.c = state["c"]
        self._rw_logsum, self._rw_count = state["rw_logsum"], state["rw_count"]
        self.history = state["history"]
        torch.set_rng_state(state["torch_rng"])
        simulation.context.loadCheckpoint(state["context"])
        self._positions = []
        if self.out is not None:  # drop rows written after this checkpoint: they will be written again
            self._truncate_outputs(simulation.context.getState().getTime()._value, self.optimizer.iteration)
        self.force.updateWeights(simulation)
        if self._force_bias is not None:
            self._force_bias.load_state_dict(self.bias.state_dict())
        self._in_force_frozen = self.optimizer.frozen
        self._finished_it = self.optimizer.iteration - 1
        self._last_phase = self.optimizer.phase
