"""Convergence monitors for Deep-VES without a grid over the full CV space.

* :class:`MarginalKLMonitor` — the KL divergence of Eq. 12 on low-dimensional marginals:
  for every monitored marginal (each single CV, optionally chosen CV pairs) a running biased
  histogram h (same recursion and τ_KL as :class:`~openmm_nnbias.ves.schedule.KLMonitor`) is compared
  with the histogram of the Monte Carlo samples of the current target p. The reported value
  is the largest of these KLs. By the data-processing inequality each marginal KL is a lower
  bound of the full KL, so a threshold tuned for a full 2-D KL (ε = 0.5 for Ala2) is loose
  here: use a smaller ε (the marginals of an unconverged run are typically 0.1–1).
* :func:`build_target` — target and monitor of a :class:`~openmm_nnbias.ves.DeepVESOptimizer`.
* :class:`RecrossingMonitor` — the paper's rule for the high-dimensional case: switch to
  the decay phase after every monitored CV has made N transitions between given states
  (e.g. the sign of each φ), counted with hysteresis (a transition is an entry into a state
  other than the last one visited).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

from .grid import CVGrid
from .montecarlo import MonteCarloTarget
from .schedule import KLMonitor
from .targets import UniformTarget, WellTemperedTarget

__all__ = ["MarginalKLMonitor", "RecrossingMonitor", "build_target"]


class MarginalKLMonitor:
    """Running KL divergence between biased and target marginal histograms.

    Parameters
    ----------
    lower, upper, periodic : sequences
        CV box (rad, nm) and periodicity (periodic values are wrapped; non-periodic values
        outside ``[lower, upper]`` are left out of the histograms and counted).
    bins : int
        Bins per CV of every marginal histogram.
    tau : float
        Averaging time τ_KL of the biased histograms, in iterations (>= 1).
    pairs : sequence of (int, int)
        Extra 2-D marginals (CV index pairs) besides all 1-D ones.
    pseudo_count : float
        Added to each bin of the target histogram (default 0.5) so that an empty target bin
        gives a large but finite term.

    Attributes
    ----------
    marginals : list of tuple of int
        The monitored CV index tuples, in the order of :attr:`last_kl`.
    last_kl : list of float
        KL of each marginal at the last :meth:`kl` call.
    n_out_of_range : int
        Samples left out by the last :meth:`update`.

    Examples
    --------
    >>> import math, torch
    >>> from openmm_nnbias.ves.monitors import MarginalKLMonitor
    >>> monitor = MarginalKLMonitor([-math.pi] * 2, [math.pi] * 2, [True, True], bins=10, tau=1)
    >>> g = torch.Generator().manual_seed(0)
    >>> target = (torch.rand(20000, 2, generator=g, dtype=torch.float64) - 0.5) * 2 * math.pi
    >>> monitor.update(monitor.histogram(0.3 * torch.randn(1000, 2, generator=g, dtype=torch.float64)))
    >>> monitor.kl(target) > 1.0  # concentrated samples, uniform target
    True
    """

    def __init__(self, lower: Sequence[float], upper: Sequence[float], periodic: Sequence[bool],
                 bins: int = 50, tau: float = 10000, pairs: Sequence[Sequence[int]] = (),
                 pseudo_count: float = 0.5) -> None:
        if not len(lower) == len(upper) == len(periodic) or not len(lower):
            raise ValueError("lower, upper and periodic must be non-empty and of equal length")
        bins = int(bins)
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        if not (pseudo_count > 0 and math.isfinite(pseudo_count)):
            raise ValueError(f"pseudo_count must be a finite number > 0, got {pseudo_count}")
        n_cv = len(lower)
        self.marginals: list[tuple[int, ...]] = [(k,) for k in range(n_cv)]
        for pair in pairs:
            pair = tuple(int(i) for i in pair)
            if len(pair) != 2 or pair[0] == pair[1] or not all(0 <= i < n_cv for i in pair):
                raise ValueError(f"pairs must hold two distinct CV indices in [0, {n_cv}), got {pair}")
            self.marginals.append(pair)
        self.lower = torch.tensor([float(x) for x in lower], dtype=torch.float64)
        self.width = torch.tensor([float(b) - float(a) for a, b in zip(lower, upper)], dtype=torch.float64)
        if not (self.width > 0).all():
            raise ValueError("upper must be > lower for every CV")
        self.periodic = torch.tensor([bool(p) for p in periodic])
        self.bins = bins
        self.pseudo_count = float(pseudo_count)
        self.monitors = [KLMonitor(bins ** len(m), tau) for m in self.marginals]
        self.last_kl: list[float] = [math.nan] * len(self.marginals)
        self.n_out_of_range = 0

    @property
    def tau(self) -> float:
        """Averaging time τ_KL in iterations."""
        return self.monitors[0].tau

    def _bin_index(self, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = torch.as_tensor(samples).detach().to("cpu", torch.float64)
        if s.ndim != 2 or s.shape[1] != len(self.lower):
            raise ValueError(f"samples must have shape (N, {len(self.lower)}), got {tuple(s.shape)}")
        rel = (s - self.lower) / self.width
        rel = torch.where(self.periodic, torch.remainder(rel, 1.0), rel)
        keep = (torch.isfinite(rel) & (rel >= 0) & (rel <= 1)).all(dim=1)
        idx = torch.clamp((rel[keep] * self.bins).floor().long(), 0, self.bins - 1)
        return idx, keep

    def _counts(self, idx: torch.Tensor, marginal: tuple[int, ...]) -> torch.Tensor:
        flat = idx[:, marginal[0]]
        for k in marginal[1:]:
            flat = flat * self.bins + idx[:, k]
        n = self.bins ** len(marginal)
        return torch.bincount(flat, minlength=n).to(torch.float64)

    def histogram(self, samples: torch.Tensor) -> torch.Tensor:
        """Counts of all marginals of ``samples`` ``(N, n_cv)``, concatenated (float64 CPU).

        Sets :attr:`n_out_of_range`. Counts of several walkers may be summed before
        :meth:`update`.
        """
        idx, keep = self._bin_index(samples)
        self.n_out_of_range = int((~keep).sum())
        return torch.cat([self._counts(idx, m) for m in self.marginals])

    def update(self, counts: torch.Tensor) -> None:
        """Fold the concatenated marginal counts of one iteration (from :meth:`histogram`) in."""
        counts = torch.as_tensor(counts).detach().to("cpu", torch.float64).reshape(-1)
        sizes = [m.n_points for m in self.monitors]
        if counts.numel() != sum(sizes):
            raise ValueError(f"counts must have {sum(sizes)} entries, got {counts.numel()}")
        for monitor, part in zip(self.monitors, torch.split(counts, sizes)):
            monitor.update(part)

    def kl(self, target_samples: torch.Tensor) -> float:
        """max over marginals of D_KL(h̃ ‖ p̃), p̃ from ``target_samples`` (NaN before any update)."""
        idx, _ = self._bin_index(target_samples)
        for j, (monitor, marginal) in enumerate(zip(self.monitors, self.marginals)):
            self.last_kl[j] = monitor.kl(self._counts(idx, marginal) + self.pseudo_count)
        return max(self.last_kl) if not any(math.isnan(v) for v in self.last_kl) else math.nan

    def state_dict(self) -> dict[str, Any]:
        """Independent copy of the state."""
        return {"marginals": [list(m) for m in self.marginals], "bins": self.bins,
                "monitors": [m.state_dict() for m in self.monitors],
                "last_kl": list(self.last_kl), "n_out_of_range": self.n_out_of_range}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (ValueError if the marginals or bins differ)."""
        if state["marginals"] != [list(m) for m in self.marginals] or state["bins"] != self.bins:
            raise ValueError("monitor state has different marginals or bins")
        for monitor, st in zip(self.monitors, state["monitors"]):
            monitor.load_state_dict(st)
        self.last_kl = [float(v) for v in state["last_kl"]]
        self.n_out_of_range = int(state["n_out_of_range"])


