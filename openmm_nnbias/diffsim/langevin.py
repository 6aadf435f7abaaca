"""Batched, differentiable Langevin dynamics (the authors' semi-implicit scheme).

One step, for every replica and atom (``M`` the atom's mass, ``ξ ~ N(0, 1)``):

.. math::

    R_{n+1} &= R_n + \\Delta t\\, V_n \\\\
    F_{n+1} &= -\\nabla_R\\,[U + B](R_{n+1}) \\\\
    V_{n+1} &= V_n + \\Delta t\\,(F_{n+1}/M - \\gamma V_n) + \\sqrt{2\\gamma k_B T \\Delta t / M}\\; \\xi_n

i.e. positions first (with the old velocity), then the force at the *new*
positions, then the velocity with friction on the *old* velocity (symplectic
Euler + Euler–Maruyama friction/noise), as in NOTES ("R ← R + V dt; V ← V +
dt(F/M − γV) + √(2γk_BT dt/M) ξ"). The force at ``R_0`` is never used.

Adjoint (positions detached, back-propagation through the momenta only)
------------------------------------------------------------------------
With ``p = M V`` the integrator reads
``R_k = R_{k-1} + dt M⁻¹ p_{k-1}`` (R_{k-1} detached) and
``p_k = p_{k-1} + dt (F(R_k) − γ p_{k-1}) + noise``. For the momentum adjoint
``ã_k = ∂L/∂p_k`` of a loss ``L(R_L)`` at the loss frame ``L``:

.. math::

    ã_{L-1} &= \\Delta t\\, M^{-1} \\nabla_R L(R_L) \\\\
    ã_{k-1} &= ã_k + \\Delta t^2 M^{-1} J_F(R_k)^T ã_k - \\gamma \\Delta t\\, ã_k

(``J_F^T ã = VJP(F_total, R_k, ã)`` by :func:`torch.func.vjp`; ``J_F = −Hessian``),
which is NOTES' ``a ← a + dt²·VJP(F_total, R_t, a)/M − dt·γ·a``.
The pairs ``(R_k, ã_k)``, ``k = L−1, …, max(L−K, 1)``, feed the parameter gradient
of :mod:`.training`.

Units: nm, ps, kJ/mol, amu, K (k_B = 0.00831446261815324 kJ/mol/K).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from openmm_nnbias._units import KB

#: Boltzmann constant in kJ/mol/K (alias of :data:`openmm_nnbias._units.KB`).

__all__ = ["LangevinSimulator", "Trajectory", "make_force_fn"]

EnergyFn = Callable[[torch.Tensor], torch.Tensor]


def _positive(name: str, value: float, unit: str, allow_zero: bool = False) -> float:
    v = float(value)
    ok = v >= 0 if allow_zero else v > 0
    if not (math.isfinite(v) and ok):
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'} ({unit}), got {value!r}")
    return v


def make_force_fn(energy_fn: EnergyFn) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return ``x ↦ −∇_x Σ energy_fn(x)`` written with :func:`torch.func.grad` (composable with vjp).

    Examples
    --------
    >>> f = make_force_fn(lambda x: 0.5 * (x ** 2).sum((-2, -1)))
    >>> f(torch.ones(1, 1, 3)).tolist()
    [[[-1.0, -1.0, -1.0]]]
    """
    grad = torch.func.grad(lambda x: energy_fn(x).sum())
    return lambda x: -grad(x)


@dataclass
class Trajectory:
    """Result of :meth:`LangevinSimulator.run`.

    Attributes
    ----------
    positions : torch.Tensor
        ``(F, B, N, 3)`` recorded positions in nm, frame ``f`` = step ``f * record_every``
        (frame 0 is the start).
    steps : torch.Tensor
        ``(F,)`` step index of each frame.
    final_positions, final_velocities : torch.Tensor
        ``(B, N, 3)`` state after the last step (nm, nm/ps).
    velocities : torch.Tensor or None
        ``(F, B, N, 3)`` recorded velocities if requested.
    record_every : int
    timestep : float
        ps.
    """

    positions: torch.Tensor
    steps: torch.Tensor
    final_positions: torch.Tensor
    final_velocities: torch.Tensor
    velocities: Optional[torch.Tensor]
    record_every: int
    timestep: float


