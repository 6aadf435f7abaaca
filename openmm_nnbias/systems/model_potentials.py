"""Two-dimensional model potentials as one-particle OpenMM systems.

Each model is a single particle whose ``(x, y)`` coordinates feel the model
potential through a :class:`openmm.CustomExternalForce`; ``z`` is decoupled and
held by a harmonic restraint ``0.5 * kz * z**2``. Pure-torch versions of the
potentials (batched, any dtype/device, differentiable) are provided for reuse by
differentiable simulators and for tests.

Units are MD units: nm, ps, kJ/mol, K, amu.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import openmm
import torch
from openmm import app, unit

from openmm_nnbias._units import KB, strip_unit

__all__ = [
    "ModelSystem",
    "wolfe_quapp",
    "mueller_brown",
    "wolfe_quapp_energy",
    "mueller_brown_energy",
    "MuellerBrownEnergy",
    "WOLFE_QUAPP_EXPRESSION",
    "MUELLER_BROWN_PARAMETERS",
    "WQ_TEMPERATURE",
]

#: Temperature (K) at which k_B T = 1 kJ/mol, i.e. the Wolfe-Quapp natural temperature.
WQ_TEMPERATURE = 1.0 / KB

# (coefficient, power of x, power of y) of the rotated Wolfe-Quapp polynomial
_WQ_TERMS: tuple[tuple[float, int, int], ...] = (
    (19.0, 0, 0),
    (1.33481, 1, 0),
    (0.990459, 0, 1),
    (-6.44246, 2, 0),
    (5.58721, 1, 1),
    (-5.55754, 0, 2),
    (1.90211, 3, 1),
    (3.92705, 2, 2),
    (-1.90211, 1, 3),
    (1.34549, 4, 0),
    (1.34549, 0, 4),
)


def _monomial(c: float, px: int, py: int) -> str:
    parts = [repr(c)]
    parts += [f"x^{px}"] if px > 1 else (["x"] if px == 1 else [])
    parts += [f"y^{py}"] if py > 1 else (["y"] if py == 1 else [])
    return "*".join(parts)


#: Lepton expression of the rotated Wolfe-Quapp potential in ``x`` and ``y``.
WOLFE_QUAPP_EXPRESSION = " + ".join(_monomial(*t) for t in _WQ_TERMS).replace("+ -", "- ")

#: Müller-Brown parameters (A in kJ/mol, a/b/c in nm^-2, x0/y0 in nm).
MUELLER_BROWN_PARAMETERS: dict[str, tuple[float, float, float, float]] = {
    "A": (-200.0, -100.0, -170.0, 15.0),
    "a": (-1.0, -1.0, -6.5, 0.7),
    "b": (0.0, 0.0, 11.0, 0.6),
    "c": (-10.0, -10.0, -6.5, 0.7),
    "x0": (1.0, 0.0, -0.5, -1.0),
    "y0": (0.0, 0.5, 1.5, 1.0),
}


@dataclass
class ModelSystem:
    """A one-particle model system with its recommended Langevin settings.

    Attributes
    ----------
    system : openmm.System
        One particle with the model potential on (x, y) and ``0.5*kz*z^2`` on z.
    topology : openmm.app.Topology
        One-atom topology (residue ``MOD``, atom ``P``, no element), for reporters.
    positions : openmm.unit.Quantity
        Starting position, shape ``(1, 3)``, in nm.
    temperature : openmm.unit.Quantity
        Recommended temperature in K.
    timestep : openmm.unit.Quantity
        Recommended Langevin time step in ps.
    friction : openmm.unit.Quantity
        Recommended Langevin friction in 1/ps.
    minima : dict[str, tuple[float, float]]
        Named (x, y) positions of the local minima, nm.
    name : str
        ``"wolfe-quapp"`` or ``"mueller-brown"``.
    mass : openmm.unit.Quantity
        Particle mass in amu.
    energy_fn : callable
        Pure-torch energy ``(..., 2) -> (...)`` in kJ/mol (z restraint excluded).

    Examples
    --------
    >>> ms = wolfe_quapp()
    >>> ms.system.getNumParticles(), ms.name
    (1, 'wolfe-quapp')
    """

    system: openmm.System
    topology: app.Topology
    positions: unit.Quantity
    temperature: unit.Quantity
    timestep: unit.Quantity
    friction: unit.Quantity
    minima: dict[str, tuple[float, float]]
    name: str
    mass: unit.Quantity = field(default_factory=lambda: 1.0 * unit.amu)
    energy_fn: Callable[[torch.Tensor], torch.Tensor] | None = field(default=None, repr=False)


def _as_tensor(xy) -> torch.Tensor:
    if isinstance(xy, torch.Tensor):
        t = xy
    else:
        t = torch.as_tensor(np.asarray(xy, dtype=np.float64))
    if t.ndim < 1 or t.shape[-1] != 2:
        raise ValueError(f"expected an array of shape (..., 2), got shape {tuple(t.shape)}")
    if not torch.is_floating_point(t):
        t = t.to(torch.get_default_dtype())
    return t


def _wq_poly(x, y):
    """Wolfe-Quapp polynomial; works on numpy arrays and torch tensors alike."""
    out = 0.0
    for c, px, py in _WQ_TERMS:
        out = out + c * x**px * y**py
    return out


def wolfe_quapp_energy(xy: torch.Tensor) -> torch.Tensor:
    """Rotated Wolfe-Quapp potential in natural units (= kJ/mol here).

    ``U = 19 + 1.33481x + 0.990459y - 6.44246x^2 + 5.58721xy - 5.55754y^2
    + 1.90211x^3y + 3.92705x^2y^2 - 1.90211xy^3 + 1.34549x^4 + 1.34549y^4``.

    Parameters
    ----------
    xy : torch.Tensor
        Positions of shape ``(..., 2)`` in nm; any floating dtype and device
        (array-likes are converted to float64 tensors). Differentiable.

    Returns
    -------
    torch.Tensor
        Energies of shape ``(...)`` in kJ/mol.

    Examples
    --------
    >>> float(wolfe_quapp_energy(torch.tensor([0.0, 0.0])))
    19.0
    """
    xy = _as_tensor(xy)
    return _wq_poly(xy[..., 0], xy[..., 1])


def mueller_brown_energy(xy: torch.Tensor, energy_scale: float = 1.0) -> torch.Tensor:
    """Müller-Brown potential ``energy_scale * sum_k A_k exp(...)`` in kJ/mol.

    ``xy`` (nm) and the result (kJ/mol) as in :func:`wolfe_quapp_energy`; ``energy_scale``
    (default 1.0) multiplies the potential.

    Examples
    --------
    >>> round(float(mueller_brown_energy(torch.tensor([-0.558, 1.442]))), 1)
    -146.7
    """
    xy = _as_tensor(xy)
    x, y = xy[..., 0], xy[..., 1]
    p = MUELLER_BROWN_PARAMETERS
    out = torch.zeros_like(x)
    for A, a, b, c, x0, y0 in zip(p["A"], p["a"], p["b"], p["c"], p["x0"], p["y0"]):
        dx, dy = x - x0, y - y0
        out = out + A * torch.exp(a * dx * dx + b * dx * dy + c * dy * dy)
    return energy_scale * out


def _mueller_brown_expression(energy_scale: float) -> str:
    p = MUELLER_BROWN_PARAMETERS
    terms = []
    for A, a, b, c, x0, y0 in zip(p["A"], p["a"], p["b"], p["c"], p["x0"], p["y0"]):
        dx, dy = f"(x-({x0!r}))", f"(y-({y0!r}))"
        terms.append(f"({A!r})*exp(({a!r})*{dx}^2+({b!r})*{dx}*{dy}+({c!r})*{dy}^2)")
    return f"({energy_scale!r})*(" + " + ".join(terms) + ")"


def _one_particle(expression: str, mass: float, kz: float, start: tuple[float, float], name: str):
    system = openmm.System()
    system.addParticle(mass)
    force = openmm.CustomExternalForce(f"{expression} + 0.5*kz_restraint*z^2")
    force.addPerParticleParameter("kz_restraint")
    force.addParticle(0, [kz])
    force.setName(name)
    system.addForce(force)
    top = app.Topology()
    res = top.addResidue("MOD", top.addChain())
    top.addAtom("P", None, res)
    pos = unit.Quantity(np.array([[start[0], start[1], 0.0]]), unit.nanometer)
    return system, top, pos


def _check_common(mass, kz, start) -> tuple[float, float, tuple[float, float]]:
    m = strip_unit(mass, "amu")
    if not m > 0:
        raise ValueError(f"mass must be positive (amu), got {mass!r}")
    if unit.is_quantity(kz):
        k_unit = unit.kilojoule_per_mole / unit.nanometer**2
        if not kz.unit.is_compatible(k_unit):
            raise ValueError(f"kz must be compatible with kJ/mol/nm^2, got {kz}")
        k = float(kz.value_in_unit(k_unit))
    else:
        k = float(kz)
    if not k > 0:
        raise ValueError(f"kz must be positive (kJ/mol/nm^2), got {kz!r}")
    s = tuple(float(v) for v in (start.value_in_unit(unit.nanometer) if unit.is_quantity(start) else start))
    if len(s) != 2:
        raise ValueError(f"start must be an (x, y) pair in nm, got {start!r}")
    return m, k, s  # type: ignore[return-value]


def wolfe_quapp(
    mass=1.0,
    kz=100.0,
    start: tuple[float, float] = (-1.88, 0.78),
    temperature=None,
) -> ModelSystem:
    """Rotated Wolfe-Quapp potential as a one-particle OpenMM system.

    Natural units map to MD units as 1 energy unit = 1 kJ/mol, 1 length unit =
    1 nm, 1 mass unit = 1 amu (so the time unit is 1 ps) and k_B T = 1 kJ/mol,
    i.e. T = 1/0.00831446... K ≈ 120.27 K. Recommended Langevin settings:
    dt = 0.005 ps, friction 10/ps.

    Parameters
    ----------
    mass : float or Quantity, optional
        Particle mass in amu (default 1.0).
    kz : float, optional
        Harmonic restraint constant on z in kJ/mol/nm^2 (default 100.0).
    start : tuple of float, optional
        Starting (x, y) in nm (default the left minimum (-1.88, 0.78)).
    temperature : float or Quantity, optional
        Temperature in K (default ``WQ_TEMPERATURE`` ≈ 120.27 K, k_B T = 1 kJ/mol).

    Returns
    -------
    ModelSystem
        With minima ``{"left": (-1.880, 0.782), "right": (1.786, -0.833)}``.

    Examples
    --------
    >>> ms = wolfe_quapp()
    >>> round(ms.temperature.value_in_unit(unit.kelvin), 2)
    120.27
    """
    return _model_system("wolfe-quapp", WOLFE_QUAPP_EXPRESSION, wolfe_quapp_energy, mass, kz, start,
                         WQ_TEMPERATURE if temperature is None else temperature, 0.005,
                         {"left": (-1.8800, 0.7821), "right": (1.7860, -0.8333)})


def _model_system(name: str, expression: str, energy_fn, mass, kz, start, temperature, timestep: float,
                  minima: dict) -> ModelSystem:
    """One-particle :class:`ModelSystem` (friction 10/ps, ``timestep`` in ps, ``temperature`` K or Quantity)."""
    m, k, s = _check_common(mass, kz, start)
    T = strip_unit(temperature, "kelvin")
    if not T > 0:
        raise ValueError(f"temperature must be positive (K), got {temperature!r}")
    system, top, pos = _one_particle(expression, m, k, s, "".join(w.capitalize() for w in name.split("-")))
    return ModelSystem(system=system, topology=top, positions=pos, temperature=T * unit.kelvin,
                       timestep=timestep * unit.picosecond, friction=10.0 / unit.picosecond, minima=minima,
                       name=name, mass=m * unit.amu, energy_fn=energy_fn)


def mueller_brown(
    energy_scale: float = 1.0,
    mass=1.0,
    kz=100.0,
    start: tuple[float, float] = (-0.558, 1.442),
    temperature=300.0,
) -> ModelSystem:
    """Müller-Brown potential (kJ/mol, nm) as a one-particle OpenMM system.

    Parameters
    ----------
    energy_scale : float, optional
        Multiplies the potential (default 1.0; the deepest barrier is then
        ~106 kJ/mol, so consider e.g. 0.1-0.2 for unbiased sampling at 300 K).
    mass : float or Quantity, optional
        Particle mass in amu (default 1.0).
    kz : float, optional
        Harmonic restraint constant on z in kJ/mol/nm^2 (default 100.0).
    start : tuple of float, optional
        Starting (x, y) in nm (default minimum A (-0.558, 1.442)).
    temperature : float or Quantity, optional
        Recommended temperature in K (default 300.0).

    Returns
    -------
    ModelSystem
        With minima ``A ≈ (-0.558, 1.442)``, ``B ≈ (0.623, 0.028)``,
        ``C ≈ (-0.050, 0.467)``; recommended dt = 0.001 ps, friction 10/ps.

    Examples
    --------
    >>> ms = mueller_brown(energy_scale=0.2)
    >>> sorted(ms.minima)
    ['A', 'B', 'C']
    """
    scale = float(energy_scale)
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"energy_scale must be a positive finite number, got {energy_scale!r}")

    def energy_fn(xy: torch.Tensor) -> torch.Tensor:
        return mueller_brown_energy(xy, energy_scale=scale)

    return _model_system("mueller-brown", _mueller_brown_expression(scale), energy_fn, mass, kz, start,
                         temperature, 0.001,
                         {"A": (-0.5582, 1.4417), "B": (0.6235, 0.0280), "C": (-0.0500, 0.4667)})


class MuellerBrownEnergy(torch.nn.Module):
    """Müller-Brown potential on one particle's (x, y) plus a harmonic z restraint.

    ``U = energy_scale * U_MB(x, y) + 0.5 * kz * z**2`` for particle
    ``particle``; the same function as the OpenMM system of
    :func:`openmm_nnbias.systems.mueller_brown` with the same arguments.
    Positions ``(..., N, 3)`` nm → ``(...)`` kJ/mol; other particles feel nothing.

    Parameters
    ----------
    energy_scale : float, optional
        Multiplies the Müller-Brown term (default 1.0).
    kz : float, optional
        z restraint in kJ/mol/nm² (default 100.0, as ``mueller_brown``).
    particle : int, optional
        Index of the particle (default 0).

    Examples
    --------
    >>> U = MuellerBrownEnergy(energy_scale=1.0)
    >>> round(float(U(torch.tensor([[[-0.558, 1.442, 0.1]]], dtype=torch.float64))[0]), 1)
    -146.2
    """

    def __init__(self, energy_scale: float = 1.0, kz: float = 100.0, particle: int = 0):
        super().__init__()
        if not (math.isfinite(energy_scale) and energy_scale > 0):
            raise ValueError(f"energy_scale must be a positive finite number, got {energy_scale!r}")
        if not (math.isfinite(kz) and kz > 0):
            raise ValueError(f"kz must be positive (kJ/mol/nm^2), got {kz!r}")
        if particle < 0:
            raise ValueError(f"particle must be a non-negative index, got {particle!r}")
        self.energy_scale = float(energy_scale)
        self.kz = float(kz)
        self.particle = int(particle)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        if positions.ndim < 2 or positions.shape[-1] != 3 or positions.shape[-2] <= self.particle:
            raise ValueError(f"expected positions of shape (..., N > {self.particle}, 3) in nm, "
                             f"got {tuple(positions.shape)}")
        p = positions[..., self.particle, :]
        return mueller_brown_energy(p[..., :2], self.energy_scale) + 0.5 * self.kz * p[..., 2] ** 2
