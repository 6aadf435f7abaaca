"""NPT molecular dynamics of Stillinger-Weber silicon (issue 16, item 2).

:func:`silicon_npt_context` sets up the Deep-VES paper's conditions: Langevin thermostat
(``LangevinMiddleIntegrator``), OpenMM's Monte Carlo barostat, 2 fs, masses 28.0855 amu.
The barostat is isotropic by default: the 3×3×3 cubic supercell is commensurate with cubic
diamond, the crystal and the liquid are both isotropic, and isotropic moves keep the cubic box
that the crystal regrows into. ``barostat="anisotropic"`` (``MonteCarloAnisotropicBarostat``,
edges scaled separately) is for crystals that need it; ``"z"`` scales only the z edge, for a
crystal/liquid coexistence slab whose lateral edges are held at the crystal's lattice;
``"none"`` gives NVT.
:func:`bragg_order` measures crystallinity from the (220) Bragg peaks.

Units: nm, ps, kJ/mol, K, bar, amu.
"""

from __future__ import annotations

import numpy as np
import openmm
from openmm import unit

from .system import SILICON_MASS, silicon_crystal, stillinger_weber_system

__all__ = ["ATMOSPHERE_BAR", "silicon_npt_context", "bragg_order", "density_g_cm3"]

#: 1 atm in bar.
ATMOSPHERE_BAR = 1.01325
_BAROSTATS = ("isotropic", "anisotropic", "z", "none")


def _positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return float(value)


def silicon_npt_context(temperature: float = 1700.0, pressure: float = ATMOSPHERE_BAR,
                        n_cells: int = 3, route: str = "torch", timestep: float = 0.002,
                        friction: float = 1.0, barostat_interval: int = 25,
                        barostat: str = "isotropic", platform: str = "CPU", threads: int = 1,
                        seed: int = 1, positions=None, box=None, frozen=()) -> openmm.Context:
    """A Context for NPT MD of Stillinger-Weber silicon, velocities drawn at ``temperature``.

    Parameters
    ----------
    temperature : float
        Thermostat and barostat temperature (K).
    pressure : float
        Barostat pressure (bar); default 1 atm.
    n_cells : int
        Diamond cells per edge of the starting crystal (3: 216 atoms).
    route : str
        Stillinger-Weber route of :func:`~openmm_nnbias.systems.silicon.stillinger_weber_system`.
    timestep : float
        Time step (ps).
    friction : float
        Langevin friction (1/ps).
    barostat_interval : int
        Steps between Monte Carlo volume moves.
    barostat : str
        ``"isotropic"``, ``"anisotropic"``, ``"z"`` (z edge only) or ``"none"`` (NVT).
    platform : str
        OpenMM platform name.
    threads : int
        CPU threads of the platform and, for the torch routes, of torch's intra-op pool
        (``torch.set_num_threads``, process-wide: the TorchForce runs in that pool, and more
        threads than free cores make its ~10^3-element operations many times slower).
    seed : int
        Seed of the thermostat, the barostat and the initial velocities.
    positions, box : array-like, optional
        Starting positions (N, 3) and box (3, 3) in nm; default: the perfect crystal.
    frozen : sequence of int
        Atoms held fixed (mass 0); only with ``barostat="none"``.

    Returns
    -------
    openmm.Context
        Its integrator is ``context.getIntegrator()``.
    """
    temperature = _positive(temperature, "temperature")
    pressure = _positive(pressure, "pressure")
    timestep = _positive(timestep, "timestep")
    friction = _positive(friction, "friction")
    for name, value in (("barostat_interval", barostat_interval), ("threads", threads), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < (0 if name == "seed" else 1):
            raise ValueError(f"{name} must be >= {0 if name == 'seed' else 1}, got {value}")
    if (positions is None) != (box is None):
        raise ValueError("positions and box must be given together")
    if positions is None:
        xtal = silicon_crystal(n_cells)
        positions, box = xtal.positions, xtal.box
    positions = np.asarray(positions, dtype=float)
    box = np.asarray(box, dtype=float)
    if route.startswith("torch"):
        import torch

        torch.set_num_threads(threads)
    if barostat not in _BAROSTATS:
        raise ValueError(f"barostat must be one of {_BAROSTATS}, got {barostat!r}")
    frozen = [int(i) for i in frozen]
    if frozen and barostat != "none":
        raise ValueError("frozen atoms need barostat='none'")
    system = stillinger_weber_system(len(positions), box, route=route, mass=SILICON_MASS)
    for i in frozen:
        system.setParticleMass(i, 0.0)
    if barostat == "isotropic":
        force = openmm.MonteCarloBarostat(pressure, temperature, barostat_interval)
    elif barostat != "none":
        xy = barostat == "anisotropic"
        force = openmm.MonteCarloAnisotropicBarostat(openmm.Vec3(pressure, pressure, pressure),
                                                     temperature, xy, xy, True, barostat_interval)
    if barostat != "none":
        force.setRandomNumberSeed(seed)
        system.addForce(force)
    integrator = openmm.LangevinMiddleIntegrator(temperature, friction, timestep)
    integrator.setRandomNumberSeed(seed)
    chosen = openmm.Platform.getPlatformByName(platform)
    properties = {"Threads": str(threads)} if platform == "CPU" else {}
    context = openmm.Context(system, integrator, chosen, properties)
    context.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in box])
    context.setPositions(positions)
    context.setVelocitiesToTemperature(temperature * unit.kelvin, seed)
    return context


def density_g_cm3(n_atoms: int, box) -> float:
    """Mass density (g/cm³) of ``n_atoms`` silicon atoms in ``box`` (3, 3), nm."""
    volume = abs(np.linalg.det(np.asarray(box, dtype=float)))
    return n_atoms * SILICON_MASS / 6.02214076e23 / (volume * 1e-21)


def bragg_order(positions, box, n_cells=3) -> float:
    """Mean |ρ(k)| over the six (220) reflections of a cubic-diamond crystal aligned with the box.

    ``ρ(k) = (1/N) Σ_j exp(i k·r_j)`` with ``k = 2π (2, 2, 0) / a`` and permutations / signs,
    ``a`` the box edge over ``n_cells`` (an int, or one per axis). 1 for the perfect crystal,
    ~0.8 for the crystal at 1 400–2 200 K, ~N^(-1/2) (0.07 for 216 atoms) for the liquid.
    """
    pos = np.asarray(positions, dtype=float)
    cells = np.broadcast_to(np.asarray(n_cells, dtype=float), (3,))
    fractional = pos @ np.linalg.inv(np.asarray(box, dtype=float)) * cells
    millers = np.array([[2, 2, 0], [2, -2, 0], [2, 0, 2], [2, 0, -2], [0, 2, 2], [0, 2, -2]])
    phases = 2 * np.pi * fractional @ millers.T
    return float(np.mean(np.abs(np.mean(np.exp(1j * phases), axis=0))))
