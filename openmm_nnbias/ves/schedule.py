"""KL-divergence monitor (Eq. 12) and the three-phase learning-rate schedule of Deep-VES.

Phases (Bonati, Zhang & Parrinello, PNAS 2019): constant learning rate while the running
KL divergence between the biased histogram and the target is ≥ ε; then every iteration with
KL < ε multiplies the learning rate by (1 − 1/τ_decay); once lr/lr_0 < ``freezeRatio``
(5e-5) the bias is frozen for good.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["KLMonitor", "LearningRateSchedule"]

_PHASES = ("learning", "decaying", "frozen")


class KLMonitor:
    """Exponentially decaying biased histogram h and its KL divergence to the target.

    Every :meth:`update` with the counts c_i of the N samples of one iteration does
    ``h ← h + (c/N − h)/τ``, i.e. the recursion ``h ← h + (c − N h)/τ'`` of the reference
    implementation with τ' = N τ (there τ is multiplied by the stride), so τ is in
    iterations. h starts at 0 and is normalised when the KL is computed; normalisation
    removes the start-up factor ``1 − (1 − 1/τ)^n``, so h̃ is at every iteration the properly
    weighted exponential average of the per-iteration histograms (iteration n−k has weight
    ∝ (1 − 1/τ)^k), with no over-weight of the first iteration.

    Parameters
    ----------
    n_points : int
        Number of grid bins.
    tau : float
        Averaging time τ_KL in iterations (>= 1; 1 keeps only the last iteration).
    device : torch.device or str, optional
        Device of the float64 histogram.

    Examples
    --------
    >>> import torch
    >>> from openmm_nnbias.ves.schedule import KLMonitor
    >>> monitor = KLMonitor(n_points=2, tau=100)
    >>> monitor.update(torch.tensor([3.0, 1.0]))
    >>> round(monitor.kl(torch.tensor([0.5, 0.5])), 6)  # 0.75 ln 1.5 + 0.25 ln 0.5
    0.130812
    """

    def __init__(self, n_points: int, tau: float, device: torch.device | str | None = None) -> None:
        n_points = int(n_points)
        tau = float(tau)
        if n_points < 1:
            raise ValueError(f"n_points must be >= 1, got {n_points}")
        if not (tau >= 1.0 and math.isfinite(tau)):
            raise ValueError(f"tau must be a finite number >= 1 (iterations), got {tau}")
        self.n_points = n_points
        self.tau = tau
        self.histogram = torch.zeros(n_points, dtype=torch.float64, device=device)
        self.n_updates = 0

    def update(self, counts: torch.Tensor) -> None:
        """Fold in the counts ``(n_points,)`` of one iteration (no-op if they sum to 0)."""
        counts = torch.as_tensor(counts).detach().to(self.histogram.device, torch.float64)
        counts = counts.reshape(-1)
        if counts.numel() != self.n_points:
            raise ValueError(f"counts must have {self.n_points} entries, got {counts.numel()}")
        if not torch.isfinite(counts).all() or (counts < 0).any():
            raise ValueError("counts must be finite and non-negative")
        total = counts.sum()
        if not total > 0:
            return
        self.histogram = self.histogram + (counts / total - self.histogram) / self.tau
        self.n_updates += 1

    def normalized_histogram(self) -> torch.Tensor:
        """h̃ = h / Σh, ``(n_points,)`` (all NaN before the first non-empty update)."""
        return self.histogram / self.histogram.sum()

    def kl(self, target_probabilities: torch.Tensor) -> float:
        """D_KL(h̃ ‖ p̃) = Σ_i h̃_i ln(h̃_i / p̃_i) (dimensionless, >= 0).

        Both are normalised; bins with h̃_i = 0 contribute 0; p̃ is clamped to the smallest
        positive float64 so that a visited bin with p̃_i = 0 gives a large finite term.
        Returns ``nan`` before the first non-empty :meth:`update`.
        """
        p = torch.as_tensor(target_probabilities).detach().to(self.histogram.device, torch.float64)
        p = p.reshape(-1)
        if p.numel() != self.n_points:
            raise ValueError(f"target_probabilities must have {self.n_points} entries, got {p.numel()}")
        if (p < 0).any() or not p.sum() > 0:
            raise ValueError("target_probabilities must be non-negative with a positive sum")
        if not self.histogram.sum() > 0:
            return float("nan")
        h = self.normalized_histogram()
        p = torch.clamp(p / p.sum(), min=torch.finfo(torch.float64).tiny)
        terms = torch.where(h > 0, h * (torch.log(h) - torch.log(p)), torch.zeros_like(h))
        return float(terms.sum())

    def to(self, device: torch.device | str) -> "KLMonitor":
        """Move the histogram to ``device`` in place and return ``self``."""
        self.histogram = self.histogram.to(device)
        return self

    def state_dict(self) -> dict[str, Any]:
        """Independent copy of the state."""
        return {
            "n_points": self.n_points,
            "tau": self.tau,
            "histogram": self.histogram.detach().clone(),
            "n_updates": self.n_updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (ValueError if n_points differs)."""
        if int(state["n_points"]) != self.n_points:
            raise ValueError(f"state has n_points={state['n_points']}, monitor has {self.n_points}")
        self.tau = float(state["tau"])
        self.histogram = state["histogram"].detach().to(self.histogram.device, torch.float64).clone()
        self.n_updates = int(state["n_updates"])


