"""Stillinger-Weber silicon set up for Deep-VES (issue 16, item 4): the recipes ``silicon`` and ``silicon-64``.

:func:`silicon_deepves_system` builds what :func:`~openmm_nnbias.runners.build_deepves` needs: the
cubic-diamond supercell (the starting structure, see below), the Stillinger-Weber ``torch`` route
and an isotropic ``MonteCarloBarostat`` at 1 atm, the settings of
:func:`~openmm_nnbias.systems.silicon.md.silicon_npt_context` (Langevin friction 1/ps and 2 fs
come from the recipe). The biased CV is
:class:`~openmm_nnbias.cvs.EnvironmentSimilarity` over all atoms (σ 0.04 nm, a 0.5431 nm).

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

__all__ = ["SiliconDeepVESSystem", "silicon_deepves_system"]


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
    """

    name: str
    topology: object
    system: object
    positions: np.ndarray
    box: np.ndarray

    @property
    def n_atoms(self) -> int:
        """Number of atoms."""
        return len(self.positions)


def silicon_deepves_system(n_cells: int = 3, skin: float = 0.15, temperature: float = 1700.0,
                           pressure: float | None = None, barostat_interval: int = 25,
                           seed: int = 1) -> SiliconDeepVESSystem:
    """Cubic-diamond silicon, ``8 n_cells³`` atoms, with SW (torch route) and an isotropic barostat.

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

    Returns
    -------
    SiliconDeepVESSystem

    Examples
    --------
    >>> built = silicon_deepves_system(2, skin=0.1)
    >>> built.n_atoms, built.system.getNumForces()
    (64, 2)
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
    xtal = silicon_crystal(n_cells)
    system = stillinger_weber_system(xtal.n_atoms, xtal.box, route="torch", skin=skin)
    barostat = openmm.MonteCarloBarostat(pressure, float(temperature), int(barostat_interval))
    barostat.setRandomNumberSeed(int(seed))
    system.addForce(barostat)
    name = "silicon" if n_cells == 3 else f"silicon-{xtal.n_atoms}"
    return SiliconDeepVESSystem(name, xtal.topology, system, np.asarray(xtal.positions), np.asarray(xtal.box))
