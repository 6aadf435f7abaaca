"""Reweighting of a learning run over a window that forgets its early transient (``fes.dat``).

While the bias is still learning, each frame is reweighted with exp(β(V − c(t))), the bias and
c(t) in force when the frame was drawn (``rbias`` of ``colvar``). Frames of the first part of a
run were drawn with a poor bias and carry a transient; :class:`WindowedReweighting` therefore keeps
the per-bin sums in blocks of iterations, so that the estimate can use only the frames of the
last part of the run, e.g. ``[t/2, t]``, without storing the frames themselves.

Examples
--------
>>> import torch
>>> w = WindowedReweighting(n_points=2, blockIterations=1)
>>> w.add(0, 0.0, torch.tensor([0, 0, 1]), torch.tensor([0.0, 0.0, 0.0]))
>>> w.add(1, 1.0, torch.tensor([1, 1]), torch.tensor([0.0, 0.0]))
>>> [round(x, 3) for x in w.fes(kT=1.0, since=1.0).tolist()]   # only the second block
[inf, 0.0]
>>> [round(x, 3) for x in w.fes(kT=1.0, since=0.0).tolist()]   # both: 2 frames in bin 0, 3 in bin 1
[0.405, 0.0]
>>> [round(x, 3) for x in w.fes(kT=1.0, since=5.0).tolist()]   # none starts that late: the newest block
[inf, 0.0]
"""

from __future__ import annotations

import math

import torch

from .blocks import block_groups
from .reweight import accumulate_log_weights

__all__ = ["WindowedReweighting"]


class WindowedReweighting:
    """Per-bin ``log Σ exp(β(V − c))`` of a run's frames, kept in blocks of iterations.

    Parameters
    ----------
    n_points : int
        Number of grid bins (:attr:`CVGrid.n_points`).
    blockIterations : int
        Iterations per block: the resolution (in iterations) of the window's start.
    """

    def __init__(self, n_points: int, blockIterations: int = 100) -> None:
        if int(n_points) < 1:
            raise ValueError(f"n_points must be >= 1, got {n_points}")
        if int(blockIterations) < 1:
            raise ValueError(f"blockIterations must be >= 1, got {blockIterations}")
        self.n_points, self.blockIterations = int(n_points), int(blockIterations)
        self.origin: float | None = None  # time (ps) of the run's first frame; kept when its block is pruned
        self.blocks: list[int] = []  # block number of each kept block
        self.starts: list[float] = []  # time (ps) of the block's first frame
        self.logsums: list[torch.Tensor] = []

    def add(self, iteration: int, time_ps: float, index: torch.Tensor, logWeights: torch.Tensor) -> None:
        """Add one iteration's frames: flat grid bins ``index`` and log-weights β(V − c) (dimensionless)."""
        block = int(iteration) // self.blockIterations
        if self.origin is None:
            self.origin = float(time_ps)
        if not self.blocks or self.blocks[-1] != block:
            self.blocks.append(block)
            self.starts.append(float(time_ps))
            self.logsums.append(torch.full((self.n_points,), -math.inf, dtype=torch.float64))
        self.logsums[-1] = accumulate_log_weights(self.logsums[-1], index.cpu(), logWeights.cpu(), self.n_points)

    def prune(self, since: float, now: float | None = None, resolution: float = 0.0) -> None:
        """Drop the blocks that start before ``since`` (ps), keeping the newest; with ``resolution`` > 0, also
        merge neighbouring blocks (the newest excepted) while the merged block spans at most ``resolution`` ×
        (``now`` − :attr:`origin`). For a window whose start only moves forward, e.g. ``[t/2, t]``, the number of
        blocks then stays bounded (at most about 1/``resolution`` plus the recent ones) however long the run, and the
        window's start is exact to ``resolution`` of the run's length."""
        span = resolution * (float(now) - self.origin) if (resolution > 0 and now is not None
                                                            and self.origin is not None) else 0.0
        groups = block_groups(self.starts, since, span)
        self.logsums = [self.logsums[g[0]] if len(g) == 1
                        else torch.logsumexp(torch.stack([self.logsums[i] for i in g]), 0) for g in groups]
        self.blocks = [self.blocks[g[0]] for g in groups]
        self.starts = [self.starts[g[0]] for g in groups]

    @property
    def empty(self) -> bool:
        return not self.blocks

    def fes(self, kT: float, since: float = 0.0) -> torch.Tensor | None:
        """F = −kT ln Σ exp(β(V − c)) (kJ/mol, min 0, empty bins +inf) of the blocks that start at or after
        ``since`` (ps), or of the newest block when none does; None before the first frame."""
        if not self.logsums:
            return None
        chosen = [s for s, t in zip(self.logsums, self.starts) if t >= since - 1e-9] or self.logsums[-1:]
        logsum = torch.logsumexp(torch.stack(chosen), dim=0)
        f = -float(kT) * logsum
        finite = torch.isfinite(f)
        return f - f[finite].min() if finite.any() else f

    def state_dict(self) -> dict:
        """Plain data (tensors, numbers, lists) for a checkpoint."""
        return {"blockIterations": self.blockIterations, "origin": self.origin,
                "blocks": torch.tensor(self.blocks, dtype=torch.long),
                "starts": torch.tensor(self.starts, dtype=torch.float64),
                "logsums": torch.stack(self.logsums) if self.logsums else torch.empty(0, self.n_points,
                                                                                        dtype=torch.float64)}

    def load_state_dict(self, state: dict) -> None:
        if int(state["blockIterations"]) != self.blockIterations or state["logsums"].shape[-1] != self.n_points:
            raise ValueError("the windowed reweighting state belongs to another grid or block size")
        self.blocks = [int(b) for b in state["blocks"].tolist()]
        self.starts = [float(t) for t in state["starts"].tolist()]
        self.logsums = [row.clone() for row in state["logsums"]]
        # checkpoints written before pruning existed kept every block: their first block is the run's start
        origin = state.get("origin")
        self.origin = float(origin) if origin is not None else (self.starts[0] if self.starts else None)
