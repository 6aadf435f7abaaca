"""Parameter gradient, graph mini-batching and the training loop of the DiffSim bias.

The momentum adjoints ã_k of the partial (detached-position) adjoint, see
:mod:`.langevin`, give the parameter gradient

.. math::

    \\frac{dL}{d\\theta} = \\Delta t \\sum_{k=L-K}^{L-1} [\\partial_\\theta F_{bias}(R_k;\\theta)]^T ã_k ,

truncated to the window of ``K`` pairs ``(R_k, ã_k)``, ``k ≥ 1`` (the force at
``R_0`` is never used). For a batch the objective is the mean loss over the B
replicas, so every pair carries the factor ``dt / B``. Graph mini-batching
(paper Sec. 3.3): all pairs of an epoch are computed with the weights at the
start of the epoch, pairs with ``‖ã‖ ≈ 0`` are dropped, the rest shuffled and
split into batches; each batch gives one optimizer step on
``S = (dt/B) Σ ⟨F_bias(R_k; θ), ã_k⟩`` (ã fixed), whose gradient summed over
all batches equals ``∇θ mean(L)``.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Callable, List, Optional

import torch

from .._units import KB
from .adjoint import AdjointPairs, partial_adjoint
from .langevin import LangevinSimulator, make_force_fn
from .streaming import forward_for_adjoint
from .wells import Well, loss_position_gradient

__all__ = ["EpochResult", "DiffSimTrainer", "bias_gradient", "minibatch_updates", "maxwell_boltzmann_velocities"]

EnergyFn = Callable[[torch.Tensor], torch.Tensor]


def maxwell_boltzmann_velocities(masses: torch.Tensor, temperature: float, n_replicas: int,
                                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Draw Maxwell–Boltzmann velocities ``(n_replicas, N, 3)`` in nm/ps.

    Parameters
    ----------
    masses : torch.Tensor
        ``(N,)`` masses in amu; the output has its dtype and device.
    temperature : float
        Temperature in K.
    n_replicas : int
        Number of replicas B.
    generator : torch.Generator, optional
        Random generator on the masses' device.

    Returns
    -------
    torch.Tensor
        ``(B, N, 3)`` velocities with per-component variance ``k_B T / M``.

    Examples
    --------
    >>> v = maxwell_boltzmann_velocities(torch.ones(2, dtype=torch.float64), 300.0, 4)
    >>> v.shape
    torch.Size([4, 2, 3])
    """
    T = float(temperature)
    if not (math.isfinite(T) and T >= 0):
        raise ValueError(f"temperature must be non-negative (K), got {temperature!r}")
    if int(n_replicas) < 1:
        raise ValueError(f"n_replicas must be >= 1, got {n_replicas!r}")
    sigma = torch.sqrt(KB * T / masses)[None, :, None]
    noise = torch.randn((int(n_replicas), masses.shape[0], 3), generator=generator,
                        dtype=masses.dtype, device=masses.device)
    return sigma * noise


def _surrogate(pairs_R: torch.Tensor, pairs_a: torch.Tensor, bias_energy: EnergyFn,
               scale: float) -> torch.Tensor:
    x = pairs_R.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(bias_energy(x).sum(), x, create_graph=True)
    return scale * (-g * pairs_a.detach()).sum()


