"""The Deep-VES learner: one interface, three execution modes.

A learner takes the raw positions of the CV atoms recorded during one iteration and returns an
:class:`IterationResult`: the checked samples with V and c(t) of the bias that was in force while
they were drawn (:class:`~openmm_nnbias.ves.samples.SampleRecord`), the optimizer step's
statistics and, when the new weights are to be pushed, the force payload. :class:`LearnerCore`
does that work; the modes only differ in where it runs:

* :class:`InlineLearner` — at once, on the MD thread (the paper's synchronous scheme);
* :class:`ThreadLearner` — in a worker thread while the MD of the next iteration proceeds;
* :class:`~openmm_nnbias.ves.learner_process.ProcessLearner` — in a child process (no GIL).

Because the core evaluates every iteration's samples with its own copy of the bias in force
(advanced to the steps the MD side had applied when the samples were drawn), the three modes write
the same numbers whenever their pushes coincide. The updater's iteration is the same in every mode:
finish the pending step, submit this one, finish it now when synchronous or at a checkpoint.

Examples
--------
>>> learner = ThreadLearner(LearnerCore(optimizer, force.backend, evaluator, 1))  # doctest: +SKIP
>>> learner.submit(positions, times, steps, applied=-1, force_push=False)   # doctest: +SKIP
>>> result = learner.result()                                # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from .samples import SampleEvaluator, SampleRecord

__all__ = ["IterationResult", "LearnerCore", "Learner", "InlineLearner", "ThreadLearner",
           "validate_cpus"]


@dataclass
class IterationResult:
    """What one learner step returns to the updater.

    Attributes
    ----------
    stats : dict
        :meth:`DeepVESOptimizer.step` statistics (``iteration``, ``kl``, ``lr``, ``c``, ``phase``, …).
    record : SampleRecord
        The iteration's samples, V and c(t) of the bias in force while they were drawn.
    payload : object or None
        Force data of the new weights (``ForceBackend.prepare``); None when nothing is pushed.
    c_in_force : float
        c(t) of the bias in force once this step is applied (kJ/mol).
    t_optimizer_ms, t_prepare_ms : float
        Time of the optimizer step and of the tabulation of the new bias.
    """

    stats: dict
    record: SampleRecord
    payload: Any
    c_in_force: float
    t_optimizer_ms: float
    t_prepare_ms: float

    @property
    def iteration(self) -> int:
        return int(self.stats["iteration"])


class LearnerCore:
    """Evaluate an iteration's samples with the bias in force, take the optimizer step, prepare a push.

    Parameters
    ----------
    optimizer : DeepVESOptimizer
        Updated in place.
    backend : ForceBackend
        Its ``prepare()`` tabulates the new network (``backend.preparer()`` in a child process).
    evaluator : SampleEvaluator
        With its own copy of the network, in force at creation.
    push_interval : int
        Push every ``push_interval``-th iteration (and at ``force_push`` and at the freeze).
    """

    def __init__(self, optimizer, backend, evaluator: SampleEvaluator, push_interval: int) -> None:
        self.optimizer, self.backend, self.evaluator = optimizer, backend, evaluator
        self.push_interval = int(push_interval)
        self.dirty = False  # the network holds updates not pushed yet
        self.c_in_force = evaluator.c

    def run(self, positions, times, steps, applied: int, force_push: bool, boxes=None) -> IterationResult:
        """One iteration: ``applied`` is the last step whose weights were in force while the samples were drawn.

        ``positions`` ``(n, n_atoms_sub, 3)`` nm, ``times`` (ps) and ``steps`` of the samples, their
        periodic ``boxes`` ``(n, 3, 3)`` nm or None.
        """
        ev = self.evaluator
        ev.advance(applied)
        record = ev(positions, times, steps, boxes)
        t0 = time.perf_counter()
        stats = self.optimizer.step(record.s)
        t1 = time.perf_counter()
        self.dirty = self.dirty or stats["updated"]
        it = stats["iteration"]
        push = self.dirty and (force_push or (it + 1) % self.push_interval == 0 or stats["phase"] == "frozen")
        payload = self.backend.prepare() if push else None
        t2 = time.perf_counter()
        if push or not self.dirty:  # the Context then holds the network this c(t) belongs to
            ev.stage(it, self.optimizer.bias.parameters() if push else None, self.optimizer.frozen, stats["c"])
            if stats["c"] == stats["c"]:  # not NaN
                self.c_in_force = float(stats["c"])
            self.dirty = False
        return IterationResult(stats, record, payload, self.c_in_force, (t1 - t0) * 1e3, (t2 - t1) * 1e3)


class Learner:
    """Interface of the three execution modes (see the module docstring).

    ``submit`` starts a step, ``result`` waits for it; ``pending`` tells whether one is running;
    ``sync`` makes the updater's ``optimizer`` complete (a no-op where it is the learner's own);
    ``close`` ends what the learner started (idempotent).
    """

    mode = "?"

    def __init__(self, core: LearnerCore) -> None:
        self.core = core
        self._pending = None

    @property
    def pending(self) -> bool:
        return self._pending is not None

    def submit(self, positions, times, steps, applied: int, force_push: bool,
               boxes=None) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def result(self) -> IterationResult:  # pragma: no cover - interface
        raise NotImplementedError

    def sync(self) -> None:
        """The updater's optimizer is the learner's: nothing to copy."""

    def close(self) -> None:
        """Wait for a pending step (its result is dropped) and release resources."""
        if self._pending is not None:
            try:
                self.result()
            except Exception:  # pragma: no cover - closing after a failed step
                self._pending = None

    def _check_idle(self) -> None:
        if self._pending is not None:
            raise RuntimeError("the learner is still busy with the previous step; call result() first")


class InlineLearner(Learner):
    """Synchronous: the step runs in :meth:`submit` (errors are raised there)."""

    mode = "sync"

    def submit(self, positions, times, steps, applied: int, force_push: bool, boxes=None) -> None:
        self._check_idle()
        self._pending = self.core.run(positions, times, steps, applied, force_push, boxes)

    def result(self) -> IterationResult:
        result, self._pending = self._pending, None
        return result


class ThreadLearner(Learner):
    """The step runs in one worker thread (shares the GIL with the MD loop)."""

    mode = "thread"

    def __init__(self, core: LearnerCore) -> None:
        from concurrent.futures import ThreadPoolExecutor

        super().__init__(core)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepves")

    def submit(self, positions, times, steps, applied: int, force_push: bool, boxes=None) -> None:
        self._check_idle()
        self._pending = self._executor.submit(self.core.run, positions, times, steps, applied, force_push, boxes)

    def result(self) -> IterationResult:
        future, self._pending = self._pending, None
        return future.result()

    def close(self) -> None:
        super().close()
        self._executor.shutdown(wait=True)


def validate_cpus(cpus) -> list[int] | None:
    """Sorted CPU ids for a learner's affinity, or None; ValueError unless a non-empty subset of this machine's CPUs."""
    if cpus is None:
        return None
    try:
        ids = sorted({int(c) for c in cpus})
    except (TypeError, ValueError):
        raise ValueError(f"learner CPUs must be a sequence of CPU ids, got {cpus!r}") from None
    known = list(range(os.cpu_count() or 1))
    if not ids or any(c not in known for c in ids):
        raise ValueError(f"learner CPUs must be a non-empty subset of this machine's CPUs {known}, got {ids}")
    return ids

