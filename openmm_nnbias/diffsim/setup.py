"""Shared parts of the DiffSim setups (:mod:`openmm_nnbias.recipes.diffsim`): the setup record,
unbiased well runs and the assembly of wells, bias network and trainer.

Units: nm, ps, kJ/mol, amu, K.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch

from openmm_nnbias._units import KB
from openmm_nnbias.bias import NeuralBias
from openmm_nnbias.cvs import CVSet

from .langevin import LangevinSimulator
from .training import DiffSimTrainer, maxwell_boltzmann_velocities
from .wells import Well

__all__ = ["DiffSimSetup", "unbiased_well_run", "check_setup_arguments", "assemble_setup"]


@dataclass
class DiffSimSetup:
    """A ready-to-train DiffSim problem.

    Attributes
    ----------
    name : str
    trainer : DiffSimTrainer
        Call ``trainer.train_epoch()``; ``trainer.export(path)`` writes ``bias.pt``.
    potential : torch.nn.Module
        Physical energy ``(B, N, 3)`` nm → ``(B,)`` kJ/mol.
    cvs : CVSet
    bias : NeuralBias
        The trained network (the same object as ``trainer.bias``).
    masses : torch.Tensor
        ``(N,)`` amu.
    reactant_well, product_well : Well
    start_positions : torch.Tensor
        ``(P, N, 3)`` pool of reactant configurations (nm).
    temperature : float
        K.
    info : dict
        Settings and derived numbers (barrier in k_BT, ...), JSON-serializable.
    """

    name: str
    trainer: DiffSimTrainer
    potential: torch.nn.Module
    cvs: CVSet
    bias: NeuralBias
    masses: torch.Tensor
    reactant_well: Well
    product_well: Well
    start_positions: torch.Tensor
    temperature: float
    info: dict = field(default_factory=dict)

    @property
    def kT(self) -> float:
        """k_B T in kJ/mol."""
        return KB * self.temperature


def unbiased_well_run(potential, masses: torch.Tensor, start: torch.Tensor, cvs: CVSet, *,
                      temperature: float, timestep: float, friction: float, n_replicas: int,
                      n_steps: int, equilibration: int, record_every: int = 10, seed: int = 0,
                      period=None, p: float = 0.1):
    """Short unbiased run from one configuration; returns ``(well, frames)``.

    Parameters
    ----------
    potential : callable
        ``(B, N, 3)`` nm → ``(B,)`` kJ/mol.
    masses : torch.Tensor
        ``(N,)`` amu; sets dtype and device.
    start : torch.Tensor
        ``(N, 3)`` start configuration (nm), copied to every replica.
    cvs : CVSet
        CVs of the well.
    temperature, timestep, friction : float
        K, ps, 1/ps.
    n_replicas, n_steps, equilibration, record_every : int
        Frames after step ``equilibration`` (every ``record_every`` steps) are kept.
    seed : int, optional
    period : sequence of float, optional
        CV periods for :meth:`Well.from_samples` (default ``cvs.period()``).
    p : float, optional
        Well tail probability (0.1 → 90 % ellipsoid).

    Returns
    -------
    well : Well
    frames : torch.Tensor
        ``(P, N, 3)`` kept configurations (nm).

    Examples
    --------
    >>> from openmm_nnbias.cvs import Position
    >>> from openmm_nnbias.systems import MuellerBrownEnergy
    >>> cvs = CVSet([Position(0, "x", -1.5, 1.2), Position(0, "y", -0.2, 2.0)])
    >>> m = torch.ones(1, dtype=torch.float64)
    >>> well, frames = unbiased_well_run(MuellerBrownEnergy(0.36), m, torch.tensor([[-0.558, 1.442, 0.0]],
    ...     dtype=torch.float64), cvs, temperature=300.0, timestep=0.001, friction=10.0, n_replicas=8,
    ...     n_steps=300, equilibration=100)
    >>> frames.shape, bool(well.contains(torch.tensor([-0.558, 1.442], dtype=torch.float64)))
    (torch.Size([160, 1, 3]), True)
    """
    if int(equilibration) < 0 or int(n_steps) <= int(equilibration):
        raise ValueError(f"need 0 <= equilibration < n_steps, got {equilibration} and {n_steps}")
    start = torch.as_tensor(start).to(masses.device, masses.dtype)
    if start.shape != (masses.shape[0], 3):
        raise ValueError(f"start must have shape ({masses.shape[0]}, 3) nm, got {tuple(start.shape)}")
    gen = torch.Generator(device=masses.device).manual_seed(int(seed))
    sim = LangevinSimulator(potential, masses, temperature, timestep, friction, generator=gen)
    R0 = start[None].repeat(int(n_replicas), 1, 1)
    V0 = maxwell_boltzmann_velocities(masses, temperature, int(n_replicas), generator=gen)
    traj = sim.run(R0, V0, int(n_steps), record_every=int(record_every))
    keep = traj.steps > int(equilibration)
    frames = traj.positions[keep].reshape(-1, masses.shape[0], 3)
    with torch.no_grad():
        s = cvs.to(frames.device)(frames)
    well = Well.from_samples(s, p=p, period=cvs.period() if period is None else period)
    return well, frames


def check_setup_arguments(counts: dict, positives: dict, well_steps: int, dtype: torch.dtype) -> None:
    """Raise ValueError naming the argument: ``counts`` must be >= 1, ``positives`` positive and finite,
    ``well_steps`` >= 30 (its first third is equilibration), ``dtype`` float32 or float64."""
    for name, v in counts.items():
        if int(v) < 1:
            raise ValueError(f"{name} must be >= 1, got {v!r}")
    if int(well_steps) < 30:
        raise ValueError(f"well_steps must be >= 30 (the first third is equilibration), got {well_steps!r}")
    for name, v in positives.items():
        if not (math.isfinite(float(v)) and float(v) > 0):
            raise ValueError(f"{name} must be positive and finite, got {v!r}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")


def assemble_setup(name: str, potential, cvs: CVSet, masses: torch.Tensor, reactant_start: torch.Tensor,
                   product_start: torch.Tensor, *, temperature: float, timestep: float, friction: float,
                   n_steps: int, n_replicas: int, adjoint_steps: int, batch_size: int, lr: float,
                   hidden: Sequence[int], activation: str, well_replicas: int, well_steps: int,
                   well_friction: float, max_grad_norm: Optional[float], seed: int, dtype: torch.dtype,
                   info: dict, **trainer_kwargs) -> DiffSimSetup:
    """Wells from unbiased runs at ``reactant_start`` / ``product_start`` ((N, 3) nm), a bias network
    over ``cvs`` (B ≡ 0) and its :class:`DiffSimTrainer`, as one :class:`DiffSimSetup`.

    ``temperature`` K, ``timestep`` ps, ``friction``/``well_friction`` 1/ps; the well runs use
    ``well_replicas`` × ``well_steps`` steps (the first third equilibration), seeds ``seed``
    (reactant, whose frames are the start pool) and ``seed + 1`` (product). ``info`` gets
    ``n_start_configurations`` and ``seed``; ``trainer.config["system"]`` is ``name``.
    """
    common = dict(temperature=float(temperature), timestep=float(timestep), friction=float(well_friction),
                  n_replicas=int(well_replicas), n_steps=int(well_steps), equilibration=int(well_steps) // 3)
    reactant, pool = unbiased_well_run(potential, masses, reactant_start, cvs, seed=seed, **common)
    product, _ = unbiased_well_run(potential, masses, product_start, cvs, seed=seed + 1, **common)
    bias = NeuralBias.from_cvs(cvs, hidden=tuple(hidden), activation=activation, dtype=dtype, seed=seed)
    trainer = DiffSimTrainer(potential, cvs, bias, masses, product, pool, temperature=float(temperature),
                             timestep=float(timestep), friction=float(friction), n_steps=int(n_steps),
                             n_replicas=int(n_replicas), adjoint_steps=int(adjoint_steps),
                             batch_size=int(batch_size), lr=float(lr), max_grad_norm=max_grad_norm,
                             seed=int(seed), **trainer_kwargs)
    info = dict(info, n_start_configurations=int(pool.shape[0]), seed=int(seed))
    trainer.config.update({"system": name})
    return DiffSimSetup(name=name, trainer=trainer, potential=potential, cvs=cvs, bias=bias, masses=masses,
                        reactant_well=reactant, product_well=product, start_positions=pool,
                        temperature=float(temperature), info=info)