def bias_gradient(pairs: AdjointPairs, bias_energy: EnergyFn, parameters, timestep: float,
                  n_replicas: int = 1, chunk: int = 4096) -> List[torch.Tensor]:
    """Exact window gradient ``(dt/B) Σ_pairs (∂F_bias(R_k)/∂θ)ᵀ ã_k`` (no optimizer step).

    Parameters
    ----------
    pairs : AdjointPairs
        From :func:`partial_adjoint`.
    bias_energy : callable
        ``B(x; θ)``, positions ``(P, N, 3)`` nm → ``(P,)`` kJ/mol.
    parameters : iterable of torch.Tensor
        θ.
    timestep : float
        ps.
    n_replicas : int, optional
        B of the mean loss (default 1).
    chunk : int, optional
        Pairs per autograd call.

    Returns
    -------
    list of torch.Tensor
        ``dL/dθ`` per parameter (zeros if there are no pairs).

    Examples
    --------
    >>> from openmm_nnbias.diffsim import AdjointPairs
    >>> w = torch.tensor(2.0, requires_grad=True)
    >>> pairs = AdjointPairs(torch.ones(1, 1, 3), torch.ones(1, 1, 3), torch.zeros(1, dtype=torch.long),
    ...                      torch.ones(1, dtype=torch.long), 1, 0)
    >>> round(bias_gradient(pairs, lambda x: 0.5 * w * (x ** 2).sum((-2, -1)), [w], timestep=0.1)[0].item(), 6)
    -0.3
    """
    params = list(parameters)
    grads = [torch.zeros_like(p) for p in params]
    scale = float(timestep) / int(n_replicas)
    with torch.enable_grad():
        for s in range(0, len(pairs), chunk):
            S = _surrogate(pairs.positions[s:s + chunk], pairs.adjoints[s:s + chunk], bias_energy, scale)
            gs = torch.autograd.grad(S, params, allow_unused=True)
            grads = [acc + (g if g is not None else 0.0) for acc, g in zip(grads, gs)]
    return grads


