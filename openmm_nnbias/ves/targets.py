"""Target distributions p(s) of Deep-VES on a :class:`~openmm_nnbias.ves.grid.CVGrid`.

* :class:`UniformTarget`: p_i = 1 / n_points (flat sampling of the grid box).
* :class:`WellTemperedTarget`: p ∝ exp(−β F / γ) (Eq. 7 of Bonati et al., PNAS 2019), with
  F estimated self-consistently from the bias by the recursion
  ``F_{n+1} = −V_n + F_n / γ`` (start ``F_0 = 0``), see ``/work/shared/NOTES.md``.

What a run asks for is passed to :class:`~openmm_nnbias.ves.DeepVESUpdater` as one object:
:class:`Uniform` or :class:`WellTempered` on a grid, or :class:`MonteCarlo` (no grid: the target
average of Eq. 10 from Metropolis chains, for many CVs).

Probabilities are discrete bin masses on the grid (they sum to 1), in float64.
"""

from __future__ import annotations

from typing import Any

import torch

from .grid import CVGrid

__all__ = ["UniformTarget", "WellTemperedTarget", "TargetChoice", "Uniform", "WellTempered", "MonteCarlo"]


class _GridTarget:
    """Common machinery: float64 tensors on the grid's device."""

    kind = "base"

    def __init__(self, grid: CVGrid) -> None:
        if not isinstance(grid, CVGrid):
            raise ValueError(f"grid must be a CVGrid, got {type(grid).__name__}")
        self.grid = grid
        self._free_energy = torch.zeros(grid.n_points, dtype=torch.float64, device=grid.device)
        self._probabilities = torch.full_like(self._free_energy, 1.0 / grid.n_points)
        self.n_updates = 0

    @property
    def probabilities(self) -> torch.Tensor:
        """Target bin masses p_i, shape ``(n_points,)``, float64, summing to 1."""
        return self._probabilities

    @property
    def free_energy(self) -> torch.Tensor:
        """Current free-energy estimate F_n on the grid, ``(n_points,)``, kJ/mol.

        Not shifted (the recursion needs the raw values); only differences are meaningful.
        """
        return self._free_energy

    def _check_values(self, bias_values_on_grid: torch.Tensor) -> torch.Tensor:
        v = torch.as_tensor(bias_values_on_grid).detach()
        v = v.to(device=self._free_energy.device, dtype=torch.float64).reshape(-1)
        if v.numel() != self.grid.n_points:
            raise ValueError(
                f"bias_values_on_grid must have {self.grid.n_points} values (one per grid "
                f"point), got {v.numel()}"
            )
        if not torch.isfinite(v).all():
            raise ValueError("bias_values_on_grid contains NaN or inf")
        return v

    def update(self, bias_values_on_grid: torch.Tensor) -> None:  # pragma: no cover
        raise NotImplementedError

    def to(self, device: torch.device | str) -> "_GridTarget":
        """Move the tensors to ``device`` in place and return ``self``."""
        self._free_energy = self._free_energy.to(device)
        self._probabilities = self._probabilities.to(device)
        return self

    def _config(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_points": self.grid.n_points}

    def state_dict(self) -> dict[str, Any]:
        """Independent copy of the state (tensors cloned)."""
        return {
            "config": self._config(),
            "free_energy": self._free_energy.detach().clone(),
            "probabilities": self._probabilities.detach().clone(),
            "n_updates": int(self.n_updates),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict`.

        Raises
        ------
        ValueError
            If the stored kind, grid size, bias factor or kT differ from this target's.
        """
        config = state.get("config", {})
        mine = self._config()
        for key, value in mine.items():
            if key not in config:
                raise ValueError(f"target state lacks config entry {key!r}")
            if config[key] != value:
                raise ValueError(
                    f"target state has {key}={config[key]!r}, this target has {key}={value!r}"
                )
        device = self._free_energy.device
        self._free_energy = state["free_energy"].detach().to(device, torch.float64).clone()
        self._probabilities = state["probabilities"].detach().to(device, torch.float64).clone()
        self.n_updates = int(state["n_updates"])


class UniformTarget(_GridTarget):
    """Uniform target p_i = 1 / n_points over the grid box.

    :meth:`update` is a no-op; :attr:`free_energy` stays ``F_0 = 0`` (this target carries
    no free-energy estimate: use :meth:`DeepVESOptimizer.fes_from_bias` instead).

    Parameters
    ----------
    grid : CVGrid
        Grid over the CV domain.

    Examples
    --------
    >>> from openmm_nnbias.ves import CVGrid
    >>> from openmm_nnbias.ves.targets import UniformTarget
    >>> grid = CVGrid([-3.0], [3.0], [50], [False])
    >>> target = UniformTarget(grid)
    >>> float(target.probabilities.sum())
    1.0
    """

    kind = "uniform"

    def update(self, bias_values_on_grid: torch.Tensor) -> None:
        """No-op (the values are still validated: shape and finiteness)."""
        self._check_values(bias_values_on_grid)


class WellTemperedTarget(_GridTarget):
    """Self-consistent well-tempered target p ∝ exp(−β F / γ) (Eq. 7).

    Each :meth:`update` with the bias V_n on the grid performs

    ``F_{n+1}(s_i) = −V_n(s_i) + F_n(s_i) / γ``,
    ``p_{n+1}(s_i) = exp(−β F_{n+1}(s_i) / γ) / Σ_j exp(−β F_{n+1}(s_j) / γ)``

    (log-sum-exp normalisation), starting from F_0 = 0 (uniform p_0). For a fixed V,
    ``F_n = −V (1 − γ^{−n}) / (1 − 1/γ)`` → ``−γ/(γ−1) V``, i.e. at convergence
    ``F = −V − kT ln p`` (Eq. 4) up to a constant.

    Parameters
    ----------
    grid : CVGrid
        Grid over the CV domain.
    biasFactor : float
        γ > 1 (10 in all examples of the paper); kept as the attribute ``biasFactor``.
    kT : float
        Thermal energy k_B T in kJ/mol (> 0), e.g. 2.494 at 300 K.

    Examples
    --------
    >>> from openmm_nnbias.ves import CVGrid
    >>> from openmm_nnbias.ves.targets import WellTemperedTarget
    >>> grid = CVGrid([-3.0], [3.0], [50], [False])
    >>> target = WellTemperedTarget(grid, biasFactor=10.0, kT=2.494)
    >>> target.update(-0.5 * grid.points[:, 0] ** 2)
    >>> round(float(target.probabilities.sum()), 12)
    1.0
    """

    kind = "well-tempered"

    def __init__(self, grid: CVGrid, biasFactor: float, kT: float) -> None:
        bias_factor = float(biasFactor)
        kT = float(kT)
        if not bias_factor > 1.0 or bias_factor == float("inf"):
            raise ValueError(f"biasFactor must be a finite number > 1, got {bias_factor}")
        if not kT > 0.0 or kT == float("inf"):
            raise ValueError(f"kT must be a finite number > 0 (kJ/mol), got {kT}")
        super().__init__(grid)
        self.biasFactor = bias_factor
        self.kT = kT

    def _config(self) -> dict[str, Any]:
        config = super()._config()
        config.update(bias_factor=self.biasFactor, kT=self.kT)
        return config

    def update(self, bias_values_on_grid: torch.Tensor) -> None:
        """Advance the recursion one step with the current bias V_n on the grid (kJ/mol).

        Raises
        ------
        ValueError
            If the number of values differs from ``grid.n_points`` or any is not finite.
        """
        v = self._check_values(bias_values_on_grid)
        gamma = self.biasFactor
        self._free_energy = -v + self._free_energy / gamma
        logits = -self._free_energy / (self.kT * gamma)
        self._probabilities = torch.exp(logits - torch.logsumexp(logits, dim=0))
        self.n_updates += 1


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _bias_factor(value, allow_none: bool):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"biasFactor must be a number{' or None' if allow_none else ''}, got {type(value).__name__}")
    if not (value > 1 and value < float("inf")):
        raise ValueError(f"biasFactor must be a finite number > 1, got {value}")
    return float(value)


class TargetChoice:
    """The target distribution a Deep-VES run asks for (built by the updater for its CVs and kT)."""

    def describe(self) -> dict[str, Any]:
        """Plain description (part of a checkpoint's run configuration)."""
        return {"kind": type(self).__name__, **self.__dict__}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.__dict__.items())})"

    def __eq__(self, other) -> bool:
        return isinstance(other, TargetChoice) and self.describe() == other.describe()

    def _bins(self, n_cv: int) -> list[int]:
        bins = self.bins
        bins = [bins] * n_cv if isinstance(bins, int) else list(bins)
        if len(bins) != n_cv:
            raise ValueError(f"bins must be one int or one per CV ({n_cv}), got {self.bins}")
        return bins

    def optimizer_args(self, cvs, kT: float) -> dict[str, Any]:  # pragma: no cover - overridden
        """Keyword arguments of :class:`~openmm_nnbias.ves.DeepVESOptimizer` for the CV set ``cvs``."""
        raise NotImplementedError


class Uniform(TargetChoice):
    """Flat target on a grid of ``bins`` bins per CV (one int, or one per CV).

    >>> Uniform(bins=50)
    Uniform(bins=50)
    """

    def __init__(self, bins=50) -> None:
        self.bins = _positive_int("bins", bins) if not isinstance(bins, (list, tuple)) else \
            [_positive_int("bins", b) for b in bins]

    def optimizer_args(self, cvs, kT: float) -> dict[str, Any]:
        grid = CVGrid(cvs.lower, cvs.upper, self._bins(cvs.n_cvs), cvs.periodic)
        return {"grid": grid, "target": "uniform", "marginalBins": grid.bins_list[0]}


class WellTempered(Uniform):
    """Well-tempered target p ∝ exp(−βF/γ) on a grid (the paper's choice; γ = ``biasFactor``).

    >>> WellTempered(biasFactor=10, bins=50)
    WellTempered(bins=50, biasFactor=10.0)
    """

    def __init__(self, biasFactor: float = 10.0, bins=50) -> None:
        super().__init__(bins)
        self.biasFactor = _bias_factor(biasFactor, allow_none=False)

    def optimizer_args(self, cvs, kT: float) -> dict[str, Any]:
        args = super().optimizer_args(cvs, kT)
        args.update(target="well-tempered", biasFactor=self.biasFactor)
        return args


class MonteCarlo(TargetChoice):
    """No grid: the target average of Eq. 10 from ``chains`` Metropolis chains of ``steps`` steps per iteration.

    ``biasFactor`` γ of a well-tempered target, or None for a uniform one; ``stepSize`` per CV
    (rad, nm; default a fraction of the box); ``marginalBins``: bins per CV of the marginal-KL
    monitor. For many CVs (the paper's tetrapeptide: 20 000 points, 6 torsions).

    >>> MonteCarlo(biasFactor=10, chains=1000, steps=10).chains
    1000
    """

    def __init__(self, biasFactor: float | None = 10.0, chains: int = 2000, steps: int = 10,
                 stepSize=None, seed: int = 0, marginalBins: int = 50, burnIn: int = 50,
                 stepFraction: float = 0.08, boundary: str = "reflect") -> None:
        self.biasFactor = _bias_factor(biasFactor, allow_none=True)
        self.chains = _positive_int("chains", chains)
        self.steps = _positive_int("steps", steps)
        self.stepSize = stepSize
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.seed = seed
        self.marginalBins = _positive_int("marginalBins", marginalBins)
        self.burnIn, self.stepFraction, self.boundary = int(burnIn), float(stepFraction), boundary

    def optimizer_args(self, cvs, kT: float) -> dict[str, Any]:
        from .montecarlo import MonteCarloTarget

        sampler = MonteCarloTarget(cvs.lower, cvs.upper, cvs.periodic, kT, self.biasFactor, chains=self.chains,
                                   steps=self.steps, stepSize=self.stepSize, seed=self.seed, burnIn=self.burnIn,
                                   stepFraction=self.stepFraction, boundary=self.boundary)
        return {"grid": None, "targetSampler": sampler, "marginalBins": self.marginalBins}
