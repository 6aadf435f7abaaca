"""Grouped options of :class:`~openmm_nnbias.ves.DeepVESUpdater`: schedule, outputs, execution.

Each group is a small validated object (wrong types raise TypeError, wrong values ValueError,
naming the option). Its fields are the option names used everywhere else: the keywords of
:class:`~openmm_nnbias.ves.DeepVESOptimizer` (``learningRate``, ``tauKL``, ``tauDecay``,
``freezeRatio``) and the input-file keys of the command line. ``DeepVESUpdater`` takes no flat
option keywords; :func:`grouped_options` builds the groups from a dict of such names.

Examples
--------
>>> ScheduleOptions(learningRate=1e-3, tauDecay=1000).tauDecay
1000.0
>>> ExecutionOptions(mode="process", pushInterval=16).pushInterval
16
>>> OutputOptions("run", checkpointInterval=50).folder
'run'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from .triggers import DecayTrigger, KLThreshold

__all__ = ["ScheduleOptions", "OutputOptions", "ExecutionOptions", "grouped_options", "step_count"]


def step_count(name: str, value, minimum: int = 1) -> int:
    """An integer number of MD steps or iterations: TypeError for floats and Quantities, ValueError below ``minimum``."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        hint = " (a Quantity of time is not a step count: divide it by the time step)" if hasattr(value, "unit") else ""
        raise TypeError(f"{name} must be an integer number of steps or iterations, got {value!r} "
                        f"({type(value).__name__}){hint}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _number(name: str, value, lo: float, hi: float = math.inf, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    ok = (value > lo if lo_open else value >= lo) and value < hi and math.isfinite(value)
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>' if lo_open else '>='} {lo}"
                         f"{'' if hi == math.inf else f' and < {hi}'}, got {value}")
    return float(value)


@dataclass
class ScheduleOptions:
    """Adam and the learning-rate schedule (times in iterations); defaults: the paper's Ala2 run.

    ``outputLearningRateScale``: the output layer's rate as a multiple of the schedule's (default 1,
    the paper; see :class:`~openmm_nnbias.ves.DeepVESOptimizer`). ``decay``: what starts the decay phase (:mod:`~openmm_nnbias.ves.triggers`), default
    ``KLThreshold(0.5)``.
    """

    learningRate: float = 1e-3
    outputLearningRateScale: float = 1.0
    tauKL: float = 10000
    tauDecay: float = 1000
    freezeRatio: float = 5e-5
    decay: DecayTrigger = field(default_factory=KLThreshold)

    def __post_init__(self) -> None:
        self.learningRate = _number("learningRate", self.learningRate, 0.0, lo_open=True)
        self.outputLearningRateScale = _number("outputLearningRateScale", self.outputLearningRateScale, 0.0,
                                               lo_open=True)
        self.tauKL = _number("tauKL", self.tauKL, 1.0)
        self.tauDecay = _number("tauDecay", self.tauDecay, 1.0)
        self.freezeRatio = _number("freezeRatio", self.freezeRatio, 0.0, 1.0, lo_open=True)
        if not isinstance(self.decay, DecayTrigger):
            raise TypeError(f"decay must be a DecayTrigger (KLThreshold, Recrossings, MinimumTime), "
                            f"got {type(self.decay).__name__}")

    def describe(self) -> dict[str, Any]:
        out = {"learningRate": self.learningRate, "tauKL": self.tauKL, "tauDecay": self.tauDecay,
               "freezeRatio": self.freezeRatio, "decay": self.decay.describe()}
        if self.outputLearningRateScale != 1.0:  # absent at 1: checkpoints made before the option still match
            out["outputLearningRateScale"] = self.outputLearningRateScale
        return out


@dataclass
class OutputOptions:
    """Files of a run: ``folder`` (None: write nothing) and their intervals (iterations; ``colvarStride`` in MD steps)."""

    folder: str | None = None
    fesInterval: int = 100
    checkpointInterval: int = 100
    snapshotInterval: int = 0
    colvarStride: int | None = None

    def __post_init__(self) -> None:
        import os

        if self.folder is not None and not isinstance(self.folder, (str, os.PathLike)):
            raise TypeError(f"folder must be a path or None, got {type(self.folder).__name__}")
        self.folder = None if self.folder is None else os.fspath(self.folder)
        self.fesInterval = step_count("fesInterval", self.fesInterval)
        self.checkpointInterval = step_count("checkpointInterval", self.checkpointInterval)
        self.snapshotInterval = step_count("snapshotInterval", self.snapshotInterval, minimum=0)
        if self.colvarStride is not None:
            self.colvarStride = step_count("colvarStride", self.colvarStride)


_MODES = ("sync", "thread", "process")


@dataclass
class ExecutionOptions:
    """Where and when learning runs.

    ``mode``: "sync" (the paper's scheme: learn, then MD goes on), "thread" or "process" (the step of
    iteration k overlaps the MD of iteration k+1). ``pushInterval``: iterations between pushes of the
    network into the Context. ``device``: of the optimizer (default cuda when torch sees a GPU).
    ``precision``: "mixed" or "double". ``learnerCPUs``: pin a "process" learner to these CPUs.
    """

    mode: str = "sync"
    pushInterval: int = 1
    device: str | None = None
    precision: str = "mixed"
    learnerCPUs: list[int] | None = None

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {self.mode!r}")
        self.pushInterval = step_count("pushInterval", self.pushInterval)
        if self.precision not in ("mixed", "double"):
            raise ValueError(f"precision must be 'mixed' or 'double', got {self.precision!r}")
        if self.learnerCPUs is not None:
            from .learner import validate_cpus

            self.learnerCPUs = validate_cpus(self.learnerCPUs)
            if self.mode != "process":
                raise ValueError("learnerCPUs applies to the 'process' execution mode only")


def grouped_options(flat: dict[str, Any], *, folder: str | None = None, decay: DecayTrigger | None = None,
                    mode: str = "sync") -> tuple[ScheduleOptions, OutputOptions, ExecutionOptions]:
    """The three option groups from flat keywords named like their fields.

    Removes from ``flat`` each key that is a field of one of the groups (``folder``, ``decay`` and
    ``mode`` come as arguments); a key whose value is None keeps the group's default. What is left
    in ``flat`` is not an option of any group.

    Examples
    --------
    >>> flat = {"learningRate": 1e-4, "fesInterval": 10, "device": None, "hidden": [8]}
    >>> schedule, outputs, execution = grouped_options(flat, mode="thread")
    >>> schedule.learningRate, outputs.fesInterval, execution.mode, flat
    (0.0001, 10, 'thread', {'hidden': [8]})
    """
    own = {"folder", "decay", "mode"}
    made = []
    for group, extra in ((ScheduleOptions, {} if decay is None else {"decay": decay}),
                         (OutputOptions, {"folder": folder}), (ExecutionOptions, {"mode": mode})):
        names = [f.name for f in fields(group) if f.name not in own]
        taken = {n: flat.pop(n) for n in names if n in flat}
        made.append(group(**extra, **{n: v for n, v in taken.items() if v is not None}))
    return tuple(made)
