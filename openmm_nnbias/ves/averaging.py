"""Average of the FES from the bias (Eq. 4) over the decay phase (Polyak–Ruppert averaging).

Once the KL gate opens, every Adam step still moves the network, around a stationary point that
the stochastic gradient only estimates. With a poor CV (Wolfe–Quapp with x only) the bias keeps
chasing the system from basin to basin: the FES from the bias swings by several k_BT between
records 100 iterations apart until late in the decay, and the one it freezes with is a random draw
from those swings. Averaging F_n = −V_n − kT ln p_n uniformly over the iterations of the decay
phase — as VES averages its coefficients (Valsson & Parrinello 2014; averaged SGD, Polyak &
Juditsky 1992) — removes most of that noise:

    F̄(s) = (1/N) Σ_n F_n(s),   n over the N updating iterations from the KL threshold to the freeze.

Measured on Wolfe–Quapp (benchmarks/RESULTS.md): 0.33 k_BT RMSE against 0.77 for the bias at the
freeze; weighting by the learning rates instead (1.2 k_BT) or averaging only the last τ_decay
iterations (0.78) does not help.

While the bias still learns, :class:`WindowedFES` averages Eq. 4 the same way over the iterations of
the last part of the run only (``fes.dat`` uses the last quarter, :data:`EQ4_WINDOW`): the average
removes the iterate's noise, the window forgets the early, poorer biases.

Units: kJ/mol.
"""

from __future__ import annotations

from typing import Any

import torch

from .blocks import block_groups

__all__ = ["AveragedFES", "WindowedFES", "EQ4_WINDOW", "EQ4_RESOLUTION"]

#: :class:`WindowedFES` of the optimizer averages the iterations after this fraction of the run (3/4: the last quarter)
EQ4_WINDOW = 0.75
#: ... its window's start exact to this fraction of the run (older blocks merged: at most about 100 blocks)
EQ4_RESOLUTION = 0.01


class AveragedFES:
    """Running weighted average of grid free energies (the updater uses weight 1 per iteration).

    Parameters
    ----------
    n_points : int
        Grid points.

    Examples
    --------
    >>> import torch
    >>> avg = AveragedFES(3)
    >>> avg.update(torch.tensor([0.0, 1.0, 2.0]), 1.0)
    >>> avg.update(torch.tensor([0.0, 3.0, 2.0]), 3.0)
    >>> avg.fes().tolist(), avg.weight
    ([0.0, 2.5, 2.0], 4.0)
    """

    def __init__(self, n_points: int) -> None:
        self.n_points = int(n_points)
        self.sum = torch.zeros(self.n_points, dtype=torch.float64)
        self.weight = 0.0
        self.count = 0

    def update(self, fes: torch.Tensor, weight: float) -> None:
        """Add one FES on the grid (any constant offset; finite values) with weight ``weight`` >= 0."""
        fes = fes.detach().to("cpu", torch.float64).reshape(-1)
        if fes.shape[0] != self.n_points:
            raise ValueError(f"FES has {fes.shape[0]} points, the average {self.n_points}")
        weight = float(weight)
        if not weight > 0 or not bool(torch.isfinite(fes).all()):
            return
        self.sum += weight * (fes - fes.min())
        self.weight += weight
        self.count += 1

    def fes(self) -> torch.Tensor | None:
        """The averaged FES, min 0, kJ/mol, ``(n_points,)`` float64; None before the first update."""
        if self.count == 0:
            return None
        f = self.sum / self.weight
        return f - f.min()

    def state_dict(self) -> dict[str, Any]:
        return {"sum": self.sum.clone(), "weight": self.weight, "count": self.count}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if state is None:  # checkpoint from before averaging existed: start empty
            self.__init__(self.n_points)
            return
        self.sum = state["sum"].clone().to(torch.float64)
        self.weight, self.count = float(state["weight"]), int(state["count"])


