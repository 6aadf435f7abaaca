"""Training stages of a DiffSim run (temperature and learning-rate schedule) and crossing evaluations.

Šípka et al. (2023, section 4.2) train the azobenzene bias in two stages: 300 K with a
relatively high learning rate (to get the barrier roughly), then 1 000 K with a much lower
one (refinement). The paper gives no numbers for the rates. A :class:`StageSchedule` is that
schedule as one object: a list of :class:`TrainingStage` ``(temperature, lr, epochs)``,
written on the command line as ``--stages 300:1e-2:4,1000:1e-3:2`` (K : Adam rate : epochs).

The stage of an epoch follows from the trainer's epoch counter alone, so a checkpoint
restart continues across a stage boundary without extra state: :func:`apply_stage` is
called before every epoch and sets the simulator's temperature and the optimizer's rate.

:func:`crossing_run` is the forward-only evaluation (no adjoint) behind the success
fractions "unbiased / after stage k": replicas from fixed start states, first step inside
the product well, and the CV frames for a log-density plot.

Units: K, ps, nm, kJ/mol.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import List, Sequence

import torch

__all__ = ["TrainingStage", "StageSchedule", "apply_stage", "crossing_run"]


@dataclass(frozen=True)
class TrainingStage:
    """One stage: ``epochs`` epochs at ``temperature`` (K) with Adam learning rate ``lr``."""

    temperature: float
    lr: float
    epochs: int

    def __post_init__(self):
        for name in ("temperature", "lr"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise TypeError(f"{name} must be a number, got {type(v).__name__}")
            if not (math.isfinite(float(v)) and float(v) > 0):
                raise ValueError(f"{name} must be positive and finite, got {v!r}")
        if not isinstance(self.epochs, int) or isinstance(self.epochs, bool):
            raise TypeError(f"epochs must be an int, got {type(self.epochs).__name__}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")

    def to_dict(self) -> dict:
        return asdict(self)


class StageSchedule:
    """An ordered list of :class:`TrainingStage`.

    Parameters
    ----------
    stages : sequence of TrainingStage
        At least one.

    Examples
    --------
    >>> s = StageSchedule.parse("300:1e-2:4,1000:1e-3:2")
    >>> s.total_epochs, s.stage_index(3), s.stage_index(4), s.boundaries
    (6, 0, 1, [0, 4, 6])
    >>> str(s)
    '300:0.01:4,1000:0.001:2'
    """

    def __init__(self, stages: Sequence[TrainingStage]):
        stages = list(stages)
        if not stages:
            raise ValueError("stages must hold at least one TrainingStage")
        if not all(isinstance(s, TrainingStage) for s in stages):
            raise TypeError("stages must be TrainingStage objects")
        self.stages: List[TrainingStage] = stages

    @classmethod
    def parse(cls, text: str) -> "StageSchedule":
        """``"T:lr:epochs,T:lr:epochs"`` → schedule (ValueError naming ``stages`` otherwise)."""
        if not isinstance(text, str):
            raise TypeError(f"stages must be a string, got {type(text).__name__}")
        out = []
        for part in (p.strip() for p in text.split(",")):
            fields = part.split(":")
            try:
                if len(fields) != 3:
                    raise ValueError
                out.append(TrainingStage(float(fields[0]), float(fields[1]), int(fields[2])))
            except (ValueError, TypeError) as exc:
                detail = f" ({exc})" if str(exc) else ""
                raise ValueError(f"stages takes TEMPERATURE_K:LR:EPOCHS[,...], e.g. 300:1e-2:4,1000:1e-3:2; "
                                 f"got {part!r}{detail}") from None
        return cls(out)

    def __str__(self) -> str:
        return ",".join(f"{s.temperature:g}:{s.lr:g}:{s.epochs:d}" for s in self.stages)

    def __len__(self) -> int:
        return len(self.stages)

    @property
    def total_epochs(self) -> int:
        return sum(s.epochs for s in self.stages)

    @property
    def boundaries(self) -> List[int]:
        """Epoch counts at the stage starts and the end, ``[0, e1, e1 + e2, ...]``."""
        b = [0]
        for s in self.stages:
            b.append(b[-1] + s.epochs)
        return b

    def stage_index(self, done_epochs: int) -> int:
        """Index of the stage that trains the next epoch after ``done_epochs`` (the last one past the end)."""
        if int(done_epochs) < 0:
            raise ValueError(f"done_epochs must be >= 0, got {done_epochs}")
        for k, end in enumerate(self.boundaries[1:]):
            if int(done_epochs) < end:
                return k
        return len(self.stages) - 1

    def agrees_up_to(self, other: "StageSchedule", done_epochs: int) -> bool:
        """True if both schedules train epochs ``1 … done_epochs`` at the same temperature and rate
        (a restart may then extend or append stages)."""
        def at(sch, e):
            st = sch.stages[sch.stage_index(e)]
            return st.temperature, st.lr, sch.stage_index(e)

        return all(at(self, e) == at(other, e) for e in range(int(done_epochs)))

    def to_list(self) -> list:
        return [s.to_dict() for s in self.stages]


def apply_stage(trainer, stage: TrainingStage) -> None:
    """Set ``trainer``'s Langevin temperature and every optimizer group's rate to the stage's."""
    trainer.simulator.temperature = float(stage.temperature)
    for group in trainer.optimizer.param_groups:
        group["lr"] = float(stage.lr)
    trainer.config.update(temperature=float(stage.temperature), lr=float(stage.lr))


