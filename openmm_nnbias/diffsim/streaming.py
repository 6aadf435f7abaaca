"""Forward run for the partial adjoint with memory independent of the trajectory length.

The partial adjoint (:func:`~openmm_nnbias.diffsim.partial_adjoint`) only needs the
``K`` frames before each replica's loss frame ``L_b`` plus ``R_{L_b}``, but ``L_b`` (the
frame closest to the target, or the first frame inside the target well) is only known at
the end of the run. :func:`forward_for_adjoint` with ``storage="window"`` therefore

1. integrates in chunks of ``max(K, chunk)`` steps with
   :meth:`LangevinSimulator.run` (the same noise stream as one long run, so the
   trajectory is identical),
2. evaluates the CVs of each chunk and updates the Eq. 5 loss on the fly (running
   minimum of the squared distance, first entry into the well),
3. keeps the last ``K + 1`` frames of the previous chunk next to the current chunk,
   and whenever a replica's loss frame moves into the current chunk copies its
   ``W = K + 2`` frames ``L_b − K − 1 … L_b`` into a per-replica window.

Memory is ``≈ (2 chunk + 2K) · B · N · 3`` numbers whatever the trajectory length
(``storage="full"`` keeps all ``n_steps + 1`` frames, the reference implementation).
The windows carry local frame indices; ``offset[b]`` is the global frame of local
frame 0 (``max(L_b − K − 1, 0)``, so that local ``k ≥ 1`` ⇔ global ``k ≥ 1`` and
:func:`partial_adjoint` treats the windows exactly like the full trajectory).

Units: nm, ps, those of the CVs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .wells import LossResult, Well, crossing_loss, wrapped_difference

__all__ = ["AdjointRun", "forward_for_adjoint"]

EnergyFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class AdjointRun:
    """Frames kept for the partial adjoint and the Eq. 5 loss of the run.

    Attributes
    ----------
    positions : torch.Tensor
        ``(W, B, N, 3)`` nm: window frames (``storage="window"``, ``W = K + 2``) or all
        ``n_steps + 1`` frames (``storage="full"``).
    offset : torch.Tensor
        ``(B,)`` long (CPU): global frame of local frame 0 (zeros for ``"full"``).
    loss : LossResult
        Eq. 5 loss with *global* loss frames.
    final_positions, final_velocities : torch.Tensor
        ``(B, N, 3)`` state after the last step.
    n_stored_frames : int
        Largest number of frames held at once (the memory driver).
    """

    positions: torch.Tensor
    offset: torch.Tensor
    loss: LossResult
    final_positions: torch.Tensor
    final_velocities: torch.Tensor
    n_stored_frames: int

    @property
    def local_frames(self) -> torch.Tensor:
        """``(B,)`` long (CPU): loss frames as indices into :attr:`positions`."""
        return self.loss.loss_frame.to("cpu") - self.offset


def _cv_chunks(cvs, frames: torch.Tensor, device, chunk: int = 256) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([cvs(frames[s:s + chunk].to(device)) for s in range(0, frames.shape[0], chunk)])


def forward_for_adjoint(simulator, R0: torch.Tensor, V0: torch.Tensor, n_steps: int, bias: Optional[EnergyFn],
                        cvs, well: Well, target: torch.Tensor, window: int, storage: str = "window",
                        chunk: int = 256, storage_device=None) -> AdjointRun:
    """Run ``n_steps`` Langevin steps and keep what the partial adjoint needs.

    Parameters
    ----------
    simulator : LangevinSimulator
    R0, V0 : torch.Tensor
        ``(B, N, 3)`` start positions (nm) and velocities (nm/ps).
    n_steps : int
        Trajectory length in steps (≥ 1).
    bias : callable or None
        Bias energy ``(B, N, 3) → (B,)`` kJ/mol.
    cvs : callable
        Positions ``(..., N, 3)`` → CVs ``(..., D)``.
    well : Well
        Target well.
    target : torch.Tensor
        ``(B, D)`` or ``(D,)`` loss targets ξ_target.
    window : int
        Adjoint window ``K`` (≥ 1).
    storage : {"window", "full"}, optional
        ``"window"`` (default): memory independent of ``n_steps``; ``"full"``: keep all frames.
    chunk : int, optional
        Steps per chunk (at least ``K`` are used), ``"window"`` only.
    storage_device : torch.device, optional
        Device of the kept frames (default that of ``R0``).

    Returns
    -------
    AdjointRun

    Examples
    --------
    >>> import math
    >>> from openmm_nnbias.cvs import CVSet, Position
    >>> from openmm_nnbias.diffsim import LangevinSimulator
    >>> from openmm_nnbias.systems import MuellerBrownEnergy
    >>> sim = LangevinSimulator(MuellerBrownEnergy(), torch.ones(1, dtype=torch.float64), 300.0, 0.001, 10.0, seed=0)
    >>> well = Well(torch.tensor([0.62, 0.03], dtype=torch.float64), 0.01 * torch.eye(2, dtype=torch.float64),
    ...             [math.inf, math.inf], 0.1, 4.6)
    >>> R0 = torch.tensor([[[-0.558, 1.442, 0.0]]], dtype=torch.float64).repeat(2, 1, 1)
    >>> run = forward_for_adjoint(sim, R0, torch.zeros_like(R0), 1000, None, CVSet([Position([0, 0], ["x", "y"],
    ...                           -2.0, 2.0)]), well, well.mean, window=10, chunk=100)
    >>> run.positions.shape, run.n_stored_frames
    (torch.Size([12, 2, 1, 3]), 224)
    """
    n_steps, window = int(n_steps), int(window)
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if storage not in ("window", "full"):
        raise ValueError(f"storage must be 'window' or 'full', got {storage!r}")
    B, dev = R0.shape[0], R0.device
    store = torch.device(storage_device) if storage_device is not None else dev
    if storage == "full":
        traj = simulator.run(R0, V0, n_steps, record_every=1, bias=bias, storage_device=store)
        res = crossing_loss(_cv_chunks(cvs, traj.positions, dev), well, target)
        return AdjointRun(traj.positions, torch.zeros(B, dtype=torch.long), res, traj.final_positions,
                          traj.final_velocities, n_steps + 1)
    tgt = torch.as_tensor(target).to(dev, R0.dtype)
    prec = torch.linalg.inv(well.covariance).to(dev, R0.dtype)
    mean = well.mean.to(dev, R0.dtype)

    def score(s):  # squared distance to the target and "inside the well" of CV frames (T, B, D)
        dm = wrapped_difference(s, mean, well.period)
        inside = torch.einsum("...i,...ij,...j->...", dm, prec, dm) < well.threshold  # prec (D, D) or (B, D, D)
        return (wrapped_difference(s, tgt, well.period) ** 2).sum(-1), inside

    W, keep, chunk = window + 2, window + 1, max(int(chunk), window)
    sq0, inside0 = score(_cv_chunks(cvs, R0.detach()[None], dev))
    best_sq, best_frame = sq0[0], torch.zeros(B, dtype=torch.long, device=dev)
    entered, first_in = inside0[0].clone(), torch.zeros(B, dtype=torch.long, device=dev)
    saved = torch.zeros((W,) + tuple(R0.shape), dtype=R0.dtype, device=store)
    saved_for = torch.full((B,), -1, dtype=torch.long, device=dev)
    buf, buf_start = R0.detach()[None].to(store), 0
    R, V, t, peak = R0.detach(), V0.detach(), 0, 1

    def save(rows: torch.Tensor, loss_frame: torch.Tensor) -> None:
        if rows.numel() == 0:
            return
        lf = loss_frame[rows]
        glob = (lf - W + 1).clamp(min=0)[:, None] + torch.arange(W, device=dev)[None, :]
        local = (glob - buf_start).clamp(0, buf.shape[0] - 1)  # frames beyond L_b are never used
        saved[:, rows.to(store)] = buf[local.T.to(store), rows.to(store)[None, :]]
        saved_for[rows] = lf

    save(torch.arange(B, device=dev), torch.zeros(B, dtype=torch.long, device=dev))  # loss frame 0 for now
    while t < n_steps:
        n = min(chunk, n_steps - t)
        traj = simulator.run(R, V, n, record_every=1, bias=bias)
        R, V = traj.final_positions, traj.final_velocities
        new = traj.positions[1:]
        sq, inside = score(_cv_chunks(cvs, new, dev))
        hit = inside.any(0) & ~entered
        first_in = torch.where(hit, t + 1 + torch.argmax(inside.to(torch.int8), dim=0), first_in)
        entered = entered | hit
        cmin, carg = sq.min(0)
        better = cmin < best_sq
        best_sq = torch.where(better, cmin, best_sq)
        best_frame = torch.where(better, t + 1 + carg, best_frame)
        buf = torch.cat([buf[-keep:], new.to(store)])
        buf_start = t + n + 1 - buf.shape[0]
        peak = max(peak, buf.shape[0] + traj.positions.shape[0] + W)
        loss_frame = torch.where(entered, first_in, best_frame)
        save(torch.nonzero((loss_frame > t) & (loss_frame != saved_for)).flatten(), loss_frame)
        t += n
        del traj, new
    loss_frame = torch.where(entered, first_in, best_frame)
    res = LossResult(loss=torch.where(entered, torch.zeros_like(best_sq), best_sq), loss_frame=loss_frame,
                     entered=entered, min_sqdist=best_sq)
    offset = (loss_frame - W + 1).clamp(min=0).to("cpu")
    return AdjointRun(saved, offset, res, R, V, peak)
