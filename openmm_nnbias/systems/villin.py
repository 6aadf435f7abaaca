"""The villin headpiece (HP35) in TIP3P water with PME: a solvated protein that OpenMM ships.

OpenMM's own test structure ``openmm/app/data/test.pdb`` (35 residues, 8 867 atoms with water and
a Cl⁻ ion, orthorhombic box 4.92 × 4.60 × 3.89 nm; no download) with ``amber14-all.xml`` +
``amber14/tip3p.xml``, PME (0.9 nm cutoff, Ewald error tolerance 5e-4), ``HBonds`` constraints,
rigid water and a Monte Carlo barostat (1 bar), as :func:`~openmm_nnbias.systems.solvated_alanine_dipeptide`
does for the dipeptide. The structure is used as it is (an equilibrated, solvated PDB; MD at 2 fs
is stable from it): minimizing 8 867 atoms costs about a minute per 100 iterations on one core,
so ``minimize`` is off by default, and the input-file route (``system: {pdb: ..., forcefield:
[amber14-all.xml, amber14/tip3p.xml], nonbondedMethod: PME, cutoff: 0.9}``) builds the same System
from the same positions.

Examples
--------
>>> hp35 = villin_headpiece()                                          # doctest: +SKIP
>>> hp35.topology.getNumAtoms(), len(hp35.ca)                          # doctest: +SKIP
(8867, 35)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import openmm
from openmm import app, unit

from .._units import strip_unit
from .peptides import PeptideSystem

__all__ = ["villin_headpiece", "ProteinSystem", "VILLIN_PDB"]

#: OpenMM's bundled villin headpiece structure (solvated, 8 867 atoms).
VILLIN_PDB = os.path.join(os.path.dirname(app.__file__), "data", "test.pdb")


@dataclass
class ProteinSystem(PeptideSystem):
    """A :class:`~openmm_nnbias.systems.PeptideSystem` with the protein's Cα atoms.

    Attributes
    ----------
    ca : list of int
        0-based indices of the Cα atoms, N- to C-terminus.
    """

    ca: list = field(default_factory=list)


def villin_headpiece(*, cutoff=0.9, temperature=300.0, pressure=1.0, hydrogenMass=None,
                     minimize: bool = False) -> ProteinSystem:
    """Villin headpiece in TIP3P water, Amber14, PME, HBonds, Monte Carlo barostat.

    Parameters
    ----------
    cutoff : Quantity or float
        Non-bonded cutoff (nm); at most half the shortest box width (1.94 nm).
    temperature : Quantity or float
        Temperature of the barostat (K); use the same for the integrator.
    pressure : Quantity or float
        Barostat pressure (bar); None: no barostat (NVT).
    hydrogenMass : Quantity or float, optional
        Hydrogen mass (amu) for hydrogen mass repartitioning; None keeps the force field's masses.
    minimize : bool
        Energy-minimize on the CPU platform with one thread, 10 kJ/mol/nm, at most 2 000 iterations
        (minutes on one core).

    Returns
    -------
    ProteinSystem
        ``name`` "villin"; ``positions`` in nm (the PDB's unless minimized); ``torsions`` empty;
        ``ca`` the 35 Cα indices (0-based).
    """
    cutoff_nm, t = strip_unit(cutoff, "nanometer"), strip_unit(temperature, "kelvin")
    pdb = app.PDBFile(VILLIN_PDB)
    box = np.array(pdb.topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer))
    if not 0 < cutoff_nm <= np.diag(box).min() / 2:
        raise ValueError(f"cutoff must be > 0 nm and at most half the shortest box width "
                         f"({np.diag(box).min() / 2:.3f} nm), got {cutoff_nm}")
    if not t > 0:
        raise ValueError(f"temperature must be > 0 K, got {t}")
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    kwargs = {} if hydrogenMass is None else {"hydrogenMass": strip_unit(hydrogenMass, "dalton") * unit.amu}
    system = forcefield.createSystem(pdb.topology, nonbondedMethod=app.PME, nonbondedCutoff=cutoff_nm * unit.nanometer,
                                     constraints=app.HBonds, rigidWater=True, ewaldErrorTolerance=5e-4, **kwargs)
    if pressure is not None:
        p = strip_unit(pressure, "bar")
        if not p > 0:
            raise ValueError(f"pressure must be > 0 bar or None, got {p}")
        system.addForce(openmm.MonteCarloBarostat(p * unit.bar, t * unit.kelvin, 25))
    pos = np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    energy = None
    if minimize:
        from .solvated import minimized

        pos, energy = minimized(system, pdb.topology, pos)
    ca = [a.index for a in pdb.topology.atoms() if a.name == "CA" and a.element is not None and a.element.symbol == "C"]
    return ProteinSystem(topology=pdb.topology, system=system, positions=unit.Quantity(np.asarray(pos), unit.nanometer),
                         torsions={}, name="villin", potential_energy=energy, ca=ca)