class LearningRateSchedule:
    """Three-phase learning-rate schedule: "learning" → "decaying" → "frozen".

    :meth:`step` is called once per iteration with that iteration's KL divergence:

    * "learning": lr = lr0 while ``kl >= klThreshold`` (or ``kl`` is None / NaN). The first
      iteration with ``kl < klThreshold`` is recorded in :attr:`iteration_threshold_reached`,
      switches to "decaying" and already counts as one decay.
    * "decaying": each iteration with ``kl < klThreshold`` — or with ``kl=None`` (no
      monitor) — multiplies the scale by (1 − 1/τ_decay); an iteration with ``kl >= ε``
      (or NaN) leaves the scale unchanged. The scale is computed as
      ``(1 − 1/τ_decay) ** n_decays`` from an integer count (exact, restart-safe).
    * "frozen": as soon as ``scale < freezeRatio``; lr = 0 from then on, for good
      (:attr:`iteration_frozen` records when).

    With n decays needed, ``n = ceil(ln(1/freezeRatio) / −ln(1 − 1/τ_decay)) ≈ 9.9 τ_decay``
    for the default ratio. Without a KL monitor (many CVs) call :meth:`start_decay` by hand.
    The options are kept as the attributes ``lr0``, ``kl_threshold``, ``tau_decay`` and
    ``freeze_ratio`` (the keys of :meth:`state_dict`).

    Parameters
    ----------
    learningRate : float
        Initial learning rate lr0 (> 0).
    klThreshold : float
        ε, the KL threshold (> 0).
    tauDecay : float
        Decay time τ_decay in iterations (>= 1).
    freezeRatio : float
        Freeze once lr / lr0 < freezeRatio (0 < ratio < 1).

    Examples
    --------
    >>> from openmm_nnbias.ves.schedule import LearningRateSchedule
    >>> schedule = LearningRateSchedule(learningRate=1e-3, klThreshold=0.5, tauDecay=2, freezeRatio=0.2)
    >>> [schedule.step(kl) for kl in (0.9, 0.3, 0.9, 0.3, 0.3)]
    [0.001, 0.0005, 0.0005, 0.00025, 0.0]
    >>> schedule.phase, schedule.iteration_threshold_reached, schedule.iteration_frozen
    ('frozen', 1, 4)
    """

    def __init__(
        self,
        learningRate: float = 1e-3,
        klThreshold: float = 0.5,
        tauDecay: float = 1000,
        freezeRatio: float = 5e-5,
    ) -> None:
        lr0, kl_threshold = float(learningRate), float(klThreshold)
        tau_decay, freeze_ratio = float(tauDecay), float(freezeRatio)
        if not (lr0 > 0 and math.isfinite(lr0)):
            raise ValueError(f"learningRate must be a finite number > 0, got {lr0}")
        if not kl_threshold > 0:
            raise ValueError(f"klThreshold must be > 0, got {kl_threshold}")
        if not (tau_decay >= 1 and math.isfinite(tau_decay)):
            raise ValueError(f"tauDecay must be a finite number >= 1 (iterations), got {tau_decay}")
        if not 0 < freeze_ratio < 1:
            raise ValueError(f"freezeRatio must be in (0, 1), got {freeze_ratio}")
        self.lr0 = lr0
        self.kl_threshold = kl_threshold
        self.tau_decay = tau_decay
        self.freeze_ratio = freeze_ratio
        self.phase = "learning"
        self.n_decays = 0
        self.n_steps = 0
        self.iteration_threshold_reached: int | None = None
        self.iteration_frozen: int | None = None

    @property
    def scale(self) -> float:
        """lr / lr0 (0 once frozen)."""
        if self.phase == "frozen":
            return 0.0
        return (1.0 - 1.0 / self.tau_decay) ** self.n_decays

    @property
    def decays_to_freeze(self) -> int:
        """Decaying iterations from the KL threshold to the freeze: the least n with (1 − 1/τ)ⁿ < ratio.

        The first iteration below the threshold is one of them, so with the KL below the threshold
        from then on the bias freezes at iteration ``iteration_threshold_reached + n − 1``; iterations
        with the KL back above it postpone the freeze. For τ_decay = 2 000 and the default ratio
        5·10⁻⁵, n = 19 803.

        >>> LearningRateSchedule(tauDecay=2, freezeRatio=0.2).decays_to_freeze
        3
        """
        q = 1.0 - 1.0 / self.tau_decay
        if q <= 0.0:  # tau_decay == 1: the first decay already gives scale 0
            return 1
        n = max(1, math.ceil(math.log(self.freeze_ratio) / math.log(q)))
        while q ** n >= self.freeze_ratio:  # the same power as `scale`, so rounding agrees with step()
            n += 1
        while n > 1 and q ** (n - 1) < self.freeze_ratio:
            n -= 1
        return n

    @property
    def lr(self) -> float:
        """Current learning rate (0 once frozen)."""
        return self.lr0 * self.scale

    @property
    def frozen(self) -> bool:
        """True once the schedule has frozen the bias."""
        return self.phase == "frozen"

    def start_decay(self, iteration: int | None = None) -> None:
        """Switch "learning" → "decaying" by hand (no-op in the other phases).

        Use it when no KL monitor is available (e.g. many CVs, Metropolis target), after
        repeated recrossings between metastable states; then pass ``kl=None`` to :meth:`step`.
        """
        if self.phase == "learning":
            self.phase = "decaying"
            if self.iteration_threshold_reached is None:
                self.iteration_threshold_reached = self.n_steps if iteration is None else int(iteration)

    def step(self, kl: float | None, iteration: int | None = None) -> float:
        """Advance one iteration and return the learning rate for the next update.

        Parameters
        ----------
        kl : float or None
            This iteration's KL divergence; None means "no monitor" (decay every iteration
            once in "decaying"); NaN counts as "not below threshold".
        iteration : int, optional
            Iteration label recorded in the ``iteration_*`` attributes (default: the number of
            previous :meth:`step` calls).
        """
        it = self.n_steps if iteration is None else int(iteration)
        self.n_steps += 1
        if self.phase == "frozen":
            return 0.0
        below = kl is not None and float(kl) < self.kl_threshold
        if self.phase == "learning" and below:
            self.phase = "decaying"
            self.iteration_threshold_reached = it
        if self.phase == "decaying" and (below or kl is None):
            self.n_decays += 1
            if self.scale < self.freeze_ratio:
                self.phase = "frozen"
                self.iteration_frozen = it
        return self.lr

    def state_dict(self) -> dict[str, Any]:
        """Plain-Python copy of the state (configuration included)."""
        return {
            "lr0": self.lr0,
            "kl_threshold": self.kl_threshold,
            "tau_decay": self.tau_decay,
            "freeze_ratio": self.freeze_ratio,
            "phase": self.phase,
            "n_decays": self.n_decays,
            "n_steps": self.n_steps,
            "iteration_threshold_reached": self.iteration_threshold_reached,
            "iteration_frozen": self.iteration_frozen,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (ValueError on an unknown phase)."""
        if state["phase"] not in _PHASES:
            raise ValueError(f"phase must be one of {_PHASES}, got {state['phase']!r}")
        self.lr0 = float(state["lr0"])
        self.kl_threshold = float(state["kl_threshold"])
        self.tau_decay = float(state["tau_decay"])
        self.freeze_ratio = float(state["freeze_ratio"])
        self.phase = state["phase"]
        self.n_decays = int(state["n_decays"])
        self.n_steps = int(state["n_steps"])
        thr, frz = state["iteration_threshold_reached"], state["iteration_frozen"]
        self.iteration_threshold_reached = None if thr is None else int(thr)
        self.iteration_frozen = None if frz is None else int(frz)
