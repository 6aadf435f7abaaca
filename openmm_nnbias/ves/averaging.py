"""Step-size-weighted average of the FES from the bias (Eq. 4) over the decay phase.

Once the KL gate opens, every Adam step moves the network by an amount proportional to its
learning rate, around a stationary point that the stochastic gradient only estimates. The FES
from the bias at the moment of freezing carries that noise, and, when transitions become rare
in the last τ_decay iterations (a poor CV), a drift towards over-filling the basin the system
sits in. Averaging F_n = −V_n − kT ln p_n over the decay phase with the step sizes lr_n as weights
(the averaged-iterate estimator of stochastic approximation, as VES averages its coefficients;
Bach & Moulines 2013) removes most of the noise and gives the late, nearly frozen steps the small
weight their small moves deserve:

    F̄(s) = Σ_n lr_n F_n(s) / Σ_n lr_n,   n over the decaying iterations.

Units: kJ/mol.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["AveragedFES"]


class AveragedFES:
    """Running lr-weighted average of grid free energies.

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
