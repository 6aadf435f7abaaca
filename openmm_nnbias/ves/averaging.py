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

Units: kJ/mol.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["AveragedFES"]


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
