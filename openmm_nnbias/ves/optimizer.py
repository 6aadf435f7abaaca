"""The Deep-VES iteration: Adam on the Eq. 10 gradient, target update, KL-driven schedule."""

from __future__ import annotations

import math
from typing import Any

import torch

from .adam import gradient_norm, guarded_adam_step, make_adam
from .averaging import AveragedFES, WindowedFES
from .evaluation import BiasEvaluator
from .grid import CVGrid
from .monitors import RecrossingMonitor, build_target
from .montecarlo import MonteCarloTarget
from .omega import bias_normalization, omega_loss_from_values
from .optimizer_state import OptimizerCheckpoint
from .schedule import LearningRateSchedule
from .triggers import advance_schedule

__all__ = ["DeepVESOptimizer"]


class DeepVESOptimizer(OptimizerCheckpoint):
    """Deep-VES optimiser of a neural-network bias (Bonati, Zhang & Parrinello, PNAS 2019).

    Owns Adam over the trainable ``bias.parameters()``, the target distribution on ``grid``,
    the :class:`KLMonitor`, the :class:`LearningRateSchedule` and the iteration counter.
    Call :meth:`step` once per iteration (e.g. every 500 MD steps) with the CVs sampled
    during that iteration. The bias parameters are updated **in place**.

    Order of operations in :meth:`step` (iteration n = :attr:`iteration` before the call):

    1. validation: NaN/inf or no samples -> nothing changes except the iteration counter,
       result has ``skipped=True`` and a ``reason`` (never raises for that);
    2. histogram of the samples (non-periodic samples outside the grid are left out of the
       histogram, counted in ``n_out_of_range``, but kept for the gradient) -> KL monitor ->
       ``kl`` (against the target in force during the iteration);
    3. if not frozen and n > 0: Eq. 10 gradient by autograd of :func:`omega_loss` (samples
       and current target), Adam step with ``lr = schedule.lr`` (the rate set by the previous
       iterations); a non-finite loss/gradient/new parameter rolls bias and Adam back and
       sets ``skipped=True`` (then steps 4-5 are skipped too);
    4.-5. if a step was taken: target update with the *new* bias, then the schedule step
       (:func:`~openmm_nnbias.ves.triggers.advance_schedule`), which sets the next lr.

    On iteration 0 (as in the reference code) only the KL monitor is updated; once frozen too.

    Parameters
    ----------
    bias : torch.nn.Module
        Maps CVs ``(B, n_cv)`` to bias energies ``(B,)`` in kJ/mol.
    grid : CVGrid or None
        Target grid (moved in place to the bias's device); None: Monte Carlo target (below)
        over the box of ``bias`` (``lower``/``upper``/``periodic``, as on NeuralBias).
    kT : float
        Thermal energy k_B T in kJ/mol.
    target : {"well-tempered", "uniform", "well-tempered-mc", "uniform-mc"}
        Target distribution; ``-mc`` (implied by ``grid=None``): no grid, the Eq. 10 target
        average over :class:`MonteCarloTarget` samples (2000 chains × 10 steps), the KL of
        the schedule from :class:`MarginalKLMonitor` (max over 1-D marginals, a lower bound of
        the full KL: choose a smaller ``klThreshold``), c(t) from the samples.
    biasFactor : float
        γ of the well-tempered target (> 1).
    learningRate, betas : float, tuple of float
        Initial Adam learning rate lr0 and Adam betas.
    outputLearningRateScale : float
        The output layer (``bias.layers[-1]``, e.g. of a :class:`~openmm_nnbias.bias.NeuralBias`)
        steps at this multiple of the schedule's rate (default 1). For Adam, whose steps do not
        depend on the gradient's size, 10 is the same as V = 10 × network: the bias grows 10×
        faster from its V = 0 start while the hidden layers move V as before.
    tauKL, klThreshold, tauDecay, freezeRatio : float
        Averaging time of the KL histogram and decay time (iterations), ε, and the freeze once
        lr/lr0 < freezeRatio.
    device : torch.device or str, optional
        If given, the bias is moved there (in place); default: the device of its parameters.
    targetSampler, marginalBins : MonteCarloTarget (optional), int
        Explicit Monte Carlo target (implies "-mc", its kind wins); bins per CV of the monitor.
    recrossing : RecrossingMonitor, optional
        Paper's rule: decay phase once it is satisfied (then every iteration decays, KL only reported).
    useKL, decayAfter : bool, int
        Decay only on iterations with KL < ``klThreshold`` (default: without ``recrossing``); no decay
        before iteration ``decayAfter``. :meth:`DecayTrigger.resolve` gives all four from one object.
    computeDtype : torch.dtype or {"mixed", "double"}, optional
        dtype of the network passes (default: the parameters'); ``torch.float32``/``"mixed"`` for float64
        parameters is mixed precision, see :class:`~openmm_nnbias.ves.evaluation.BiasEvaluator`.
    reducer : openmm_nnbias.ves.walkers.WalkerGroup, optional
        Multiple walkers: initial weights from walker 0, then every iteration the pooled
        histogram counts, Eq. 10 gradient and skip decision of all walkers (identical weights).

    Examples
    --------
    >>> import torch
    >>> from openmm_nnbias.ves import CVGrid, DeepVESOptimizer
    >>> class Bias(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.net = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    ...     def forward(self, s):
    ...         return self.net(s).squeeze(-1)
    >>> _ = torch.manual_seed(0)
    >>> grid = CVGrid([-3.0], [3.0], [50], [False])
    >>> opt = DeepVESOptimizer(Bias().double(), grid, kT=1.0, tauKL=10)
    >>> for _ in range(3):
    ...     stats = opt.step(torch.randn(500, 1, dtype=torch.float64))
    >>> stats["iteration"], stats["updated"], stats["skipped"]
    (2, True, False)
    """

    def __init__(
        self,
        bias: torch.nn.Module,
        grid: CVGrid | None,
        kT: float,
        target: str = "well-tempered",
        biasFactor: float = 10.0,
        learningRate: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        outputLearningRateScale: float = 1.0,
        tauKL: float = 10000,
        klThreshold: float = 0.5,
        tauDecay: float = 1000,
        freezeRatio: float = 5e-5,
        device: torch.device | str | None = None,
        reducer: Any = None,
        targetSampler: MonteCarloTarget | None = None,
        marginalBins: int = 50,
        recrossing: RecrossingMonitor | None = None,
        computeDtype: torch.dtype | str | None = None,
        useKL: bool | None = None,
        decayAfter: int = 0,
    ) -> None:
        if not isinstance(bias, torch.nn.Module):
            raise ValueError(f"bias must be a torch.nn.Module, got {type(bias).__name__}")
        if grid is not None and not isinstance(grid, CVGrid):
            raise ValueError(f"grid must be a CVGrid or None, got {type(grid).__name__}")
        if recrossing is not None and not isinstance(recrossing, RecrossingMonitor):
            raise ValueError(f"recrossing must be a RecrossingMonitor, got {type(recrossing).__name__}")
        kT = float(kT)
        if not (kT > 0 and math.isfinite(kT)):
            raise ValueError(f"kT must be a finite number > 0 (kJ/mol), got {kT}")
        if device is not None:
            bias.to(device)
        self._params = [p for p in bias.parameters() if p.requires_grad]
        if not self._params:
            raise ValueError("bias has no trainable parameters")
        ref = self._params[0]
        if not ref.dtype.is_floating_point:
            raise ValueError(f"bias parameters must be floating point, got {ref.dtype}")
        self.bias = bias
        self.evaluator = BiasEvaluator(bias, self._params, computeDtype)
        self.device = ref.device
        self.dtype = ref.dtype
        self.kT = kT
        self.grid, self.target, self.kl_monitor = build_target(
            bias, grid, kT, target, biasFactor, targetSampler, marginalBins, tauKL, self.device)
        self.target_kind = target if self.grid is not None else self.target.kind
        self.n_cv = self.target.n_cv if self.grid is None else self.grid.n_cv
        self.recrossing = recrossing
        self.use_kl = recrossing is None if useKL is None else bool(useKL)
        self.decay_after = int(decayAfter)
        self.schedule = LearningRateSchedule(learningRate, klThreshold, tauDecay, freezeRatio)
        betas = (float(betas[0]), float(betas[1]))
        self.outputLearningRateScale = _output_scale(outputLearningRateScale)
        scaled = _output_parameters(bias) if self.outputLearningRateScale != 1.0 else []
        self.adam = make_adam(self._params, self.schedule.lr, betas, scaled, self.outputLearningRateScale)
        self.betas = betas
        self.iteration = 0
        self.n_updates = 0
        self.fes_average = None if self.grid is None else AveragedFES(self.grid.n_points)
        self.fes_window = None if self.grid is None else WindowedFES(self.grid.n_points)
        self.reducer = reducer
        if reducer is not None:
            reducer.broadcast_parameters(self._params)

    # ------------------------------------------------------------------ properties
    @property
    def frozen(self) -> bool:
        """True once the schedule has frozen the bias (no more parameter updates)."""
        return self.schedule.frozen

    @property
    def phase(self) -> str:
        """Schedule phase: "learning", "decaying" or "frozen"."""
        return self.schedule.phase

    @property
    def lr(self) -> float:
        """Learning rate the next Adam step will use (0 once frozen)."""
        return self.schedule.lr

    def bias_on_grid(self) -> torch.Tensor:
        """V at the grid points, ``(n_points,)`` float64 on the grid's device, kJ/mol."""
        if self.grid is None:
            raise ValueError("this optimizer has no grid (Monte Carlo target)")
        v = self.evaluator.grid(self.grid.points, graph=False)
        return v.detach().to(self.grid.device, torch.float64)

    def averaged_fes_from_bias(self) -> torch.Tensor | None:
        """Eq. 4 averaged uniformly over the updating iterations of the decay phase
        (:class:`~openmm_nnbias.ves.averaging.AveragedFES`), min 0, kJ/mol, on the CPU; None before."""
        return None if self.fes_average is None else self.fes_average.fes()

    def windowed_fes_from_bias(self) -> torch.Tensor | None:
        """Eq. 4 averaged uniformly over the updating iterations of the last quarter of the run so far
        (:class:`~openmm_nnbias.ves.averaging.WindowedFES`), min 0, kJ/mol, on the CPU; None before."""
        return None if self.fes_window is None else self.fes_window.fes()

    def fes_from_bias(self) -> torch.Tensor:
        """F = −V − kT ln p on the grid (Eq. 4), shifted to min 0, kJ/mol.

        Returns a float64 tensor ``(n_points,)`` on the grid's device (``.cpu().numpy()``
        for numpy, ``.reshape(grid.shape)`` for the array over the CVs); bins with p = 0 are
        ``+inf``. With the well-tempered target this equals ``−V + F_n/γ`` + const.
        """
        p = self.target.probabilities
        fes = -self.bias_on_grid() - self.kT * torch.log(p)
        finite = torch.isfinite(fes)
        return fes - fes[finite].min()

    # ------------------------------------------------------------------ iteration
    def step(self, samples: torch.Tensor) -> dict[str, Any]:
        """Run one Deep-VES iteration on the CVs ``samples`` ``(N, n_cv)`` of that iteration.

        ``samples`` may live on any device and have any floating dtype; they are moved to the
        bias's device and dtype (histogramming uses the grid's float64).

        Returns
        -------
        dict
            Plain Python values: ``iteration`` (index of this call), ``loss`` (kJ/mol, L(w)
            before the step), ``grad_norm`` (norm of the Eq. 10 gradient, NaN when not
            computed), ``kl`` (running D_KL after folding in these samples), ``lr`` (rate
            used by this iteration's Adam step, 0.0 if none), ``lr_next`` (rate for the next
            one), ``c`` (c(t) of the bias and target in force after the call, kJ/mol),
            ``phase`` (after the call), ``updated`` (whether Adam stepped), ``skipped`` and
            ``reason`` ("" unless skipped), ``n_samples``, ``n_out_of_range``.

        Raises
        ------
        ValueError
            If ``samples`` does not have shape ``(N, n_cv)`` (``(N,)`` is accepted for 1 CV).
        """
        samples = self._as_samples(samples)
        it = self.iteration
        self.iteration += 1
        stats: dict[str, Any] = {
            "iteration": it, "loss": math.nan, "grad_norm": math.nan, "kl": math.nan,
            "lr": 0.0, "lr_next": self.schedule.lr, "c": math.nan, "phase": self.phase,
            "updated": False, "skipped": False, "reason": "",
            "n_samples": int(samples.shape[0]), "n_out_of_range": 0,
        }
        reason = self._unusable(samples, it)
        if reason:
            return self._skip(stats, reason)
        points, samples = self._monitor(samples, stats)  # 2. KL monitor
        reason = self._learn(samples, points, stats, it)  # 3. Eq. 10 gradient and Adam step
        if reason:
            return self._skip(stats, reason)
        reason = self._update_target(points, stats, it)  # 4.-5. target, then the schedule
        if reason:  # pragma: no cover - params are finite
            return self._skip(stats, reason)
        stats["lr_next"] = self.schedule.lr
        stats["phase"] = self.phase
        return stats

    def _as_samples(self, samples) -> torch.Tensor:
        """``samples`` as a tensor ``(N, n_cv)`` (ValueError for another shape)."""
        samples = torch.as_tensor(samples)
        if samples.ndim == 1 and self.n_cv == 1:
            samples = samples.reshape(-1, 1)
        if samples.ndim != 2 or samples.shape[1] != self.n_cv:
            raise ValueError(f"samples must have shape (N, {self.n_cv}), got {tuple(samples.shape)}")
        return samples

    def _unusable(self, samples: torch.Tensor, it: int) -> str:
        """Why this iteration's samples cannot be used ("" if they can); walkers agree on it."""
        if self.reducer is not None:  # all walkers skip together, or the collectives below would not match
            reason = self.reducer.agree_on_samples(samples, it, self.frozen)
            if reason:
                return reason
        if samples.shape[0] == 0:
            return "no samples"
        bad_rows = int((~torch.isfinite(samples).all(dim=1)).sum())
        if bad_rows:
            return f"non-finite CV values in {bad_rows} of {samples.shape[0]} samples"
        return ""

    def _monitor(self, samples: torch.Tensor, stats: dict[str, Any]) -> tuple:
        """Fold ``samples`` into the KL monitor (target of the iteration that produced them), in float64.

        Returns the target points (the grid, or the Monte Carlo draws) and the samples on the
        optimizer's device and dtype; sets ``stats["kl"]`` and the out-of-range count.
        """
        if self.grid is None:  # Monte Carlo target of the current bias, marginal histograms
            points = self.target.draw(self.bias, evaluate=self.evaluator)  # Metropolis in the compute dtype
            stats["mc_acceptance"] = self.target.acceptance_rate
            counts = self.kl_monitor.histogram(samples)
            stats["n_out_of_range"] = self.kl_monitor.n_out_of_range
        else:
            points = self.grid.points
            counts = self.grid.histogram(samples, out_of_range="ignore")
            stats["n_out_of_range"] = int(samples.shape[0] - round(float(counts.sum())))
        samples = samples.to(device=self.device, dtype=self.dtype)
        if self.reducer is not None:
            counts = self.reducer.pool_counts(counts)  # histogram of all walkers' samples
        self.kl_monitor.update(counts)
        stats["kl"] = self.kl_monitor.kl(points if self.grid is None else self.target.probabilities)
        if self.recrossing is not None:
            self.recrossing.update(samples, None if self.reducer is None else self.reducer.pool_counts)
        return points, samples

    def _learn(self, samples: torch.Tensor, points, stats: dict[str, Any], it: int) -> str:
        """The Eq. 10 loss, its gradient and the Adam step (the loss alone once frozen); "" or why skipped.

        The grid pass of the target term comes from the end of the previous iteration.
        """
        p = self.target.probabilities
        on_grid = self.grid is not None
        if self.frozen:
            with torch.no_grad():
                v_target = self.evaluator.grid(points, graph=False) if on_grid else self.evaluator(points)
                stats["loss"] = float(omega_loss_from_values(self.evaluator(samples), v_target.detach(), p))
            return ""
        self.adam.zero_grad(set_to_none=True)
        v_target = self.evaluator.grid(points, graph=True) if on_grid else self.evaluator(points)
        loss = omega_loss_from_values(self.evaluator(samples), v_target, p)
        self.evaluator.backward(loss)
        stats["loss"] = float(loss.detach())
        if self.reducer is not None:  # gradient and loss of the pooled samples of all walkers
            stats["loss"] = self.reducer.average_gradients(self._params, stats["loss"], samples.shape[0], it)
        stats["grad_norm"] = gradient_norm(self._params)
        if it > 0:
            if not (math.isfinite(stats["loss"]) and math.isfinite(stats["grad_norm"])):
                self.adam.zero_grad(set_to_none=True)
                return "non-finite loss or gradient; no update"
            lr = self.schedule.lr
            stepped = guarded_adam_step(self.adam, self._params, lr)
            self.evaluator.weights_changed()
            if not stepped:
                self.adam.zero_grad(set_to_none=True)
                return "non-finite parameters after the Adam step; rolled back"
            stats["lr"] = lr
            stats["updated"] = True
            self.n_updates += 1
        self.adam.zero_grad(set_to_none=True)
        return ""

    def _update_target(self, points, stats: dict[str, Any], it: int) -> str:
        """Target update with the new bias, the schedule, the decay-phase FES average and c(t); "" or why not."""
        on_grid = self.grid is not None
        with torch.no_grad():  # gridless: c(t) of the new bias over this iteration's target samples
            if not on_grid:
                v_grid = self.evaluator(points).double()
            elif stats["updated"]:  # new weights: the grid pass of the next iteration's loss, graph kept
                v_grid = self.evaluator.prepare_grid(points).detach().to(self.grid.device, torch.float64)
            else:
                v_grid = self.bias_on_grid()
        if stats["updated"]:
            if not torch.isfinite(v_grid).all():  # pragma: no cover - params are finite
                return "non-finite bias on the grid; target not updated"
            if on_grid:
                self.target.update(v_grid)
            advance_schedule(self.schedule, stats["kl"], it, self.use_kl, self.decay_after, self.recrossing)
            if on_grid:  # Eq. 4 of the new bias: into the window average and, in the decay phase, the uniform one
                fes = -v_grid - self.kT * torch.log(self.target.probabilities)
                self.fes_window.update(it, fes)
                if self.phase != "learning":
                    self.fes_average.update(fes, 1.0)
        if torch.isfinite(v_grid).all():
            stats["c"] = bias_normalization(v_grid, self.target.probabilities, self.kT)
        return ""

    def _skip(self, stats: dict[str, Any], reason: str) -> dict[str, Any]:
        stats["skipped"] = True
        stats["reason"] = reason
        stats["lr_next"] = self.schedule.lr
        stats["phase"] = self.phase
        return stats


def _output_scale(value) -> float:
    """``outputLearningRateScale`` checked: a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"outputLearningRateScale must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"outputLearningRateScale must be a finite number > 0, got {value}")
    return float(value)


def _output_parameters(bias: torch.nn.Module) -> list:
    """The trainable parameters of the bias's output layer, ``bias.layers[-1]`` (ValueError if it has none)."""
    layers = getattr(bias, "layers", None)
    last = layers[-1] if isinstance(layers, (torch.nn.ModuleList, torch.nn.Sequential)) and len(layers) else None
    params = [] if last is None else [p for p in last.parameters() if p.requires_grad]
    if not params:
        raise ValueError("outputLearningRateScale needs a bias whose output layer is bias.layers[-1] "
                         f"(a NeuralBias); {type(bias).__name__} has none")
    return params