def minibatch_updates(pairs: AdjointPairs, bias_energy: EnergyFn, optimizer: torch.optim.Optimizer,
                      timestep: float, n_replicas: int, batch_size: int = 120,
                      generator: Optional[torch.Generator] = None,
                      max_grad_norm: Optional[float] = None) -> int:
    """Graph mini-batching: shuffle the pairs, one optimizer step per batch of ``batch_size`` pairs.

    Each step minimizes ``S = (dt/B) Σ_batch ⟨F_bias(R_k; θ), ã_k⟩`` with ã fixed (see module
    docstring); ``timestep`` in ps, ``n_replicas`` = B. Returns the number of optimizer steps.

    Examples
    --------
    >>> from openmm_nnbias.diffsim import AdjointPairs
    >>> w = torch.nn.Parameter(torch.tensor(2.0))
    >>> pairs = AdjointPairs(torch.ones(5, 1, 3), torch.ones(5, 1, 3), torch.zeros(5, dtype=torch.long),
    ...                      torch.ones(5, dtype=torch.long), 1, 0)
    >>> minibatch_updates(pairs, lambda x: 0.5 * w * (x ** 2).sum((-2, -1)), torch.optim.SGD([w], lr=1.0),
    ...                   timestep=0.1, n_replicas=1, batch_size=2)
    3
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    n = len(pairs)
    if n == 0:
        return 0
    order = torch.randperm(n, generator=generator).to(pairs.positions.device)
    scale = float(timestep) / int(n_replicas)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    n_steps = 0
    for s in range(0, n, int(batch_size)):
        sel = order[s:s + int(batch_size)]
        optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad():
            _surrogate(pairs.positions[sel], pairs.adjoints[sel], bias_energy, scale).backward()
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, float(max_grad_norm))
        optimizer.step()
        n_steps += 1
    return n_steps


@dataclass
class EpochResult:
    """Summary of one training epoch (``mean_loss`` and ``success_fraction`` are of the forward run
    made with the weights at the start of the epoch)."""

    epoch: int
    mean_loss: float
    success_fraction: float
    n_active: int
    n_pairs: int
    n_updates: int
    window_steps: int
    n_vjp_calls: int
    n_steps: int
    wall_time_s: float

    def to_dict(self) -> dict:
        return asdict(self)


class DiffSimTrainer:
    """Train a :class:`~openmm_nnbias.bias.NeuralBias` over a CVSet by differentiable simulation.

    Parameters
    ----------
    potential : callable
        Physical energy ``(B, N, 3) → (B,)`` (e.g. :class:`OpenMMTorchEnergy`).
    cvs : CVSet
        CVs ξ; the bias is ``bias(cvs(x))``.
    bias : NeuralBias
        Trainable network (dtype must equal the simulation dtype).
    masses : torch.Tensor
        ``(N,)`` amu.
    target_well : Well
        Product well (loss target and success criterion).
    start_positions : torch.Tensor
        ``(N, 3)`` or a pool ``(P, N, 3)`` of reactant configurations (nm); each epoch
        draws ``n_replicas`` of them. Sets dtype and device of the simulation.
    temperature : float
        K.
    timestep, friction : float, optional
        ps, 1/ps (defaults 0.001 and 0.1 as the authors' Müller–Brown runs).
    n_steps, n_replicas, adjoint_steps, batch_size : int, optional
        Trajectory length (6000), replicas (300), adjoint window K (190) and pairs per
        mini-batch (120), the authors' values.
    lr : float, optional
        Adam learning rate (1e-3).
    random_targets : bool, optional
        Per trajectory, a random sample of the target well as ξ_target (paper); else its mean.
    drop_rtol : float, optional
        Pairs with ``‖ã‖ ≤ drop_rtol·max‖ã‖`` are dropped (1e-10).
    max_grad_norm : float, optional
        Clip each mini-batch gradient.
    storage_device : torch.device, optional
        Where the kept positions are stored (default: the simulation device).
    storage : {"window", "full"}, optional
        ``"window"`` (default): K + 2 frames per replica (:mod:`.streaming`); ``"full"``: every frame.
    seed : int, optional
        Seeds the noise and the sampling/shuffling generators (default 0).

    Examples
    --------
    >>> import math
    >>> from openmm_nnbias.bias import NeuralBias
    >>> from openmm_nnbias.cvs import CVSet, Position
    >>> from openmm_nnbias.systems import MuellerBrownEnergy
    >>> cvs = CVSet([Position([0, 0], ["x", "y"], -2.0, 2.0)])
    >>> net = NeuralBias.from_cvs(cvs, hidden=(8,), seed=0)
    >>> well = Well(torch.tensor([0.62, 0.03], dtype=torch.float64), 0.01 * torch.eye(2, dtype=torch.float64),
    ...             [math.inf, math.inf], 0.1, 4.6)
    >>> tr = DiffSimTrainer(MuellerBrownEnergy(), cvs, net, torch.ones(1, dtype=torch.float64), well,
    ...                     torch.tensor([[-0.558, 1.442, 0.0]], dtype=torch.float64), temperature=300.0,
    ...                     friction=10.0, n_steps=20, n_replicas=2, adjoint_steps=5, batch_size=4)
    >>> res = tr.train_epoch()
    >>> res.epoch, res.window_steps
    (1, 5)
    """

    def __init__(self, potential: EnergyFn, cvs, bias, masses: torch.Tensor, target_well: Well,
                 start_positions: torch.Tensor, *, temperature: float, timestep: float = 0.001,
                 friction: float = 0.1, n_steps: int = 6000, n_replicas: int = 300,
                 adjoint_steps: int = 190, batch_size: int = 120, lr: float = 1e-3,
                 random_targets: bool = True, drop_rtol: float = 1e-10,
                 max_grad_norm: Optional[float] = None, storage_device=None, seed: int = 0,
                 storage: str = "window"):
        start = torch.as_tensor(start_positions)
        if start.ndim == 2:
            start = start[None]
        if start.ndim != 3 or start.shape[-1] != 3 or not torch.is_floating_point(start):
            raise ValueError(f"start_positions must be a float tensor (N, 3) or (P, N, 3), got {tuple(start.shape)}")
        for name, v in (("n_steps", n_steps), ("n_replicas", n_replicas), ("adjoint_steps", adjoint_steps),
                        ("batch_size", batch_size)):
            if int(v) < 1:
                raise ValueError(f"{name} must be >= 1, got {v!r}")
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be positive, got {lr!r}")
        if cvs.n_cvs != bias.n_cvs or cvs.n_cvs != target_well.dim:
            raise ValueError(f"dimension mismatch: cvs {cvs.n_cvs}, bias {bias.n_cvs}, well {target_well.dim}")
        cvs.check_system(start.shape[1])
        bias_dtype = next(bias.parameters()).dtype
        if bias_dtype != start.dtype:
            raise ValueError(f"bias parameters are {bias_dtype} but start_positions {start.dtype}; "
                             "build NeuralBias(dtype=...) to match the simulation dtype")
        self.device, self.dtype = start.device, start.dtype
        self.cvs = cvs.to(self.device)
        self.bias = bias.to(self.device)
        if isinstance(potential, torch.nn.Module):
            potential = potential.to(self.device)
        self.potential = potential
        self.masses = torch.as_tensor(masses).to(self.device, self.dtype)
        self.target_well = target_well
        self.start_positions = start
        self.n_steps, self.n_replicas = int(n_steps), int(n_replicas)
        self.adjoint_steps, self.batch_size = int(adjoint_steps), int(batch_size)
        self.random_targets, self.drop_rtol = bool(random_targets), float(drop_rtol)
        if storage not in ("window", "full"):
            raise ValueError(f"storage must be 'window' or 'full', got {storage!r}")
        self.max_grad_norm, self.storage_device, self.storage = max_grad_norm, storage_device, storage
        self.simulator = LangevinSimulator(potential, self.masses, temperature, timestep, friction,
                                           generator=torch.Generator(device=self.device).manual_seed(int(seed)))
        self.cpu_generator = torch.Generator().manual_seed(int(seed) + 1)
        self.optimizer = torch.optim.Adam(self.bias.parameters(), lr=float(lr))
        self.epoch = 0
        self.history: List[dict] = []
        self.config = {"temperature": float(temperature), "timestep": float(timestep), "friction": float(friction),
                       "n_steps": self.n_steps, "n_replicas": self.n_replicas,
                       "adjoint_steps": self.adjoint_steps, "batch_size": self.batch_size, "lr": float(lr),
                       "random_targets": self.random_targets, "drop_rtol": self.drop_rtol,
                       "seed": int(seed), "storage": storage}

    def bias_energy(self, positions: torch.Tensor) -> torch.Tensor:
        """Bias ``B(x) = bias(cvs(x))`` in kJ/mol, ``(B, N, 3) → (B,)``."""
        return self.bias(self.cvs(positions))

    def total_energy(self, positions: torch.Tensor) -> torch.Tensor:
        """``U + B`` in kJ/mol."""
        return self.potential(positions) + self.bias_energy(positions)

    def cv_trajectory(self, positions: torch.Tensor, chunk: int = 256) -> torch.Tensor:
        """CVs ``(T, B, D)`` of stored frames ``(T, B, N, 3)``, evaluated in chunks without a graph."""
        with torch.no_grad():
            return torch.cat([self.cvs(positions[s:s + chunk].to(self.device))
                              for s in range(0, positions.shape[0], chunk)])

    def _initial_state(self):
        pool = self.start_positions
        idx = torch.randint(pool.shape[0], (self.n_replicas,), generator=self.cpu_generator)
        R0 = pool[idx.to(pool.device)].to(self.device)
        V0 = maxwell_boltzmann_velocities(self.masses, self.simulator.temperature, self.n_replicas,
                                          generator=self.simulator.generator)
        return R0, V0

    def _targets(self) -> torch.Tensor:
        w = self.target_well
        if self.random_targets and w.samples is not None:
            pick = torch.randint(w.samples.shape[0], (self.n_replicas,), generator=self.cpu_generator)
            return w.samples[pick].to(self.device, self.dtype)
        return w.mean.to(self.device, self.dtype).expand(self.n_replicas, -1)

    def train_epoch(self) -> EpochResult:
        """One epoch: forward run, Eq. 5 loss, partial adjoint, graph mini-batched Adam steps."""
        t0 = time.perf_counter()
        R0, V0 = self._initial_state()
        target = self._targets()
        run = forward_for_adjoint(self.simulator, R0, V0, self.n_steps, self.bias_energy, self.cvs,
                                  self.target_well, target, self.adjoint_steps, storage=self.storage,
                                  storage_device=self.storage_device)
        res, frames, B = run.loss, run.local_frames, self.n_replicas
        active = (~res.entered) & (res.loss_frame >= 1)
        R_loss = run.positions[frames, torch.arange(B)].to(self.device)
        loss_grad = loss_position_gradient(self.cvs, R_loss, target, self.target_well.period)
        pairs = partial_adjoint(run.positions, frames, loss_grad, self.masses, self.simulator.timestep,
                                self.simulator.friction, make_force_fn(self.total_energy),
                                self.adjoint_steps, active.to("cpu"))
        pairs.step = pairs.step + run.offset[pairs.replica]  # global step indices
        del run
        pairs = pairs.drop_small(self.drop_rtol)
        n_updates = minibatch_updates(pairs, self.bias_energy, self.optimizer, self.simulator.timestep, B,
                                      self.batch_size, self.cpu_generator, self.max_grad_norm)
        self.epoch += 1
        out = EpochResult(epoch=self.epoch, mean_loss=float(res.loss.mean()),
                          success_fraction=float(res.entered.double().mean()), n_active=int(active.sum()),
                          n_pairs=len(pairs), n_updates=n_updates, window_steps=pairs.window_steps,
                          n_vjp_calls=pairs.n_vjp_calls, n_steps=self.n_steps,
                          wall_time_s=time.perf_counter() - t0)
        self.history.append(out.to_dict())
        return out

    def train(self, n_epochs: int, checkpoint_dir: Optional[str] = None,
              callback: Optional[Callable[[EpochResult], None]] = None) -> List[EpochResult]:
        """Run ``n_epochs`` epochs; optionally write ``epoch_XXXX.pt`` and ``latest.pt`` after each."""
        if int(n_epochs) < 0:
            raise ValueError(f"n_epochs must be >= 0, got {n_epochs!r}")
        results = []
        for _ in range(int(n_epochs)):
            r = self.train_epoch()
            results.append(r)
            if checkpoint_dir is not None:
                os.makedirs(checkpoint_dir, exist_ok=True)
                state = self.state_dict()
                torch.save(state, os.path.join(checkpoint_dir, f"epoch_{self.epoch:04d}.pt"))
                torch.save(state, os.path.join(checkpoint_dir, "latest.pt"))
            if callback is not None:
                callback(r)
        return results

    def state_dict(self) -> dict:
        """Network, Adam state, epoch, RNG states, history, config and target well."""
        return {"epoch": self.epoch, "bias": copy.deepcopy(self.bias.state_dict()),
                "bias_config": self.bias.config(), "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "sim_rng": self.simulator.generator.get_state(), "cpu_rng": self.cpu_generator.get_state(),
                "history": list(self.history), "config": dict(self.config),
                "target_well": self.target_well.to_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` (the trainer must be built with the same bias architecture)."""
        missing = {"epoch", "bias", "optimizer", "sim_rng", "cpu_rng"} - set(state)
        if missing:
            raise ValueError(f"state dict lacks {sorted(missing)}")
        self.bias.load_state_dict(state["bias"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.simulator.generator.set_state(state["sim_rng"])
        self.cpu_generator.set_state(state["cpu_rng"])
        self.epoch = int(state["epoch"])
        self.history = list(state.get("history", []))

    def export(self, path: str) -> None:
        """Write the trained bias as TorchScript (positions → kJ/mol), see :func:`~openmm_nnbias.bias.export_bias`."""
        from openmm_nnbias.bias import export_bias

        export_bias(copy.deepcopy(self.cvs).cpu(), self.bias, path)
