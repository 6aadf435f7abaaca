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

from .metropolis import MetropolisSampler
from .omega import evaluate_bias

__all__ = ["MetropolisSampler", "MonteCarloTarget"]


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

