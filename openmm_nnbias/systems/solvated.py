"""Alanine dipeptide in a periodic box of TIP3P water with PME: an OpenMM user's usual system.

Built from OpenMM's bundled force fields (``amber99sbildn.xml``, ``tip3p.xml``) with no downloads:
the vacuum peptide of :func:`~openmm_nnbias.systems.alanine_dipeptide` is solvated by
``Modeller.addSolvent`` (cubic box, 1.2 nm padding: the box stays above twice the cutoff when the barostat compresses it), then ``createSystem`` with PME (0.9 nm cutoff),
``HBonds`` constraints, rigid water and a Monte Carlo barostat (1 bar). The peptide's atoms come
first, so its torsion indices are those of the vacuum system. ``hydrogenMass`` repartitions mass
to the hydrogens (HMR, e.g. ``1.5 * unit.amu`` for a 4 fs time step).

Examples
--------
>>> pep = solvated_alanine_dipeptide()                               # doctest: +SKIP
>>> pep.system.usesPeriodicBoundaryConditions(), pep.torsions["phi"]  # doctest: +SKIP
(True, (4, 6, 8, 14))
"""

from __future__ import annotations

import numpy as np
import openmm
from openmm import app, unit

from .._units import strip_unit
from .peptides import PeptideSystem, alanine_peptide

__all__ = ["solvated_alanine_dipeptide", "minimized"]


def solvated_alanine_dipeptide(*, padding=1.2, cutoff=0.9, temperature=300.0, pressure=1.0,
                               hydrogenMass=None, minimize: bool = True) -> PeptideSystem:
    """Ace-Ala-Nme in TIP3P water, Amber99SB-ILDN, PME, HBonds, Monte Carlo barostat.

    Parameters
    ----------
    padding, cutoff : Quantity or float
        Solvent padding around the peptide and the non-bonded cutoff (nm).
    temperature : Quantity or float
        Temperature of the barostat (K); use the same for the integrator.
    pressure : Quantity or float
        Barostat pressure (bar); None: no barostat (NVT).
    hydrogenMass : Quantity or float, optional
        Hydrogen mass (amu) for hydrogen mass repartitioning; None keeps the force field's masses.
    minimize : bool
        Energy-minimize on the CPU platform with one thread (reproducible), 10 kJ/mol/nm.

    Returns
    -------
    PeptideSystem
        ``name`` "alanine-dipeptide-solvated"; ``positions`` in nm; ``torsions`` phi/psi.
    """
    padding_nm, cutoff_nm = strip_unit(padding, "nanometer"), strip_unit(cutoff, "nanometer")
    t = strip_unit(temperature, "kelvin")
    if not padding_nm > 0 or not cutoff_nm > 0:
        raise ValueError(f"padding and cutoff must be > 0 nm, got {padding_nm} and {cutoff_nm}")
    if not t > 0:
        raise ValueError(f"temperature must be > 0 K, got {t}")
    if 2 * cutoff_nm > 2 * padding_nm + 0.5:
        raise ValueError(f"cutoff ({cutoff_nm} nm) too long for a box with padding {padding_nm} nm")
    vacuum = alanine_peptide(1, constraints=None)
    forcefield = app.ForceField("amber99sbildn.xml", "tip3p.xml")
    modeller = app.Modeller(vacuum.topology, vacuum.positions)
    modeller.addSolvent(forcefield, model="tip3p", padding=padding_nm * unit.nanometer)
    kwargs = {} if hydrogenMass is None else {"hydrogenMass": strip_unit(hydrogenMass, "dalton") * unit.amu}
    system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME,
                                     nonbondedCutoff=cutoff_nm * unit.nanometer, constraints=app.HBonds,
                                     rigidWater=True, ewaldErrorTolerance=5e-4, **kwargs)
    if pressure is not None:
        p = strip_unit(pressure, "bar")
        if not p > 0:
            raise ValueError(f"pressure must be > 0 bar or None, got {p}")
        system.addForce(openmm.MonteCarloBarostat(p * unit.bar, t * unit.kelvin, 25))
    pos = np.asarray(modeller.getPositions().value_in_unit(unit.nanometer))
    energy = None
    if minimize:
        pos, energy = minimized(system, modeller.topology, pos)
    return PeptideSystem(topology=modeller.topology, system=system, positions=unit.Quantity(np.asarray(pos), unit.nanometer),
                         torsions=dict(vacuum.torsions), name="alanine-dipeptide-solvated", potential_energy=energy)


def minimized(system, topology, positions):
    """``(positions nm, potential energy)`` after constraints and a local energy minimization (10 kJ/mol/nm,
    at most 2 000 iterations) on the CPU platform, in the topology's periodic box."""
    import openmm
    from openmm import unit

    integrator = openmm.VerletIntegrator(0.001)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    context.setPeriodicBoxVectors(*topology.getPeriodicBoxVectors())
    context.setPositions(positions)
    context.applyConstraints(1e-6)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 2000)
    state = context.getState(getPositions=True, getEnergy=True)
    return state.getPositions(asNumpy=True).value_in_unit(unit.nanometer), state.getPotentialEnergy()
