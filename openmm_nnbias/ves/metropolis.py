"""Persistent batched Metropolis chains over a box of CVs, periodic or reflecting (:class:`MetropolisSampler`).

The sampler of :class:`~openmm_nnbias.ves.montecarlo.MonteCarloTarget`, the Deep-VES target average over
many CVs.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

__all__ = ["MetropolisSampler"]


def _check_domain(lower: Sequence[float], upper: Sequence[float], periodic: Sequence[bool]):
    lower_l = [float(x) for x in lower]
    upper_l = [float(x) for x in upper]
    periodic_l = [bool(p) for p in periodic]
    if not lower_l:
        raise ValueError("need at least one CV (lower is empty)")
    if not len(lower_l) == len(upper_l) == len(periodic_l):
        raise ValueError(f"lower, upper and periodic differ in length: "
                         f"{len(lower_l)}, {len(upper_l)}, {len(periodic_l)}")
    for k, (lo, hi) in enumerate(zip(lower_l, upper_l)):
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError(f"CV {k}: range [{lo}, {hi}] must be finite with lower < upper")
    return lower_l, upper_l, periodic_l


class MetropolisSampler:
    """Batch of persistent Metropolis chains over a box of CV space.

    Each step proposes ``x' = x + σ ⊙ ξ`` (ξ standard normal, all CVs at once) for every
    chain, wraps periodic CVs into ``[lower, upper)``, reflects non-periodic ones into
    ``[lower, upper]`` (``boundary="reflect"``; the reflected Gaussian kernel is still
    symmetric) or rejects proposals that leave the box (``"reject"``), and accepts with
    probability ``min(1, p(x')/p(x))``. The chains persist between calls of :meth:`run`; the
    log density is re-evaluated at the start of every call, so it may change between calls
    (the well-tempered target follows the bias).

    Parameters
    ----------
    lower, upper : sequence of float
        Box per CV (rad, nm, ...); the period of a periodic CV is ``upper - lower``.
    periodic : sequence of bool
        Periodicity per CV.
    chains : int
        Number of parallel chains (>= 1); the attribute ``n_chains``.
    stepSize : float or sequence of float, optional
        Proposal σ per CV in CV units; default ``stepFraction * (upper - lower)``; the attribute
        ``step_size_list``.
    stepFraction : float
        Default σ as a fraction of the range (0.08: 0.50 rad for a torsion over 2π).
    boundary : {"reflect", "reject"}
        Treatment of non-periodic CVs at the box edges.
    seed : int
        Seed of the sampler's own CPU generator (chains start uniform in the box).
    dtype : torch.dtype
        Dtype of the chain positions (default float64).
    device : torch.device or str, optional
        Device of the positions handed to the log density (random numbers are drawn on the
        CPU, so results do not depend on the device).

    Attributes
    ----------
    positions : torch.Tensor or None
        Current chain states ``(n_chains, n_cv)`` (None before the first :meth:`run`).
    acceptance_rate : float
        Fraction of accepted moves in the last :meth:`run` (NaN before).
    n_accepted, n_proposed : int
        Totals over all calls.

    Examples
    --------
    >>> import math, torch
    >>> from openmm_nnbias.ves.montecarlo import MetropolisSampler
    >>> sampler = MetropolisSampler([-math.pi], [math.pi], [True], chains=100, seed=1)
    >>> x = sampler.run(lambda s: torch.cos(s[:, 0]), steps=20)  # p ∝ exp(cos s)
    >>> x.shape, 0.3 < sampler.acceptance_rate < 1.0
    (torch.Size([2000, 1]), True)
    >>> bool(((x >= -math.pi) & (x < math.pi)).all())
    True
    """

    def __init__(self, lower: Sequence[float], upper: Sequence[float], periodic: Sequence[bool],
                 chains: int = 2000, stepSize: float | Sequence[float] | None = None,
                 stepFraction: float = 0.08, boundary: str = "reflect", seed: int = 0,
                 dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> None:
        self.lower_list, self.upper_list, self.periodic_list = _check_domain(lower, upper, periodic)
        n_cv = len(self.lower_list)
        n_chains = int(chains)
        if n_chains < 1:
            raise ValueError(f"chains must be >= 1, got {n_chains}")
        if boundary not in ("reflect", "reject"):
            raise ValueError(f"boundary must be 'reflect' or 'reject', got {boundary!r}")
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be floating point, got {dtype}")
        widths = [hi - lo for lo, hi in zip(self.lower_list, self.upper_list)]
        if stepSize is None:
            if not 0 < float(stepFraction) <= 1:
                raise ValueError(f"stepFraction must be in (0, 1], got {stepFraction}")
            steps = [float(stepFraction) * w for w in widths]
        else:
            steps = [float(stepSize)] * n_cv if isinstance(stepSize, (int, float)) else \
                [float(x) for x in stepSize]
            if len(steps) != n_cv:
                raise ValueError(f"stepSize has {len(steps)} entries, need one per CV ({n_cv})")
            for k, st in enumerate(steps):
                if not (st > 0 and math.isfinite(st)):
                    raise ValueError(f"CV {k}: stepSize must be a finite number > 0, got {st}")
        self.n_chains = n_chains
        self.step_size_list = steps
        self.boundary = boundary
        self.seed = int(seed)
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.generator = torch.Generator(device="cpu").manual_seed(self.seed)
        kw = dict(dtype=dtype)
        self._lower = torch.tensor(self.lower_list, **kw)
        self._width = torch.tensor(widths, **kw)
        self._sigma = torch.tensor(steps, **kw)
        self._periodic = torch.tensor(self.periodic_list, dtype=torch.bool)
        self.positions: torch.Tensor | None = None
        self.acceptance_rate = math.nan
        self.n_accepted = 0
        self.n_proposed = 0

    @property
    def n_cv(self) -> int:
        """Number of CVs."""
        return len(self.lower_list)

    def uniform(self, n: int) -> torch.Tensor:
        """``n`` i.i.d. uniform points of the box, ``(n, n_cv)`` on the CPU (uses the generator)."""
        u = torch.rand(int(n), self.n_cv, generator=self.generator, dtype=self.dtype)
        return self._lower + u * self._width

    def _fold(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Wrap periodic CVs, reflect or flag non-periodic ones; returns (x, inside mask)."""
        rel = x - self._lower
        wrapped = torch.remainder(rel, self._width)
        if self.boundary == "reflect":
            twice = torch.remainder(rel, 2 * self._width)
            folded = torch.where(twice > self._width, 2 * self._width - twice, twice)
            inside = torch.ones(x.shape[0], dtype=torch.bool)
        else:
            folded = rel
            inside = ((rel >= 0) & (rel <= self._width) | self._periodic).all(dim=1)
        return self._lower + torch.where(self._periodic, wrapped, folded), inside

    def run(
        self,
        log_density: Callable[[torch.Tensor], torch.Tensor],
        steps: int,
        record: bool = True,
    ) -> torch.Tensor:
        """Advance every chain ``steps`` Metropolis steps.

        Parameters
        ----------
        log_density : callable
            Maps ``(B, n_cv)`` points (on :attr:`device`) to unnormalised ``ln p`` ``(B,)``.
        steps : int
            Steps per chain (>= 1).
        record : bool
            Return the visited states (False: burn-in, returns an empty tensor).

        Returns
        -------
        torch.Tensor
            The chain states after each step, ``(steps * chains, n_cv)`` on
            :attr:`device`, step-major (rows ``j*n_chains … (j+1)*n_chains − 1`` are step j).
        """
        n_steps = int(steps)
        if n_steps < 1:
            raise ValueError(f"steps must be >= 1, got {n_steps}")

        def logp(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                out = torch.as_tensor(log_density(x.to(self.device)))
            out = out.detach().to("cpu", torch.float64).reshape(-1)
            if out.numel() != x.shape[0]:
                raise ValueError(f"log_density returned {out.numel()} values for {x.shape[0]} points")
            return out

        if self.positions is None:
            self.positions = self.uniform(self.n_chains)
        x = self.positions
        lp = logp(x)
        if torch.isnan(lp).any():
            raise ValueError("log_density is NaN at a chain state")
        recorded, accepted = [], 0
        for _ in range(n_steps):
            noise = torch.randn(x.shape, generator=self.generator, dtype=self.dtype)
            log_u = torch.log(torch.rand(x.shape[0], generator=self.generator, dtype=torch.float64))
            proposal, inside = self._fold(x + self._sigma * noise)
            lp_new = logp(proposal)
            accept = inside & (log_u < lp_new - lp)  # NaN ln p' never accepted
            x = torch.where(accept[:, None], proposal, x)
            lp = torch.where(accept, lp_new, lp)
            accepted += int(accept.sum())
            if record:
                recorded.append(x)
        self.positions = x
        proposed = n_steps * self.n_chains
        self.acceptance_rate = accepted / proposed
        self.n_accepted += accepted
        self.n_proposed += proposed
        if not record:
            return torch.empty(0, self.n_cv, dtype=self.dtype, device=self.device)
        return torch.cat(recorded).to(self.device)

    def state_dict(self) -> dict[str, Any]:
        """Chains, generator state and counters (independent copies)."""
        return {
            "n_chains": self.n_chains, "lower": list(self.lower_list), "upper": list(self.upper_list),
            "periodic": list(self.periodic_list), "step_size": list(self.step_size_list),
            "boundary": self.boundary,
            "positions": None if self.positions is None else self.positions.clone(),
            "generator": self.generator.get_state().clone(),
            "acceptance_rate": self.acceptance_rate,
            "n_accepted": self.n_accepted, "n_proposed": self.n_proposed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (ValueError if the domain, chains or moves differ)."""
        for key, mine in (("n_chains", self.n_chains), ("lower", self.lower_list),
                          ("upper", self.upper_list), ("periodic", self.periodic_list),
                          ("step_size", self.step_size_list), ("boundary", self.boundary)):
            if state.get(key) != mine:
                raise ValueError(f"sampler state has {key}={state.get(key)!r}, this sampler has {mine!r}")
        pos = state["positions"]
        self.positions = None if pos is None else pos.detach().to("cpu", self.dtype).clone()
        self.generator.set_state(state["generator"].clone())
        self.acceptance_rate = float(state["acceptance_rate"])
        self.n_accepted, self.n_proposed = int(state["n_accepted"]), int(state["n_proposed"])