class LangevinSimulator:
    """Semi-implicit Langevin integrator for a batch of replicas (see module docstring).

    Parameters
    ----------
    potential : callable
        Physical energy ``U``: positions ``(B, N, 3)`` nm → ``(B,)`` kJ/mol,
        differentiable (e.g. :class:`~openmm_nnbias.diffsim.OpenMMTorchEnergy`).
    masses : torch.Tensor
        ``(N,)`` masses in amu (positive).
    temperature : float
        K.
    timestep : float
        ps (the authors used 0.001 ps).
    friction : float
        γ in 1/ps (≥ 0).
    seed : int, optional
        Seed of the noise generator, created lazily on the device of the
        positions at the first :meth:`run`. Ignored if ``generator`` is given.
    generator : torch.Generator, optional
        Noise generator (must live on the positions' device).

    Examples
    --------
    >>> from openmm_nnbias.systems import MuellerBrownEnergy
    >>> sim = LangevinSimulator(MuellerBrownEnergy(), torch.ones(1, dtype=torch.float64),
    ...                         temperature=300.0, timestep=0.001, friction=10.0, seed=0)
    >>> R0 = torch.tensor([[[-0.558, 1.442, 0.0]]], dtype=torch.float64).repeat(3, 1, 1)
    >>> traj = sim.run(R0, torch.zeros_like(R0), n_steps=10, record_every=5)
    >>> traj.positions.shape, traj.steps.tolist()
    (torch.Size([3, 3, 1, 3]), [0, 5, 10])
    """

    def __init__(self, potential: EnergyFn, masses: torch.Tensor, temperature: float,
                 timestep: float, friction: float, seed: Optional[int] = None,
                 generator: Optional[torch.Generator] = None):
        if not callable(potential):
            raise ValueError("potential must be callable: positions (B, N, 3) -> energies (B,)")
        masses = torch.as_tensor(masses)
        if masses.ndim != 1 or masses.numel() == 0:
            raise ValueError(f"masses must be a non-empty 1-D tensor (amu), got shape {tuple(masses.shape)}")
        if not bool((masses > 0).all()) or not bool(torch.isfinite(masses).all()):
            raise ValueError("masses must be positive and finite (amu)")
        self.potential = potential
        self.masses = masses
        self.temperature = _positive("temperature", temperature, "K", allow_zero=True)
        self.timestep = _positive("timestep", timestep, "ps")
        self.friction = _positive("friction", friction, "1/ps", allow_zero=True)
        if self.friction * self.timestep >= 1.0:
            raise ValueError(f"friction*timestep = {self.friction * self.timestep} must be < 1 "
                             "for the explicit friction update")
        self.seed = seed
        self.generator = generator

    @property
    def kT(self) -> float:
        """k_B T in kJ/mol."""
        return KB * self.temperature

    def _generator_for(self, device: torch.device) -> torch.Generator:
        if self.generator is None:
            g = torch.Generator(device=device)
            if self.seed is None:
                g.seed()
            else:
                g.manual_seed(int(self.seed))
            self.generator = g
        if torch.device(self.generator.device).type != torch.device(device).type:
            raise ValueError(f"generator lives on {self.generator.device} but positions on {device}")
        return self.generator

    def total_energy(self, positions: torch.Tensor, bias: Optional[EnergyFn] = None) -> torch.Tensor:
        """``U + B`` at ``positions`` ``(B, N, 3)`` → ``(B,)`` kJ/mol."""
        energy = self.potential(positions)
        if bias is not None:
            energy = energy + bias(positions)
        return energy

    def forces(self, positions: torch.Tensor, bias: Optional[EnergyFn] = None,
               create_graph: bool = False) -> torch.Tensor:
        """Total force ``−∇(U + B)`` in kJ/mol/nm, shape of ``positions``.

        With ``create_graph=False`` the result is detached (positions are
        treated as a leaf); with ``True`` it stays differentiable with respect to
        ``positions`` and the bias parameters.
        """
        with torch.enable_grad():
            if create_graph and positions.requires_grad:
                x = positions
            else:
                x = positions.detach().requires_grad_(True)
            energy = self.total_energy(x, bias)
            (grad,) = torch.autograd.grad(energy.sum(), x, create_graph=create_graph)
        return -grad if create_graph else -grad.detach()

    def _check_state(self, R0: torch.Tensor, V0: torch.Tensor) -> None:
        n = self.masses.shape[0]
        if R0.ndim != 3 or R0.shape[1:] != (n, 3):
            raise ValueError(f"R0 must have shape (B, {n}, 3) in nm, got {tuple(R0.shape)}")
        if V0.shape != R0.shape:
            raise ValueError(f"V0 must have the shape of R0 {tuple(R0.shape)}, got {tuple(V0.shape)}")
        if V0.dtype != R0.dtype or V0.device != R0.device:
            raise ValueError("R0 and V0 must share dtype and device")

    def run(self, R0: torch.Tensor, V0: torch.Tensor, n_steps: int, record_every: int = 1,
            bias: Optional[EnergyFn] = None, keep_graph: bool = False,
            detach_positions: bool = True, record_velocities: bool = False,
            storage_device: Optional[torch.device] = None) -> Trajectory:
        """Integrate ``n_steps`` steps from ``(R0, V0)``.

        Parameters
        ----------
        R0, V0 : torch.Tensor
            ``(B, N, 3)`` positions (nm) and velocities (nm/ps); dtype and
            device of the run.
        n_steps : int
            Number of steps (≥ 0).
        record_every : int, optional
            Store every this many steps (default 1; the adjoint needs 1).
        bias : callable, optional
            Bias energy ``B``: positions ``(B, N, 3)`` → ``(B,)`` kJ/mol, e.g.
            ``lambda x: net(cvs(x))``.
        keep_graph : bool, optional
            False (default): no autograd graph except inside each force
            evaluation; stored positions are detached. True: the whole
            trajectory stays differentiable w.r.t. the bias parameters and
            ``V0`` (memory grows with ``n_steps``; for tests and short runs).
        detach_positions : bool, optional
            With ``keep_graph``: use ``R_{n+1} = R_n.detach() + dt V_n`` (the
            paper's partial back-propagation, default) instead of the full graph.
        record_velocities : bool, optional
            Also store velocities at the recorded frames.
        storage_device : torch.device, optional
            Device for the stored frames (e.g. ``"cpu"`` to save GPU memory);
            only with ``keep_graph=False``.

        Returns
        -------
        Trajectory
        """
        self._check_state(R0, V0)
        n_steps, record_every = int(n_steps), int(record_every)
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps}")
        if record_every < 1:
            raise ValueError(f"record_every must be >= 1, got {record_every}")
        if keep_graph and storage_device is not None:
            raise ValueError("storage_device cannot be used with keep_graph=True")
        gen = self._generator_for(R0.device)
        dt, gamma = self.timestep, self.friction
        m = self.masses.to(dtype=R0.dtype, device=R0.device)[None, :, None]
        noise_scale = torch.sqrt(2.0 * gamma * self.kT * dt / m)
        store = storage_device if storage_device is not None else R0.device
        n_frames = n_steps // record_every + 1
        steps = torch.arange(n_frames, dtype=torch.long) * record_every
        R, V = (R0, V0) if keep_graph else (R0.detach(), V0.detach())
        if keep_graph:
            frames, vframes = [R], [V]
        else:
            frames = torch.empty((n_frames,) + tuple(R0.shape), dtype=R0.dtype, device=store)
            vframes = torch.empty_like(frames) if record_velocities else None
            frames[0] = R
            if vframes is not None:
                vframes[0] = V
        grad_mode = contextlib.nullcontext if keep_graph else torch.no_grad
        for n in range(1, n_steps + 1):
            xi = torch.randn(R0.shape, generator=gen, dtype=R0.dtype, device=R0.device)
            with grad_mode():
                R = (R.detach() if detach_positions else R) + dt * V
                F = self.forces(R, bias, create_graph=keep_graph)
                V = V + dt * (F / m - gamma * V) + noise_scale * xi
            if n % record_every == 0:
                if keep_graph:
                    frames.append(R)
                    vframes.append(V)
                else:
                    frames[n // record_every] = R
                    if vframes is not None:
                        vframes[n // record_every] = V
        if keep_graph:
            frames = torch.stack(frames)
            vframes = torch.stack(vframes) if record_velocities else None
        positions, velocities = frames, vframes
        return Trajectory(positions=positions, steps=steps, final_positions=R, final_velocities=V,
                          velocities=velocities, record_every=record_every, timestep=dt)
