"""Stillinger-Weber silicon as an OpenMM System (the Deep-VES paper's crystallization system).

:func:`silicon_crystal` builds a cubic-diamond supercell and :func:`stillinger_weber_system`
an :class:`openmm.System` with the Stillinger-Weber (SW) potential through one of several
routes (all exact, selectable for benchmarking):

``"torch"`` (default)
    A TorchScript module on an openmm-torch ``TorchForce`` with its own Verlet list; the
    three-body sum is rewritten through per-atom sums of pair terms (see
    :mod:`openmm_nnbias.systems.silicon._sw_torch`), so no triplet is ever enumerated.
``"torch-autograd"``
    The same module with autograd forces instead of the hand-written ones (for comparison).
``"custom"``
    ``CustomNonbondedForce`` for the pair term and ``CustomManyParticleForce``
    (``UniqueCentralParticle``) for the three-body term.
``"fused"``
    The ``"torch"`` route's formulas and Verlet list in compiled C++ operators, one call per
    step (:mod:`openmm_nnbias.systems.silicon._sw_fused`); compiled on first use (needs a C++ compiler
    and ninja).

Parameters are those of Stillinger & Weber (1985) as in LAMMPS's ``Si.sw``, with
1 eV = 96.48533212 kJ/mol. Units: nm, ps, kJ/mol, K, amu.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import openmm
from openmm import app, unit

__all__ = [
    "EV_TO_KJ_PER_MOL",
    "SILICON_MASS",
    "SILICON_LATTICE",
    "SW_ROUTES",
    "StillingerWeberParameters",
    "SW_SILICON",
    "SiliconCrystal",
    "silicon_crystal",
    "stillinger_weber_system",
    "stillinger_weber_module",
    "virial_pressure",
    "BAR_PER_KJ_MOL_NM3",
]

from openmm_nnbias._units import EV_TO_KJ_PER_MOL  # noqa: E402  (kJ/mol per eV, one value for the package)
#: bar per kJ/mol/nm^3 (10^30 / N_A Pa).
BAR_PER_KJ_MOL_NM3 = 16.6053906717
#: Silicon atomic mass (amu).
SILICON_MASS = 28.0855
#: Cubic-diamond lattice constant of silicon (nm).
SILICON_LATTICE = 0.5431
#: Routes accepted by :func:`stillinger_weber_system`: the default, its autograd twin, the custom
#: forces, and the compiled one (the fastest, see :mod:`openmm_nnbias.systems.silicon._sw_fused`).
SW_ROUTES = ("torch", "torch-autograd", "custom", "fused")

_DIAMOND_BASIS = np.array([[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0],
                           [0.25, 0.25, 0.25], [0.25, 0.75, 0.75], [0.75, 0.25, 0.75],
                           [0.75, 0.75, 0.25]])


@dataclass(frozen=True)
class StillingerWeberParameters:
    """One-species Stillinger-Weber parameters, in LAMMPS ``pair_style sw`` notation.

    Attributes
    ----------
    epsilon : float
        Energy scale ε (eV).
    sigma : float
        Length scale σ (nm).
    a, lam, gamma, cos0, A, B, p, q : float
        Dimensionless: cut-off ``a σ``, three-body strength λ, three-body decay γ,
        ideal angle cosine, pair prefactor A, pair repulsion B, exponents p and q.
    """

    epsilon: float = 2.1683
    sigma: float = 0.20951
    a: float = 1.80
    lam: float = 21.0
    gamma: float = 1.20
    cos0: float = -1.0 / 3.0
    A: float = 7.049556277
    B: float = 0.6022245584
    p: float = 4.0
    q: float = 0.0

    @property
    def epsilon_kj(self) -> float:
        """ε in kJ/mol."""
        return self.epsilon * EV_TO_KJ_PER_MOL

    @property
    def cutoff(self) -> float:
        """Cut-off ``a σ`` (nm)."""
        return self.a * self.sigma


#: Stillinger & Weber (1985) silicon, as in LAMMPS ``potentials/Si.sw``.
SW_SILICON = StillingerWeberParameters()


@dataclass
class SiliconCrystal:
    """A periodic cubic-diamond silicon supercell.

    Attributes
    ----------
    positions : numpy.ndarray
        (N, 3) atom positions (nm).
    box : numpy.ndarray
        (3, 3) box vectors as rows (nm).
    topology : openmm.app.Topology
        One residue ``SI`` per atom, periodic box set.
    """

    positions: np.ndarray
    box: np.ndarray
    topology: app.Topology

    @property
    def n_atoms(self) -> int:
        """Number of atoms."""
        return len(self.positions)

    @property
    def density(self) -> float:
        """Mass density (g/cm³)."""
        grams = self.n_atoms * SILICON_MASS / 6.02214076e23
        return grams / (abs(np.linalg.det(self.box)) * 1e-21)


def _as_float(value, name: str, unit_name: str) -> float:
    if unit.is_quantity(value) and unit_name != "dimensionless":
        value = value.value_in_unit(getattr(unit, unit_name))
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number in {unit_name} or a Quantity, got {type(value).__name__}")
    return float(value)


def silicon_crystal(n_cells: int = 3, lattice: float = SILICON_LATTICE) -> SiliconCrystal:
    """Cubic-diamond supercell of ``n_cells`` × ``n_cells`` × ``n_cells`` conventional cells.

    Parameters
    ----------
    n_cells : int
        Conventional 8-atom cells per box edge (3 gives the 216-atom cell).
    lattice : float or openmm.unit.Quantity
        Lattice constant (nm).

    Returns
    -------
    SiliconCrystal
        Positions (nm), box (nm) and topology, atoms in LAMMPS ``lattice diamond`` order.

    Examples
    --------
    >>> silicon_crystal(3).n_atoms
    216
    """
    if isinstance(n_cells, bool) or not isinstance(n_cells, (int, np.integer)):
        raise TypeError(f"n_cells must be an int, got {type(n_cells).__name__}")
    if n_cells < 1:
        raise ValueError(f"n_cells must be >= 1, got {n_cells}")
    a = _as_float(lattice, "lattice", "nanometer")
    if not a > 0:
        raise ValueError(f"lattice must be > 0 nm, got {a}")
    cells = np.array([[i, j, k] for i in range(n_cells) for j in range(n_cells) for k in range(n_cells)])
    frac = (cells[:, None, :] + _DIAMOND_BASIS[None, :, :]).reshape(-1, 3)
    positions = frac * a
    box = np.eye(3) * (n_cells * a)
    topology = app.Topology()
    chain = topology.addChain()
    silicon = app.Element.getBySymbol("Si")
    for _ in range(len(positions)):
        topology.addAtom("Si", silicon, topology.addResidue("SI", chain))
    topology.setPeriodicBoxVectors([openmm.Vec3(*row) for row in box] * unit.nanometer)
    return SiliconCrystal(positions=positions, box=box, topology=topology)


def _as_box(box) -> np.ndarray:
    if unit.is_quantity(box):
        box = box.value_in_unit(unit.nanometer)
    try:
        arr = np.array([[float(x) for x in row] for row in box], dtype=float)
    except TypeError as exc:
        raise TypeError(f"box must be 3 box vectors (nm), got {type(box).__name__}") from exc
    if arr.shape != (3, 3):
        raise ValueError(f"box must be 3 box vectors of 3 components, got shape {arr.shape}")
    if arr[0, 1] != 0 or arr[0, 2] != 0 or arr[1, 2] != 0 or np.any(np.diag(arr) <= 0):
        raise ValueError("box must be in OpenMM's reduced form (a along x, b in the xy plane)")
    return arr


def stillinger_weber_module(n_atoms: int, parameters: StillingerWeberParameters = SW_SILICON,
                            skin: float = 0.15, analytic_forces: bool = True):
    """Scripted :class:`~openmm_nnbias.systems.silicon._sw_torch.StillingerWeberModule` (kJ/mol, nm).

    Parameters
    ----------
    n_atoms : int
        Number of atoms.
    parameters : StillingerWeberParameters
        SW parameters (ε in eV, converted here).
    skin : float
        Verlet-list skin (nm).
    analytic_forces : bool
        Hand-written forces (True) or autograd forces (False).

    Returns
    -------
    torch.jit.ScriptModule
        ``module(positions, boxvectors) -> (energy, forces)`` (kJ/mol, kJ/mol/nm).
    """
    import torch

    from ._sw_torch import StillingerWeberModule

    p = parameters
    module = StillingerWeberModule(n_atoms, p.epsilon_kj, p.sigma, p.a, p.lam, p.gamma, p.cos0,
                                   p.A, p.B, p.p, p.q, skin=skin,
                                   analytic_forces=analytic_forces)
    return torch.jit.script(module)


def _custom_forces(n_atoms: int, p: StillingerWeberParameters) -> list:
    # min(r - rc, -1e-12): exp(x / that) is exactly 0 at and past the cut-off instead of inf
    pair = openmm.CustomNonbondedForce(
        "Aeps*(B*(sig/r)^p - (sig/r)^q)*exp(sig/min(r - rc, -1e-12))")
    for name, value in (("Aeps", p.A * p.epsilon_kj), ("B", p.B), ("sig", p.sigma), ("p", p.p),
                        ("q", p.q), ("rc", p.cutoff)):
        pair.addGlobalParameter(name, value)
    pair.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
    pair.setCutoffDistance(p.cutoff)
    pair.setUseSwitchingFunction(False)
    pair.setUseLongRangeCorrection(False)
    three = openmm.CustomManyParticleForce(
        3, "leps*(cos(angle(p2,p1,p3)) - c0)^2"
           "*exp(gs/min(distance(p1,p2) - rc, -1e-12))*exp(gs/min(distance(p1,p3) - rc, -1e-12))")
    for name, value in (("leps", p.lam * p.epsilon_kj), ("c0", p.cos0), ("gs", p.gamma * p.sigma),
                        ("rc", p.cutoff)):
        three.addGlobalParameter(name, value)
    three.setPermutationMode(openmm.CustomManyParticleForce.UniqueCentralParticle)
    three.setNonbondedMethod(openmm.CustomManyParticleForce.CutoffPeriodic)
    three.setCutoffDistance(p.cutoff)
    for _ in range(n_atoms):
        pair.addParticle([])
        three.addParticle([])
    return [pair, three]


def _torch_forces(n_atoms: int, p: StillingerWeberParameters, skin: float, route: str) -> list:
    from openmm_nnbias.bias.plugins import import_torch_force

    # import_torch_force loads again the openmm-torch plugins that failed at an `import openmm` before torch
    torch_force = import_torch_force()
    if route == "fused":
        from openmm_nnbias.systems.silicon._sw_fused import fused_stillinger_weber_module

        module = fused_stillinger_weber_module(n_atoms, p, skin)
    else:
        module = stillinger_weber_module(n_atoms, p, skin, route == "torch")
    force = torch_force(module)
    force.setUsesPeriodicBoundaryConditions(True)
    force.setOutputsForces(True)
    return [force]


def stillinger_weber_system(n_atoms: int, box, route: str = "torch",
                            parameters: StillingerWeberParameters = SW_SILICON,
                            mass: float = SILICON_MASS, skin: float = 0.15) -> openmm.System:
    """OpenMM System of ``n_atoms`` Stillinger-Weber atoms in a periodic box.

    Parameters
    ----------
    n_atoms : int
        Number of atoms.
    box : array-like or openmm.unit.Quantity
        (3, 3) box vectors as rows (nm), OpenMM reduced form; every width must be at least
        twice the cut-off ``a σ`` (0.37712 nm for silicon).
    route : str
        ``"torch"`` (default), ``"torch-autograd"``, ``"custom"`` or ``"fused"`` (compiled, the
        fastest); see the module docstring.
    parameters : StillingerWeberParameters
        SW parameters (default: Stillinger-Weber silicon).
    mass : float
        Atomic mass (amu).
    skin : float
        Verlet-list skin of the torch and fused routes (nm).

    Returns
    -------
    openmm.System
        Masses set, the default box set, the SW force(s) added (no other force).

    Notes
    -----
    The torch routes need ``import torch`` before ``import openmm`` (openmm-torch's kernels load
    torch's libraries) and run in torch's intra-op pool: ``torch.set_num_threads(1)`` is fastest
    for a few hundred atoms (about 1.7× LAMMPS's CPU time per step for 216 atoms, see
    ``benchmarks/RESULTS.md``); more threads than free cores is many times slower.

    Examples
    --------
    >>> xtal = silicon_crystal(3)
    >>> system = stillinger_weber_system(xtal.n_atoms, xtal.box, route="custom")
    >>> system.getNumForces()
    2
    """
    if isinstance(n_atoms, bool) or not isinstance(n_atoms, (int, np.integer)):
        raise TypeError(f"n_atoms must be an int, got {type(n_atoms).__name__}")
    if n_atoms < 1:
        raise ValueError(f"n_atoms must be >= 1, got {n_atoms}")
    if not isinstance(route, str):
        raise TypeError(f"route must be a str, got {type(route).__name__}")
    if route not in SW_ROUTES:
        raise ValueError(f"route must be one of {SW_ROUTES}, got {route!r}")
    if not isinstance(parameters, StillingerWeberParameters):
        raise TypeError(f"parameters must be StillingerWeberParameters, got {type(parameters).__name__}")
    mass = _as_float(mass, "mass", "amu")
    skin = _as_float(skin, "skin", "nanometer")
    if not mass > 0:
        raise ValueError(f"mass must be > 0 amu, got {mass}")
    if not skin >= 0:
        raise ValueError(f"skin must be >= 0 nm, got {skin}")
    vectors = _as_box(box)
    torch_route = route.startswith("torch") or route == "fused"
    reach = parameters.cutoff + (skin if torch_route else 0.0)
    if np.min(np.diag(vectors)) < 2 * reach:
        raise ValueError(f"box must be at least 2 x (cut-off + skin) = {2 * reach:.5f} nm wide "
                         f"(use a smaller skin), got widths {np.diag(vectors)}")
    system = openmm.System()
    for _ in range(n_atoms):
        system.addParticle(mass)
    system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row) for row in vectors])
    if torch_route:
        forces = _torch_forces(n_atoms, parameters, skin, route)
    else:
        forces = _custom_forces(n_atoms, parameters)
    for force in forces:
        system.addForce(force)
    return system


def virial_pressure(context: openmm.Context, eps: float = 1e-4) -> np.ndarray:
    """Virial (potential) part of the pressure tensor diagonal, by finite differences.

    ``P_aa = -(1/V) dE/dε_aa``: positions and box are stretched along axis ``a`` by
    ``1 + k ε`` (k = ±1, ±2, a 4-point stencil); the Context is restored afterwards.

    Parameters
    ----------
    context : openmm.Context
        Any Context (all its forces count).
    eps : float
        Strain step (dimensionless).

    Returns
    -------
    numpy.ndarray
        ``[P_xx, P_yy, P_zz]`` in bar (add the kinetic part ``N k_B T / V`` for the full pressure).
    """
    if not isinstance(context, openmm.Context):
        raise TypeError(f"context must be an openmm.Context, got {type(context).__name__}")
    eps = _as_float(eps, "eps", "dimensionless")
    if not 0 < eps < 0.01:
        raise ValueError(f"eps must be in (0, 0.01), got {eps}")
    state = context.getState(getPositions=True)
    positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    box = np.array(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer))
    volume = abs(np.linalg.det(box))
    out = []
    try:
        for axis in range(3):
            energies = []
            for k in (-2, -1, 1, 2):
                scale = np.ones(3)
                scale[axis] += k * eps
                context.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in box * scale])
                context.setPositions(positions * scale)
                energies.append(context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
            slope = (energies[0] - 8 * energies[1] + 8 * energies[2] - energies[3]) / (12 * eps)
            out.append(-slope / volume * BAR_PER_KJ_MOL_NM3)
    finally:
        context.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in box])
        context.setPositions(positions)
    return np.array(out)
