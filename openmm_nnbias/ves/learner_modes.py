"""The learner of each execution mode ("sync", "thread", "process"; :class:`~openmm_nnbias.ves.ExecutionOptions`).

Examples
--------
>>> from openmm_nnbias.ves.learner_modes import make_learner
>>> make_learner("fast", core=None)
Traceback (most recent call last):
...
ValueError: execution mode must be 'sync', 'thread' or 'process', got 'fast'
"""

from __future__ import annotations

from .learner import InlineLearner, Learner, LearnerCore, ThreadLearner
from .learner_process import ProcessLearner

__all__ = ["make_learner"]


def make_learner(mode: str, core: LearnerCore, cpus=None) -> Learner:
    """The learner of execution ``mode`` around ``core``: inline ("sync"), a worker thread ("thread") or a
    child process ("process", pinned to ``cpus`` when given)."""
    if mode == "sync":
        return InlineLearner(core)
    if mode == "thread":
        return ThreadLearner(core)
    if mode == "process":
        return ProcessLearner(core, cpus=cpus)
    raise ValueError(f"execution mode must be 'sync', 'thread' or 'process', got {mode!r}")
