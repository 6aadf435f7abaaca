"""Stillinger-Weber silicon set up for Deep-VES (issue 16, item 4): the recipes ``silicon`` and ``silicon-64``.

:func:`silicon_deepves_system` builds what :func:`~openmm_nnbias.runners.build_deepves` needs: the
cubic-diamond supercell (the starting structure, see below), the Stillinger-Weber force on the
fused route where its compiled kernels load (else the ``torch`` route, with a warning that says why;
:func:`resolve_route`) and an isotropic ``MonteCarloBarostat`` at 1 atm, the settings of
:func:`~openmm_nnbias.systems.silicon.md.silicon_npt_context` (Langevin friction 1/ps and 2 fs
come from the recipe). The biased CV is the environment similarity over all atoms (σ 0.04 nm,
a 0.5431 nm): :class:`~openmm_nnbias.cvs.FusedEnvironmentSimilarity` on the fused route,
:class:`~openmm_nnbias.cvs.EnvironmentSimilarity` on the torch route. Both routes give the same
energies, forces and CV to 1e-10 relative (``tests/test_ext.py``); the fused one makes a biased step
≈ 3× cheaper (``benchmarks/results/silicon.md``).

Start: the perfect crystal, velocities at the run temperature. It is the authors' starting
structure (their LAMMPS input reads the diamond supercell), it needs no pre-equilibration, and
at 1 700 K the SW crystal is a superheated metastable state that does not melt within tens of
ps unbiased (benchmarks/RESULTS.md, item 2), so the first iterations see the crystal basin;
the bias then melts it (the easy direction) and the recrystallizations test it.

Units: nm, ps, K, bar.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SiliconDeepVESSystem", "resolve_route", "silicon_deepves_system"]

ROUTES = ("auto", "fused", "torch")


@dataclass
class SiliconDeepVESSystem:
    """The pieces :func:`~openmm_nnbias.runners.deepves.assemble_deepves` takes.

    Attributes
    ----------
    name : str
    topology : openmm.app.Topology
    system : openmm.System
        Stillinger-Weber (torch route) and a Monte Carlo barostat.
    positions : numpy.ndarray
        (N, 3) nm, the perfect crystal.
    box : numpy.ndarray
        (3, 3) nm, rows a, b, c.
    route : str
        ``"fused"`` or ``"torch"``: the route of the SW force, and of the CV the recipe builds.
    """

    name: str
    topology: object
    system: object
    positions: np.ndarray
    box: np.ndarray
    route: str = "torch"

    @property
    def n_atoms(self) -> int:
        """Number of atoms."""
        return len(self.positions)


def resolve_route(route: str = "auto") -> str:
    """The Stillinger-Weber/CV route to use: ``"auto"`` is ``"fused"`` where the kernels load, else ``"torch"``.

    ``"auto"`` compiles the fused kernels on first use (≈ 30 s, cached); where that is impossible (no
    C++ compiler or ninja, or the build fails) it logs one warning naming the reason and returns
    ``"torch"``, the same physics at ≈ 3× the cost of a biased step. ``"fused"`` raises
    :class:`~openmm_nnbias._ext.FusedKernelsUnavailable` instead; ``"torch"`` never compiles.

    Examples
    --------
    >>> resolve_route("torch")
    'torch'
    """
    if not isinstance(route, str):
        raise TypeError(f"route must be a str, got {type(route).__name__}")
    if route not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES}, got {route!r}")
    if route != "auto":
        if route == "fused":
            from .._ext import load_ops

            load_ops()
        return route
    from .._ext import FusedKernelsUnavailable, load_ops

    try:
        load_ops()
    except FusedKernelsUnavailable as exc:
        import warnings

        warnings.warn(f"silicon: using the TorchScript route (the same results, a biased step ≈ 3x slower) "
                      f"because the fused kernels are unavailable: {exc}", RuntimeWarning, stacklevel=2)
        return "torch"
    return "fused"


def silicon_deepves_system(n_cells: int = 3, skin: float = 0.15, temperature: float = 1700.0,
                           pressure: float | None = None, barostat_interval: int = 25,
                           seed: int = 1, route: str = "auto") -> SiliconDeepVESSystem:
    """Cubic-diamond silicon, ``8 n_cells³`` atoms, with SW and an isotropic barostat.

    Parameters
    ----------
    n_cells : int
        Diamond cells per edge (3: 216 atoms, the paper; 2: 64 atoms).
    skin : float
        Verlet-list skin of the SW module (nm); box widths must stay above 2 (aσ + skin), i.e.
        1.054 nm for 0.15 and 0.954 nm for 0.10 (the 64-atom liquid at 1 700 K has ≈ 1.06 nm).
    temperature : float
        Barostat temperature (K; :func:`assemble_deepves` resets it to the run's).
    pressure : float, optional
        Bar (default 1 atm).
    barostat_interval : int
        MD steps between volume moves.
    seed : int
        Seed of the barostat's random numbers.
    route : str
        ``"auto"`` (default: fused where its kernels load, else torch with a warning), ``"fused"``
        or ``"torch"``; see :func:`resolve_route`.

    Returns
    -------
    SiliconDeepVESSystem

    Examples
    --------
    >>> built = silicon_deepves_system(2, skin=0.1, route="torch")
    >>> built.n_atoms, built.system.getNumForces(), built.route
    (64, 2, 'torch')
    """
    import openmm

    from ..systems.silicon import ATMOSPHERE_BAR, silicon_crystal, stillinger_weber_system

    if isinstance(n_cells, bool) or not isinstance(n_cells, int):
        raise TypeError(f"n_cells must be an int, got {type(n_cells).__name__}")
    if n_cells < 2:
        raise ValueError(f"n_cells must be >= 2 (the SW module needs a box over 2 (aσ + skin)), got {n_cells}")
    pressure = ATMOSPHERE_BAR if pressure is None else float(pressure)
    if not pressure > 0:
        raise ValueError(f"pressure must be > 0 bar, got {pressure}")
    route = resolve_route(route)
    xtal = silicon_crystal(n_cells)
    system = stillinger_weber_system(xtal.n_atoms, xtal.box, route=route, skin=skin)
    barostat = openmm.MonteCarloBarostat(pressure, float(temperature), int(barostat_interval))
    barostat.setRandomNumberSeed(int(seed))
    system.addForce(barostat)
    name = "silicon" if n_cells == 3 else f"silicon-{xtal.n_atoms}"
    return SiliconDeepVESSystem(name, xtal.topology, system, np.asarray(xtal.positions), np.asarray(xtal.box), route)
