"""What starts the decay phase of the Deep-VES learning-rate schedule, as objects.

* :class:`KLThreshold` — the paper's rule for few CVs: every iteration with D_KL < ε decays
  the learning rate (Eq. 12; ε = 0.5 for Ala2).
* :class:`Recrossings` — the paper's rule for many CVs: the decay starts once every monitored
  CV has made N transitions between given states (then every iteration decays).
* :class:`MinimumTime` — no decay before this simulated time (or number of iterations); the
  paper's tetrapeptide keeps the learning rate constant for 10 ns.

Combine them with ``&``: ``MinimumTime(10 * unit.nanosecond) & Recrossings([0, 2, 4], states, 4)``.
All parts must hold before the decay starts; with a :class:`KLThreshold` part an iteration then
decays only while D_KL < ε.

Examples
--------
>>> from openmm import unit
>>> rule = MinimumTime(10 * unit.nanosecond) & KLThreshold(0.5)
>>> [type(p).__name__ for p in rule.parts]
['MinimumTime', 'KLThreshold']
>>> rule.resolve(iteration_ps=1.0)["decayAfter"]
10000
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from .._units import strip_unit
from .monitors import RecrossingMonitor

__all__ = ["DecayTrigger", "KLThreshold", "Recrossings", "MinimumTime", "AllOf", "advance_schedule"]


def advance_schedule(schedule, kl: float, iteration: int, use_kl: bool, decay_after: int, recrossing) -> None:
    """One step of a :class:`~openmm_nnbias.ves.schedule.LearningRateSchedule` under resolved trigger settings.

    The decay may start once ``iteration >= decay_after`` and ``recrossing`` (if any) is satisfied;
    with ``use_kl`` an iteration then decays only while ``kl`` is below the schedule's threshold,
    without it every iteration decays.
    """
    gate = iteration >= decay_after and (recrossing is None or recrossing.satisfied)
    if use_kl:
        schedule.step(kl if gate or schedule.phase != "learning" else math.nan, iteration=iteration)
    else:
        if gate:
            schedule.start_decay(iteration)
        schedule.step(None, iteration=iteration)


class DecayTrigger:
    """Base of the decay triggers; ``a & b`` gives :class:`AllOf`."""

    @property
    def parts(self) -> list["DecayTrigger"]:
        return [self]

    def __and__(self, other: "DecayTrigger") -> "AllOf":
        return AllOf(self, other)

    def describe(self) -> list:
        """Plain description (part of a checkpoint's run configuration)."""
        return [[type(p).__name__, p._fields()] for p in self.parts]

    def _fields(self) -> dict:  # pragma: no cover - overridden
        return {}

    def __repr__(self) -> str:
        return " & ".join(f"{type(p).__name__}({p._fields()})" for p in self.parts)

    def __eq__(self, other) -> bool:
        return isinstance(other, DecayTrigger) and self.describe() == other.describe()

    def resolve(self, iteration_ps: float | None = None) -> dict[str, Any]:
        """Keyword arguments of :class:`~openmm_nnbias.ves.DeepVESOptimizer`: ``klThreshold``, ``useKL``,
        ``recrossing`` (a new :class:`~openmm_nnbias.ves.monitors.RecrossingMonitor`), ``decayAfter``.

        ``iteration_ps``: simulated time of one iteration (needed by a :class:`MinimumTime` given as a time).
        """
        kinds = [type(p) for p in self.parts]
        for kind in set(kinds):
            if kinds.count(kind) > 1:
                raise ValueError(f"a decay trigger may hold at most one {kind.__name__}")
        kl = next((p for p in self.parts if isinstance(p, KLThreshold)), None)
        rec = next((p for p in self.parts if isinstance(p, Recrossings)), None)
        tmin = next((p for p in self.parts if isinstance(p, MinimumTime)), None)
        after = 0 if tmin is None else tmin.iterations_for(iteration_ps)
        out = {"klThreshold": 0.5 if kl is None else kl.threshold, "useKL": kl is not None,
               "recrossing": None, "decayAfter": after}
        if rec is not None:  # the minimum time is the monitor's own (kept in its restart state)
            out["recrossing"] = RecrossingMonitor(rec.cvs, rec.states, rec.transitions, minIterations=after)
            out["decayAfter"] = 0
        return out


class KLThreshold(DecayTrigger):
    """Decay on every iteration whose running KL divergence is below ``threshold`` (ε > 0)."""

    def __init__(self, threshold: float = 0.5) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise TypeError(f"KLThreshold threshold must be a number, got {type(threshold).__name__}")
        if not (threshold > 0 and math.isfinite(threshold)):
            raise ValueError(f"KLThreshold threshold must be a finite number > 0, got {threshold}")
        self.threshold = float(threshold)

    def _fields(self) -> dict:
        return {"threshold": self.threshold}


class Recrossings(DecayTrigger):
    """Start the decay once each CV in ``cvs`` (column indices) made ``transitions`` transitions between ``states``.

    ``states``: at least two disjoint intervals ``(lo, hi)`` in CV units (rad, nm), used for every
    monitored CV; see :class:`~openmm_nnbias.ves.monitors.RecrossingMonitor`.
    """

    def __init__(self, cvs: Sequence[int], states: Sequence[Sequence[float]], transitions: int) -> None:
        if isinstance(transitions, bool) or not isinstance(transitions, int):
            raise TypeError(f"Recrossings transitions must be an int, got {type(transitions).__name__}")
        RecrossingMonitor(cvs, states, transitions)  # validates
        self.cvs = [int(i) for i in cvs]
        self.states = [(float(a), float(b)) for a, b in states]
        self.transitions = int(transitions)

    def _fields(self) -> dict:
        return {"cvs": self.cvs, "states": [list(s) for s in self.states], "transitions": self.transitions}


class MinimumTime(DecayTrigger):
    """No decay before ``time`` (Quantity, or ps) or before ``iterations`` iterations."""

    def __init__(self, time=None, *, iterations: int | None = None) -> None:
        if (time is None) == (iterations is None):
            raise ValueError("MinimumTime needs exactly one of time and iterations")
        if iterations is not None:
            if isinstance(iterations, bool) or not isinstance(iterations, int):
                raise TypeError(f"MinimumTime iterations must be an int, got {type(iterations).__name__}")
            if iterations < 0:
                raise ValueError(f"MinimumTime iterations must be >= 0, got {iterations}")
            self.time_ps, self.iterations = None, int(iterations)
        else:
            t = strip_unit(time, "picosecond")
            if not (t >= 0 and math.isfinite(t)):
                raise ValueError(f"MinimumTime time must be a finite time >= 0, got {time}")
            self.time_ps, self.iterations = t, None

    def iterations_for(self, iteration_ps: float | None) -> int:
        """Iterations before the decay may start, given the time of one iteration (ps)."""
        if self.iterations is not None:
            return self.iterations
        if not iteration_ps:
            raise ValueError("MinimumTime given as a time needs the time of an iteration (stride × time step)")
        return int(round(self.time_ps / iteration_ps))

    def _fields(self) -> dict:
        return {"time_ps": self.time_ps} if self.iterations is None else {"iterations": self.iterations}


class AllOf(DecayTrigger):
    """All of the given triggers (``a & b``)."""

    def __init__(self, *triggers: DecayTrigger) -> None:
        flat = []
        for t in triggers:
            if not isinstance(t, DecayTrigger):
                raise TypeError(f"decay triggers must be DecayTrigger objects, got {type(t).__name__}")
            flat.extend(t.parts)
        self._parts = flat

    @property
    def parts(self) -> list[DecayTrigger]:
        return list(self._parts)
