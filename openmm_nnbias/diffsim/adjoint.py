"""Partial adjoint of the semi-implicit Langevin integrator (positions detached).

Split from :mod:`openmm_nnbias.diffsim.langevin`: the integrator runs forward there, this
module walks K steps back from the loss frame collecting ``(R_k, ã_k)`` pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional

import torch


__all__ = ["AdjointPairs", "partial_adjoint"]


@dataclass
class AdjointPairs:
    """``(R_k, ã_k)`` pairs of the partial adjoint.

    Attributes
    ----------
    positions, adjoints : torch.Tensor
        ``(P, N, 3)`` positions (nm) and momentum adjoints ``∂L/∂p_k`` ((loss unit)·ps/(amu·nm)).
    replica, step : torch.Tensor
        ``(P,)`` long: replica index and step ``k`` of each pair.
    window_steps : int
        ``K``, the number of back-propagated steps (independent of the trajectory length).
    n_vjp_calls : int
        Batched Hessian-vector products evaluated (≤ K − 1).
    """

    positions: torch.Tensor
    adjoints: torch.Tensor
    replica: torch.Tensor
    step: torch.Tensor
    window_steps: int
    n_vjp_calls: int

    def __len__(self) -> int:
        return int(self.positions.shape[0])

    def drop_small(self, rtol: float = 1e-10) -> "AdjointPairs":
        """Drop pairs with ``‖ã‖ ≤ rtol · max‖ã‖`` (and exact zeros)."""
        if len(self) == 0:
            return self
        norm = self.adjoints.flatten(1).norm(dim=1)
        keep = (norm > rtol * norm.max()) & (norm > 0)
        return AdjointPairs(self.positions[keep], self.adjoints[keep], self.replica[keep.cpu()],
                            self.step[keep.cpu()], self.window_steps, self.n_vjp_calls)


def partial_adjoint(positions: torch.Tensor, loss_frames: torch.Tensor, loss_grad: torch.Tensor,
                    masses: torch.Tensor, timestep: float, friction: float,
                    force_fn: Callable[[torch.Tensor], torch.Tensor], window: int,
                    active: Optional[torch.Tensor] = None) -> AdjointPairs:
    """Run the detached-position adjoint back from each replica's loss frame.

    Parameters
    ----------
    positions : torch.Tensor
        ``(T, B, N, 3)`` positions of *every* step (``record_every=1``), frame = step.
    loss_frames : torch.Tensor
        ``(B,)`` long, loss frame ``L_b``.
    loss_grad : torch.Tensor
        ``(B, N, 3)`` ``∂L_b/∂R`` at ``R_{L_b}``.
    masses : torch.Tensor
        ``(N,)`` amu.
    timestep, friction : float
        ps and 1/ps (those of the forward run).
    force_fn : callable
        Total force ``−∇(U + B)``, ``(B', N, 3) → (B', N, 3)``, composable with
        :func:`torch.func.vjp` (see :func:`make_force_fn`).
    window : int
        ``K`` ≥ 1, number of pairs per replica (fewer if ``L_b − K < 1``).
    active : torch.Tensor, optional
        ``(B,)`` bool; inactive replicas (e.g. loss 0) give no pairs.

    Returns
    -------
    AdjointPairs
        Pairs ordered by back-step ``j = 0, 1, ...`` (step ``k = L_b − 1 − j``), replicas within.

    Examples
    --------
    Without forces the adjoint only decays by friction, ``ã_{L-1-j} = (1 − γ dt)^j ã_{L-1}``:

    >>> from openmm_nnbias.diffsim import make_force_fn
    >>> zero = make_force_fn(lambda x: 0.0 * x.sum((-2, -1)))
    >>> pos = torch.zeros(11, 1, 1, 3, dtype=torch.float64)
    >>> pairs = partial_adjoint(pos, torch.tensor([10]), torch.ones(1, 1, 3, dtype=torch.float64),
    ...                         torch.ones(1, dtype=torch.float64), 0.1, 1.0, zero, window=3)
    >>> pairs.step.tolist(), [round(float(a[0, 0]), 4) for a in pairs.adjoints]
    ([9, 8, 7], [0.1, 0.09, 0.081])
    """
    if positions.ndim != 4 or positions.shape[-1] != 3:
        raise ValueError(f"positions must have shape (T, B, N, 3), got {tuple(positions.shape)}")
    T, B, N, _ = positions.shape
    if int(window) < 1:
        raise ValueError(f"window must be >= 1, got {window!r}")
    if loss_frames.shape != (B,) or loss_grad.shape != (B, N, 3):
        raise ValueError(f"loss_frames must be ({B},) and loss_grad ({B}, {N}, 3), got "
                         f"{tuple(loss_frames.shape)} and {tuple(loss_grad.shape)}")
    frames = loss_frames.to("cpu", torch.long)
    if bool((frames < 0).any()) or bool((frames >= T).any()):
        raise ValueError(f"loss frames must lie in [0, {T - 1}]")
    act = torch.ones(B, dtype=torch.bool) if active is None else active.to("cpu", torch.bool)
    dev, dt = loss_grad.device, float(timestep)
    m = masses.to(dev, loss_grad.dtype)[None, :, None]
    a = dt * loss_grad.detach() / m
    out_R: List[torch.Tensor] = []
    out_a: List[torch.Tensor] = []
    out_b: List[torch.Tensor] = []
    out_k: List[torch.Tensor] = []
    n_vjp = 0
    for j in range(int(window)):
        k = frames - 1 - j
        valid = act & (k >= 1)
        if not bool(valid.any()):
            break
        idx = torch.nonzero(valid).flatten()
        R = positions[k[idx], idx].to(dev)
        a_sub = a[idx.to(dev)]
        out_R.append(R)
        out_a.append(a_sub)
        out_b.append(idx)
        out_k.append(k[idx])
        if j == int(window) - 1:
            break
        with torch.no_grad():  # no outer graph to the bias parameters; func.vjp still differentiates
            _, vjp_fn = torch.func.vjp(force_fn, R)
            (hv,) = vjp_fn(a_sub)
        n_vjp += 1
        a_sub = a_sub + (dt * dt) * hv.detach() / m - (friction * dt) * a_sub
        a = a.index_copy(0, idx.to(dev), a_sub)
    if out_R:
        return AdjointPairs(torch.cat(out_R), torch.cat(out_a), torch.cat(out_b), torch.cat(out_k),
                            int(window), n_vjp)
    empty = loss_grad.new_zeros((0, N, 3))
    none = torch.zeros(0, dtype=torch.long)
    return AdjointPairs(empty, empty.clone(), none, none.clone(), int(window), n_vjp)