class WindowedFES:
    """Eq. 4 averaged uniformly over the iterations of a window that forgets the run's beginning.

    Each :meth:`update` adds one F(s) on the grid (shifted to min 0) in a block of its own; blocks
    that start before the window can no longer be used and are dropped, older ones merged
    (:func:`~openmm_nnbias.ves.blocks.block_groups`): with ``window`` = 3/4 the average is over the
    last quarter of the iterations so far, its start exact to ``resolution`` of the run, in bounded
    memory however long the run.

    Parameters
    ----------
    n_points : int
        Grid points.
    window : float
        Fraction of the iterations so far to forget, in [0, 1).
    resolution : float
        Fraction of the run to which the window's start is exact, > 0.

    Examples
    --------
    >>> import torch
    >>> w = WindowedFES(2, window=0.5)
    >>> for it in range(4):   # F = (0, it): the last half averages iterations 2 and 3 (window start at 1.5)
    ...     w.update(it, torch.tensor([0.0, float(it)]))
    >>> w.fes().tolist()
    [0.0, 2.5]
    """

    def __init__(self, n_points: int, window: float = EQ4_WINDOW, resolution: float = EQ4_RESOLUTION) -> None:
        if not 0.0 <= float(window) < 1.0:
            raise ValueError(f"window must be in [0, 1), got {window}")
        if not float(resolution) > 0.0:
            raise ValueError(f"resolution must be > 0, got {resolution}")
        self.n_points, self.window, self.resolution = int(n_points), float(window), float(resolution)
        self.origin: float | None = None  # first iteration averaged
        self.starts: list[float] = []  # first iteration of each block
        self.sums: list[torch.Tensor] = []
        self.counts: list[int] = []

    def _since(self, now: float) -> float:
        return self.origin + self.window * (now - self.origin)

    def update(self, iteration: int, fes: torch.Tensor) -> None:
        """Add F(s) of ``iteration`` (kJ/mol, any offset); a non-finite F is left out."""
        fes = fes.detach().to("cpu", torch.float64).reshape(-1)
        if fes.shape[0] != self.n_points:
            raise ValueError(f"FES has {fes.shape[0]} points, the average {self.n_points}")
        if not bool(torch.isfinite(fes).all()):
            return
        now = float(iteration)
        if self.origin is None:
            self.origin = now
        self.starts.append(now)
        self.sums.append(fes - fes.min())
        self.counts.append(1)
        groups = block_groups(self.starts, self._since(now), self.resolution * (now - self.origin))
        self.sums = [self.sums[g[0]] if len(g) == 1 else torch.stack([self.sums[i] for i in g]).sum(0) for g in groups]
        self.counts = [sum(self.counts[i] for i in g) for g in groups]
        self.starts = [self.starts[g[0]] for g in groups]

    @property
    def count(self) -> int:
        """Iterations in the current window (after the last update)."""
        return sum(self.counts)

    def fes(self) -> torch.Tensor | None:
        """The average over the window (min 0, kJ/mol, ``(n_points,)`` float64); None before the first update."""
        if not self.counts:
            return None
        f = torch.stack(self.sums).sum(0) / self.count
        return f - f.min()

    def state_dict(self) -> dict[str, Any]:
        """Plain data (tensors, numbers) for a checkpoint."""
        return {"window": self.window, "resolution": self.resolution, "origin": self.origin,
                "starts": torch.tensor(self.starts, dtype=torch.float64),
                "counts": torch.tensor(self.counts, dtype=torch.long),
                "sums": torch.stack(self.sums) if self.sums else torch.empty(0, self.n_points, dtype=torch.float64)}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if state is None:  # a checkpoint from before the window existed: it starts empty
            self.__init__(self.n_points, self.window, self.resolution)
            return
        if state["sums"].shape[-1] != self.n_points:
            raise ValueError("the windowed FES average belongs to another grid")
        self.window, self.resolution = float(state["window"]), float(state["resolution"])
        self.origin = None if state["origin"] is None else float(state["origin"])
        self.starts = [float(x) for x in state["starts"].tolist()]
        self.counts = [int(x) for x in state["counts"].tolist()]
        self.sums = [row.clone().to(torch.float64) for row in state["sums"]]