class RecrossingMonitor:
    """Counts transitions of selected CVs between given states (the paper's decay trigger).

    A sample is in state ``j`` if its CV value lies in interval ``states[j] = (lo, hi)``
    (``lo <= s < hi``; with ``lo > hi`` the interval wraps: ``s >= lo or s < hi``). Samples
    in no state are ignored, which gives hysteresis. A transition is counted whenever a CV
    enters a state other than the last one it visited (memory kept across iterations).
    :attr:`satisfied` is True once every monitored CV has at least ``transitions``. The
    parameters of :class:`~openmm_nnbias.ves.Recrossings` and ``minIterations``; kept as the
    attributes ``cv_indices``, ``states``, ``n_transitions`` and ``min_iterations`` (the keys of
    :meth:`state_dict`).

    Parameters
    ----------
    cvs : sequence of int
        Columns of the samples to monitor (e.g. the three φ of Ala4).
    states : sequence of (float, float)
        At least two disjoint intervals, used for every monitored CV, in CV units.
    transitions : int
        Transitions required per CV (>= 1).
    minIterations : int, optional
        :attr:`satisfied` stays False before this many :meth:`update` calls (iterations),
        whatever the counts: the paper's Ala4 schedule keeps the learning rate constant for
        the first 10 ns (10 000 iterations of 1 ps). Default 0.

    Examples
    --------
    >>> import torch
    >>> from openmm_nnbias.ves.monitors import RecrossingMonitor
    >>> monitor = RecrossingMonitor([0], states=[(-3.0, -0.3), (0.3, 3.0)], transitions=2)
    >>> monitor.update(torch.tensor([[-1.0], [0.0], [1.0], [0.1], [-2.0]]))
    >>> monitor.counts, monitor.satisfied
    ([2], True)
    """

    def __init__(self, cvs: Sequence[int], states: Sequence[Sequence[float]],
                 transitions: int, minIterations: int = 0) -> None:
        self.cv_indices = [int(i) for i in cvs]
        if not self.cv_indices or any(i < 0 for i in self.cv_indices):
            raise ValueError(f"cvs must be non-empty non-negative integers (CV indices), got {cvs}")
        self.states = [(float(a), float(b)) for a, b in states]
        if len(self.states) < 2:
            raise ValueError(f"need at least two states, got {len(self.states)}")
        if any(a == b for a, b in self.states):
            raise ValueError(f"state intervals must have lo != hi, got {self.states}")
        self.n_transitions = int(transitions)
        if self.n_transitions < 1:
            raise ValueError(f"transitions must be >= 1, got {transitions}")
        self.min_iterations = int(minIterations)
        if self.min_iterations < 0:
            raise ValueError(f"minIterations must be >= 0, got {minIterations}")
        self.counts = [0] * len(self.cv_indices)
        self.last_state = [-1] * len(self.cv_indices)
        self.n_updates = 0

    @property
    def satisfied(self) -> bool:
        """True once every monitored CV has made ``transitions`` transitions (and
        ``minIterations`` updates were made)."""
        return self.n_updates >= self.min_iterations and min(self.counts) >= self.n_transitions

    def _state_of(self, values: torch.Tensor) -> torch.Tensor:
        out = torch.full(values.shape, -1, dtype=torch.long)
        for j, (lo, hi) in enumerate(self.states):
            inside = (values >= lo) & (values < hi) if lo < hi else (values >= lo) | (values < hi)
            out = torch.where(inside & (out < 0), torch.full_like(out, j), out)
        return out

    def update(self, samples: torch.Tensor, pool: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        """Count the transitions in the time-ordered samples ``(N, n_cv)`` of one iteration.

        ``pool`` (e.g. ``WalkerGroup.pool_counts``) sums the per-CV transition counts of this
        iteration over walkers, so that all walkers switch to the decay phase together.
        """
        s = torch.as_tensor(samples).detach().to("cpu", torch.float64)
        if s.ndim != 2 or s.shape[1] <= max(self.cv_indices):
            raise ValueError(f"samples must have shape (N, > {max(self.cv_indices)}), got {tuple(s.shape)}")
        new = torch.zeros(len(self.cv_indices), dtype=torch.float64)
        for j, k in enumerate(self.cv_indices):
            visited = self._state_of(s[:, k])
            visited = visited[visited >= 0]
            if visited.numel() == 0:
                continue
            seq = torch.cat([torch.tensor([self.last_state[j]]), visited])
            new[j] = float(((seq[1:] != seq[:-1]) & (seq[:-1] >= 0)).sum())
            self.last_state[j] = int(visited[-1])
        if pool is not None:
            new = pool(new)
        self.counts = [c + int(round(float(x))) for c, x in zip(self.counts, new)]
        self.n_updates += 1

    def state_dict(self) -> dict[str, Any]:
        """Plain-Python copy of the state."""
        return {"cv_indices": list(self.cv_indices), "states": [list(s) for s in self.states],
                "n_transitions": self.n_transitions, "counts": list(self.counts),
                "last_state": list(self.last_state), "min_iterations": self.min_iterations,
                "n_updates": self.n_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (ValueError if it is missing or the CVs or states differ)."""
        if not state:
            raise ValueError("no recrossing-monitor state to load")
        if state["cv_indices"] != self.cv_indices or state["states"] != [list(s) for s in self.states]:
            raise ValueError("recrossing state monitors different CVs or states")
        self.n_transitions = int(state["n_transitions"])
        self.counts = [int(c) for c in state["counts"]]
        self.last_state = [int(c) for c in state["last_state"]]
        self.min_iterations = int(state.get("min_iterations", self.min_iterations))
        self.n_updates = int(state.get("n_updates", 0))


def build_target(bias: torch.nn.Module, grid: CVGrid | None, kT: float, target: str, bias_factor: float,
                 sampler: MonteCarloTarget | None, bins: int, tau_kl: float, device: torch.device):
    """``(grid or None, target, KL monitor)`` of a ``DeepVESOptimizer`` (rules: see there).

    A grid target with :class:`KLMonitor` on the grid, or (``grid=None``, a ``-mc`` target or an
    explicit ``sampler``) a :class:`MonteCarloTarget` with a :class:`MarginalKLMonitor`.
    """
    if target not in ("well-tempered", "uniform", "well-tempered-mc", "uniform-mc"):
        raise ValueError(f"target must be 'well-tempered', 'uniform' or one of them + '-mc', got {target!r}")
    if grid is not None and not sampler and not target.endswith("-mc"):
        grid = grid.to(device)
        if target == "well-tempered":
            return grid, WellTemperedTarget(grid, bias_factor, kT), KLMonitor(grid.n_points, tau_kl, device)
        return grid, UniformTarget(grid), KLMonitor(grid.n_points, tau_kl, device)
    if sampler is None:
        wt = target.startswith("well-tempered")
        sampler = MonteCarloTarget.from_bias(bias, kT, bias_factor if wt else None, grid)
    if not isinstance(sampler, MonteCarloTarget) or sampler.kT != float(kT):
        raise ValueError("targetSampler must be a MonteCarloTarget with the optimizer's kT")
    monitor = MarginalKLMonitor(sampler.lower_list, sampler.upper_list, sampler.periodic_list, bins, tau_kl)
    return None, sampler.to(device), monitor
