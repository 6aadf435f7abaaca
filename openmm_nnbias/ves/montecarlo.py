"""Metropolis Monte Carlo target average for Deep-VES over many CVs (no grid).

With many CVs a grid is unaffordable (50^6 points), so ``⟨∂V/∂w⟩_p`` of Eq. 10 (Bonati,
Zhang & Parrinello, PNAS 2019) is averaged over Metropolis samples of p(s) with equal
weights (the authors: 20 000–25 000 points per iteration for Ala4, see ``NOTES.md``).
:class:`MetropolisSampler` runs persistent batched chains; :class:`MonteCarloTarget` is the
optimizer's target: well-tempered ``p ∝ exp(βV/(γ−1))`` for the current network (the fixed
point of the grid recursion ``F ← −V + F/γ``, ``p ∝ e^{−βF/γ}``) or uniform (i.i.d. points).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

from .omega import evaluate_bias

__all__ = ["MetropolisSampler", "MonteCarloTarget"]


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


class MonteCarloTarget:
    """Target p(s) represented by Monte Carlo samples, for many CVs.

    :meth:`draw` returns fresh samples of p for the *current* bias: for the well-tempered
    target ``p(s) ∝ exp(βV(s)/(γ−1))`` (``steps`` Metropolis steps of ``chains``
    persistent chains, ``chains * steps`` points, each with weight ``1/M``); for the
    uniform target (``biasFactor=None``) the same number of i.i.d. uniform points.
    :class:`~openmm_nnbias.ves.DeepVESOptimizer` passes them to
    :func:`~openmm_nnbias.ves.omega.omega_loss` in place of grid points with weights p_i.
    The options are kept as the attributes ``biasFactor``, ``n_steps``, ``burn_in`` (and the
    sampler's ``n_chains``, ``step_size_list``); :meth:`state_dict` keeps γ under the key
    ``bias_factor``, as in checkpoints written before.

    Parameters
    ----------
    lower, upper, periodic : sequences
        CV box (rad, nm) and periodicity, e.g. a :class:`~openmm_nnbias.bias.NeuralBias`'s
        ``lower``, ``upper``, ``periodic`` (see :meth:`from_bias`).
    kT : float
        Thermal energy in kJ/mol (> 0).
    biasFactor : float or None
        γ > 1 of the well-tempered target; None for a uniform target.
    chains, steps : int
        Chains and recorded steps per :meth:`draw` (default 2000 × 10 = 20 000 points).
    burnIn : int
        Unrecorded steps before the first draw (chains start uniform, which is already the
        well-tempered target of a zero bias).
    stepSize, stepFraction, boundary, seed :
        Passed to :class:`MetropolisSampler`.
    device : torch.device or str, optional
        Device of the returned samples.

    Examples
    --------
    >>> import math, torch
    >>> from openmm_nnbias.bias import NeuralBias
    >>> from openmm_nnbias.ves.montecarlo import MonteCarloTarget
    >>> bias = NeuralBias([True] * 6, [-math.pi] * 6, [math.pi] * 6, seed=0)
    >>> target = MonteCarloTarget.from_bias(bias, kT=2.494, biasFactor=10.0, chains=500, steps=4)
    >>> target.draw(bias).shape, target.probabilities.shape
    (torch.Size([2000, 6]), torch.Size([2000]))
    """

    def __init__(self, lower: Sequence[float], upper: Sequence[float], periodic: Sequence[bool],
                 kT: float, biasFactor: float | None = 10.0, chains: int = 2000, steps: int = 10,
                 burnIn: int = 50, stepSize: float | Sequence[float] | None = None,
                 stepFraction: float = 0.08, boundary: str = "reflect", seed: int = 0,
                 device: torch.device | str | None = None) -> None:
        kT = float(kT)
        if not (kT > 0 and math.isfinite(kT)):
            raise ValueError(f"kT must be a finite number > 0 (kJ/mol), got {kT}")
        bias_factor = biasFactor
        if bias_factor is not None:
            bias_factor = float(bias_factor)
            if not (bias_factor > 1 and math.isfinite(bias_factor)):
                raise ValueError(f"biasFactor must be a finite number > 1 (or None), got {bias_factor}")
        n_steps, burn_in = int(steps), int(burnIn)
        if n_steps < 1 or burn_in < 0:
            raise ValueError(f"need steps >= 1 and burnIn >= 0, got {n_steps}, {burn_in}")
        self.sampler = MetropolisSampler(lower, upper, periodic, chains, stepSize, stepFraction,
                                         boundary, seed, torch.float64, device)
        self.kT = kT
        self.biasFactor = bias_factor
        self.kind = "uniform-mc" if bias_factor is None else "well-tempered-mc"
        self.n_steps = n_steps
        self.burn_in = burn_in
        self.points: torch.Tensor | None = None
        self.n_updates = 0
        self.n_cv = self.sampler.n_cv
        self.lower_list, self.upper_list = self.sampler.lower_list, self.sampler.upper_list
        self.periodic_list = self.sampler.periodic_list

    @classmethod
    def from_bias(cls, bias: torch.nn.Module, kT: float, biasFactor: float | None = 10.0,
                  grid: Any = None, **kwargs: Any) -> "MonteCarloTarget":
        """Target over the box of ``grid`` (a :class:`~openmm_nnbias.ves.CVGrid`) if given, else
        over the declared box of ``bias`` (``lower``, ``upper``, ``periodic``, as on
        :class:`~openmm_nnbias.bias.NeuralBias`); ``kwargs``: ``chains``, ``steps``, ``burnIn``, …"""
        if grid is not None:
            return cls(grid.lower_list, grid.upper_list, grid.periodic_list, kT, biasFactor, **kwargs)
        if not all(hasattr(bias, a) for a in ("lower", "upper", "periodic")):
            raise ValueError("bias has no lower/upper/periodic attributes; pass a grid or a targetSampler")
        return cls(list(bias.lower), list(bias.upper), list(bias.periodic), kT, biasFactor, **kwargs)

    @property
    def n_samples(self) -> int:
        """Points per :meth:`draw` (``chains * steps``)."""
        return self.sampler.n_chains * self.n_steps

    @property
    def probabilities(self) -> torch.Tensor:
        """Equal weights ``1/M`` of the last draw, ``(M,)`` float64."""
        m = self.n_samples if self.points is None else self.points.shape[0]
        return torch.full((m,), 1.0 / m, dtype=torch.float64, device=self.sampler.device)

    @property
    def acceptance_rate(self) -> float:
        """Acceptance of the last draw (1.0 for the uniform target, NaN before any draw)."""
        return self.sampler.acceptance_rate

    def log_density(self, bias: torch.nn.Module,
                    evaluate: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
        """Unnormalised ``ln p(s) = βV(s)/(γ−1)`` of the current bias (0 for uniform).

        ``evaluate(s)`` → V(s) (kJ/mol) replaces ``bias(s)`` when given, e.g. the optimizer's
        mixed-precision :class:`~openmm_nnbias.ves.evaluation.BiasEvaluator`.
        """
        if self.biasFactor is None:
            return lambda s: torch.zeros(s.shape[0], dtype=torch.float64)
        scale = 1.0 / (self.kT * (self.biasFactor - 1.0))
        if evaluate is None:
            return lambda s: evaluate_bias(bias, s).to(torch.float64) * scale
        return lambda s: evaluate(s).reshape(-1).to(torch.float64) * scale

    def draw(self, bias: torch.nn.Module,
             evaluate: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """New samples ``(M, n_cv)`` (float64, on ``device``) of p for the current ``bias``
        (``evaluate``: as in :meth:`log_density`)."""
        if self.biasFactor is None:
            self.points = self.sampler.uniform(self.n_samples).to(self.sampler.device)
            self.sampler.acceptance_rate = 1.0
        else:
            logp = self.log_density(bias, evaluate)
            if self.sampler.positions is None and self.burn_in:
                self.sampler.run(logp, self.burn_in, record=False)
            self.points = self.sampler.run(logp, self.n_steps)
        self.n_updates += 1
        return self.points

    def to(self, device: torch.device | str) -> "MonteCarloTarget":
        """Move the returned samples to ``device`` (random numbers stay on the CPU)."""
        self.sampler.device = torch.device(device)
        if self.points is not None:
            self.points = self.points.to(device)
        return self

    def _config(self) -> dict[str, Any]:
        return {"kind": self.kind, "kT": self.kT, "bias_factor": self.biasFactor,
                "n_steps": self.n_steps, "burn_in": self.burn_in}

    def state_dict(self) -> dict[str, Any]:
        """Configuration, sampler state (chains, generator) and the last samples."""
        return {"config": self._config(), "sampler": self.sampler.state_dict(),
                "points": None if self.points is None else self.points.detach().cpu().clone(),
                "n_updates": self.n_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (ValueError if kind, kT, γ, steps or the domain differ)."""
        for key, value in self._config().items():
            if state.get("config", {}).get(key) != value:
                raise ValueError(f"target state has {key}={state.get('config', {}).get(key)!r}, "
                                 f"this target has {value!r}")
        self.sampler.load_state_dict(state["sampler"])
        pts = state["points"]
        self.points = None if pts is None else pts.to(self.sampler.device, torch.float64).clone()
        self.n_updates = int(state["n_updates"])

