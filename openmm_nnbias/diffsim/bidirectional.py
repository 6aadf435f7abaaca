"""DiffSim training in both directions at once (A → B and B → A), as the authors' 2-D Müller–Brown run.

One epoch runs ``2 n`` replicas in one batch: the first ``n`` start from the reactant pool
and aim at the product well, the last ``n`` start from the product pool and aim at the
reactant well. Each replica's Eq. 5 loss (0 once it enters *its* target well, else
``min_t ‖ξ(x_t) − ξ_target‖²``, ξ_target a random sample of that well) and partial adjoint
are those of :class:`~openmm_nnbias.diffsim.DiffSimTrainer`; the bias is shared, and the
parameter gradient is that of the mean loss over all ``2 n`` replicas (times ``loss_scale``,
which only matters through Adam's ε: the authors multiply their adjoints by 1e4).

Success is counted per direction: ``success_forward`` (A → B replicas that entered B),
``success_backward`` (B → A that entered A) and ``success_fraction``, their mean (the
authors' metric, hits over all ``2 n`` replicas).

Units: nm, ps, kJ/mol, amu, K.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import torch

from .adjoint import partial_adjoint
from .langevin import make_force_fn
from .streaming import forward_for_adjoint
from .training import DiffSimTrainer, EpochResult, maxwell_boltzmann_velocities, minibatch_updates
from .wells import Well, loss_position_gradient

__all__ = ["ReplicaWells", "BidirectionalEpochResult", "BidirectionalDiffSimTrainer", "direction_success"]


@dataclass
class ReplicaWells:
    """One target ellipsoid per replica, in the form :func:`~openmm_nnbias.diffsim.streaming.forward_for_adjoint`
    reads a :class:`~openmm_nnbias.diffsim.Well` (``mean`` ``(B, D)``, ``covariance`` ``(B, D, D)``).

    Examples
    --------
    >>> import math
    >>> w = Well(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64), [math.inf] * 2, 0.1, 4.6)
    >>> ReplicaWells.stack([w, w], [1, 2]).mean.shape
    torch.Size([3, 2])
    """

    mean: torch.Tensor
    covariance: torch.Tensor
    period: list
    threshold: float

    @classmethod
    def stack(cls, wells, counts) -> "ReplicaWells":
        """``counts[i]`` replicas aiming at ``wells[i]`` (all wells: same dimension, periods and threshold)."""
        wells, counts = list(wells), [int(c) for c in counts]
        if not wells or len(wells) != len(counts) or any(c < 0 for c in counts):
            raise ValueError(f"need one non-negative count per well, got {len(wells)} wells and counts {counts}")
        w0 = wells[0]
        for w in wells[1:]:
            if w.dim != w0.dim or list(w.period) != list(w0.period) or abs(w.threshold - w0.threshold) > 1e-12:
                raise ValueError("wells must share dimension, periods and threshold (the same p)")
        mean = torch.cat([w.mean[None].expand(c, -1) for w, c in zip(wells, counts)])
        cov = torch.cat([w.covariance[None].expand(c, -1, -1) for w, c in zip(wells, counts)])
        return cls(mean=mean, covariance=cov, period=list(w0.period), threshold=float(w0.threshold))


@dataclass
class BidirectionalEpochResult(EpochResult):
    """:class:`~openmm_nnbias.diffsim.training.EpochResult` plus the success of each direction."""

    success_forward: float = 0.0
    success_backward: float = 0.0


def direction_success(entered: torch.Tensor, n_forward: int) -> tuple:
    """``(forward, backward, all)`` success fractions of a ``(2n,)`` bool ``entered``, first ``n_forward`` A → B.

    Examples
    --------
    >>> direction_success(torch.tensor([True, False, False, False]), 2)
    (0.5, 0.0, 0.25)
    """
    e = entered.detach().to("cpu", torch.float64)
    n = int(n_forward)
    if not 0 < n < e.numel():
        raise ValueError(f"n_forward must be in 1..{e.numel() - 1}, got {n_forward!r}")
    return float(e[:n].mean()), float(e[n:].mean()), float(e.mean())


class BidirectionalDiffSimTrainer(DiffSimTrainer):
    """Train one bias on A → B and B → A trajectories together.

    Parameters
    ----------
    potential, cvs, bias, masses :
        As for :class:`~openmm_nnbias.diffsim.DiffSimTrainer` (``bias`` may also be a
        :class:`~openmm_nnbias.diffsim.gaussian_grid.GaussianGridBias`).
    reactant_well, product_well : Well
        Targets of the B → A and A → B replicas.
    reactant_pool, product_pool : torch.Tensor
        ``(P, N, 3)`` start configurations (nm) in A and in B.
    n_replicas : int, optional
        Replicas *per direction* (default 300, the authors'); the batch holds twice as many.
    start_temperature : float, optional
        K of the Maxwell–Boltzmann start velocities (default: the thermostat's).
    loss_scale : float, optional
        Factor on the loss (and so on all adjoints and gradients), default 1.
    **kwargs
        The other keyword arguments of :class:`~openmm_nnbias.diffsim.DiffSimTrainer`.
    """

    def __init__(self, potential, cvs, bias, masses: torch.Tensor, reactant_well: Well, product_well: Well,
                 reactant_pool: torch.Tensor, product_pool: torch.Tensor, *, n_replicas: int = 300,
                 start_temperature: Optional[float] = None, loss_scale: float = 1.0, **kwargs):
        if int(n_replicas) < 1:
            raise ValueError(f"n_replicas must be >= 1 (per direction), got {n_replicas!r}")
        if not (float(loss_scale) > 0 and float(loss_scale) < float("inf")):
            raise ValueError(f"loss_scale must be positive and finite, got {loss_scale!r}")
        super().__init__(potential, cvs, bias, masses, product_well, reactant_pool, n_replicas=2 * int(n_replicas),
                         **kwargs)
        prod = torch.as_tensor(product_pool)
        prod = prod[None] if prod.ndim == 2 else prod
        if prod.ndim != 3 or prod.shape[1:] != self.start_positions.shape[1:]:
            raise ValueError(f"product_pool must have shape (P, {self.start_positions.shape[1]}, 3), "
                             f"got {tuple(prod.shape)}")
        self.product_pool = prod.to(self.start_positions.device, self.dtype)
        self.reactant_well = reactant_well
        self.n_per_direction = int(n_replicas)
        T0 = self.simulator.temperature if start_temperature is None else float(start_temperature)
        if not (T0 >= 0 and T0 < float("inf")):
            raise ValueError(f"start_temperature must be non-negative (K), got {start_temperature!r}")
        self.start_temperature, self.loss_scale = T0, float(loss_scale)
        self.wells = ReplicaWells.stack([product_well, reactant_well], [self.n_per_direction] * 2)
        self.config.update({"bidirectional": True, "n_per_direction": self.n_per_direction,
                            "start_temperature": T0, "loss_scale": self.loss_scale})

    def _initial_state(self):
        n, g = self.n_per_direction, self.cpu_generator
        pick = [pool[torch.randint(pool.shape[0], (n,), generator=g).to(pool.device)]
                for pool in (self.start_positions, self.product_pool)]
        R0 = torch.cat(pick).to(self.device)
        V0 = maxwell_boltzmann_velocities(self.masses, self.start_temperature, 2 * n,
                                          generator=self.simulator.generator)
        return R0, V0

    def _targets(self) -> torch.Tensor:
        out = []
        for w in (self.target_well, self.reactant_well):
            if self.random_targets and w.samples is not None:
                pick = torch.randint(w.samples.shape[0], (self.n_per_direction,), generator=self.cpu_generator)
                out.append(w.samples[pick])
            else:
                out.append(w.mean[None].expand(self.n_per_direction, -1))
        return torch.cat(out).to(self.device, self.dtype)

    def train_epoch(self) -> BidirectionalEpochResult:
        """One epoch over both directions: forward run, Eq. 5 losses, partial adjoint, mini-batched Adam."""
        t0 = time.perf_counter()
        R0, V0 = self._initial_state()
        target = self._targets()
        run = forward_for_adjoint(self.simulator, R0, V0, self.n_steps, self.bias_energy, self.cvs, self.wells,
                                  target, self.adjoint_steps, storage=self.storage,
                                  storage_device=self.storage_device)
        res, frames, B = run.loss, run.local_frames, self.n_replicas
        active = (~res.entered) & (res.loss_frame >= 1)
        R_loss = run.positions[frames, torch.arange(B)].to(self.device)
        loss_grad = self.loss_scale * loss_position_gradient(self.cvs, R_loss, target, self.wells.period)
        pairs = partial_adjoint(run.positions, frames, loss_grad, self.masses, self.simulator.timestep,
                                self.simulator.friction, make_force_fn(self.total_energy),
                                self.adjoint_steps, active.to("cpu"))
        pairs.step = pairs.step + run.offset[pairs.replica]
        del run
        pairs = pairs.drop_small(self.drop_rtol)
        n_updates = minibatch_updates(pairs, self.bias_energy, self.optimizer, self.simulator.timestep, B,
                                      self.batch_size, self.cpu_generator, self.max_grad_norm)
        self.epoch += 1
        fwd, bwd, both = direction_success(res.entered, self.n_per_direction)
        out = BidirectionalEpochResult(epoch=self.epoch, mean_loss=float(res.loss.mean()), success_fraction=both,
                                       n_active=int(active.sum()), n_pairs=len(pairs), n_updates=n_updates,
                                       window_steps=pairs.window_steps, n_vjp_calls=pairs.n_vjp_calls,
                                       n_steps=self.n_steps, wall_time_s=time.perf_counter() - t0,
                                       success_forward=fwd, success_backward=bwd)
        self.history.append(out.to_dict())
        return out

    def export(self, path: str) -> None:
        """Write the bias as TorchScript (positions → kJ/mol); Gaussian grids via :func:`export_grid_bias`."""
        from .gaussian_grid import GaussianGridBias, export_grid_bias

        if isinstance(self.bias, GaussianGridBias):
            export_grid_bias(self.cvs, self.bias, path)
        else:
            super().export(path)