def crossing_run(potential, masses: torch.Tensor, cvs, well, R0: torch.Tensor, V0: torch.Tensor, n_steps: int, *,
                 temperature: float, timestep: float, friction: float, bias=None, seed: int = 0,
                 chunk: int = 200) -> dict:
    """Forward Langevin run (torch simulator, no adjoint) and first entry of each replica into ``well``.

    Parameters
    ----------
    potential : callable
        ``(B, N, 3)`` nm → ``(B,)`` kJ/mol.
    masses : torch.Tensor
        ``(N,)`` amu.
    cvs : CVSet
    well : Well
        Product well (the success criterion: any frame inside).
    R0, V0 : torch.Tensor
        ``(B, N, 3)`` start positions (nm) and velocities (nm/ps).
    n_steps : int
        Steps per replica.
    temperature, timestep, friction : float
        K, ps, 1/ps.
    bias : callable, optional
        Bias energy ``(B, N, 3)`` → ``(B,)`` kJ/mol (None: unbiased).
    seed : int, optional
        Noise seed.
    chunk : int, optional
        Steps integrated per call (frames are reduced to CVs chunk by chunk).

    Returns
    -------
    dict
        ``first_step`` (B,) long, first step inside the well (−1: never), ``crossed``,
        ``n``, ``fraction``, ``se`` (binomial), ``cv`` ``(T + 1, B, D)`` CV frames (every step).
    """
    from .langevin import LangevinSimulator

    if int(n_steps) < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps!r}")
    sim = LangevinSimulator(potential, masses.to(R0.dtype), temperature, timestep, friction,
                            generator=torch.Generator(device=R0.device).manual_seed(int(seed)))
    R, V, cv = R0, V0, []
    with torch.no_grad():
        cv.append(cvs(R0)[None])
    done = 0
    while done < int(n_steps):
        m = min(int(chunk), int(n_steps) - done)
        tr = sim.run(R, V, m, bias=bias)
        with torch.no_grad():
            cv.append(torch.stack([cvs(f) for f in tr.positions[1:]]))
        R, V, done = tr.final_positions, tr.final_velocities, done + m
    cv = torch.cat(cv).detach().cpu()
    inside = well.contains(cv)  # (T + 1, B)
    hit = inside.any(0)
    first = torch.where(hit, inside.double().argmax(0), torch.full_like(hit, -1, dtype=torch.long))
    k, n = int(hit.sum()), int(hit.numel())
    p = k / n
    return {"first_step": first.long(), "crossed": k, "n": n, "fraction": p,
            "se": math.sqrt(p * (1 - p) / n), "cv": cv}
