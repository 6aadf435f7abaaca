"""Capped alanine peptides in vacuum (Amber99SB), built from internal coordinates.

No structure files are downloaded or shipped: the heavy atoms of
ACE-(ALA)n-NME are placed with the NeRF algorithm from standard bond lengths,
bond angles and the chosen backbone dihedrals, hydrogens are added with
:class:`openmm.app.Modeller`, the atoms are reordered into the conventional
PDB order, and the structure is energy-minimized on the Reference platform.

All quantities are in MD units (nm, ps, kJ/mol, K, amu).
"""

from __future__ import annotations

import random

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import openmm
from openmm import app, unit

from openmm_nnbias.systems._geometry import place_atom

__all__ = [
    "PeptideSystem",
    "alanine_dipeptide",
    "alanine_tetrapeptide",
    "alanine_peptide",
    "backbone_torsions",
]

# --- standard internal coordinates (lengths in nm, angles in degrees) -------------------
_B_N_CA = 0.1458
_B_CA_C = 0.1525
_B_C_N = 0.1329
_B_C_O = 0.1231
_B_CA_CB = 0.1530
_B_ACE_CH3_C = 0.1520
_B_NME_N_C = 0.1458
_A_N_CA_C = 111.2
_A_CA_C_N = 116.2
_A_C_N_CA = 121.7
_A_CA_C_O = 120.5
_A_N_CA_CB = 110.5
#: dihedral C-N-CA-CB giving L-chirality (verified at build time)
_D_C_N_CA_CB = -122.6

#: Final per-residue atom order and names (after hydrogens are added by Modeller,
#: whose names are on the left of each mapping).
_ATOM_ORDER: dict[str, list[tuple[str, str]]] = {
    "ACE": [("H1", "HH31"), ("CH3", "CH3"), ("H2", "HH32"), ("H3", "HH33"), ("C", "C"), ("O", "O")],
    "ALA": [
        ("N", "N"), ("H", "H"), ("CA", "CA"), ("HA", "HA"), ("CB", "CB"),
        ("HB1", "HB1"), ("HB2", "HB2"), ("HB3", "HB3"), ("C", "C"), ("O", "O"),
    ],
    "NME": [("N", "N"), ("H", "H"), ("C", "C"), ("H1", "H1"), ("H2", "H2"), ("H3", "H3")],
}

#: Default starting backbone dihedrals (degrees) before minimization.
_C7EQ = (-80.0, 75.0)
_EXTENDED = (-150.0, 150.0)


@dataclass
class PeptideSystem:
    """A peptide ready for simulation.

    Attributes
    ----------
    topology : openmm.app.Topology
        Topology with residues ``ACE, ALA..., NME`` and standard atom names.
    system : openmm.System
        Amber99SB vacuum system (``NoCutoff``).
    positions : openmm.unit.Quantity
        Energy-minimized coordinates, shape ``(n_atoms, 3)``, in nm.
    torsions : dict[str, tuple[int, int, int, int]]
        Backbone dihedrals by name (``phi``, ``psi`` or ``phi1``, ``psi1``, ...),
        zero-based atom indices.
    name : str
        Short identifier, e.g. ``"alanine-dipeptide"``.
    potential_energy : openmm.unit.Quantity
        Potential energy of ``positions`` in kJ/mol.

    Examples
    --------
    >>> pep = alanine_dipeptide()
    >>> pep.topology.getNumAtoms(), pep.torsions["phi"]
    (22, (4, 6, 8, 14))
    """

    topology: app.Topology
    system: openmm.System
    positions: unit.Quantity
    torsions: dict[str, tuple[int, int, int, int]]
    name: str = ""
    potential_energy: unit.Quantity | None = field(default=None, repr=False)


def backbone_torsions(topology: app.Topology) -> dict[str, tuple[int, int, int, int]]:
    """Find backbone phi/psi dihedrals by residue and atom name.

    ``phi_i = C(i-1), N(i), CA(i), C(i)`` and ``psi_i = N(i), CA(i), C(i), N(i+1)``
    for every residue that has a preceding and a following residue in the same
    chain (so for Ace-Ala-Nme only the Ala).

    Parameters
    ----------
    topology : openmm.app.Topology
        Topology with standard PDB atom names (``N``, ``CA``, ``C``).

    Returns
    -------
    dict[str, tuple[int, int, int, int]]
        ``{"phi": ..., "psi": ...}`` if exactly one residue qualifies, otherwise
        ``{"phi1": ..., "psi1": ..., "phi2": ...}`` in residue order.

    Raises
    ------
    ValueError
        If a required backbone atom is missing (the residue is named), or no
        residue has two neighbours.

    Examples
    --------
    >>> backbone_torsions(alanine_dipeptide().topology)
    {'phi': (4, 6, 8, 14), 'psi': (6, 8, 14, 16)}
    """

    def atom_index(res: app.Residue, name: str) -> int:
        for atom in res.atoms():
            if atom.name == name:
                return atom.index
        raise ValueError(
            f"residue {res.name}{res.id} (index {res.index}) has no atom named {name!r} "
            "needed for a backbone torsion"
        )

    pairs: list[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]] = []
    for chain in topology.chains():
        residues = list(chain.residues())
        for prev, res, nxt in zip(residues[:-2], residues[1:-1], residues[2:]):
            c_prev = atom_index(prev, "C")
            n, ca, c = (atom_index(res, nm) for nm in ("N", "CA", "C"))
            n_next = atom_index(nxt, "N")
            pairs.append(((c_prev, n, ca, c), (n, ca, c, n_next)))
    if not pairs:
        raise ValueError("no residue with both a preceding and a following residue was found")
    if len(pairs) == 1:
        return {"phi": pairs[0][0], "psi": pairs[0][1]}
    out: dict[str, tuple[int, int, int, int]] = {}
    for i, (phi, psi) in enumerate(pairs, start=1):
        out[f"phi{i}"] = phi
        out[f"psi{i}"] = psi
    return out


def _heavy_atom_chain(phi_psi: Sequence[tuple[float, float]]):
    """Return (topology, positions[nm]) with heavy atoms of ACE-(ALA)n-NME."""
    top = app.Topology()
    chain = top.addChain()
    el = app.element
    xyz: list[np.ndarray] = []
    atoms: list[app.topology.Atom] = []

    def add(res, name, element, pos):
        atoms.append(top.addAtom(name, element, res))
        xyz.append(np.asarray(pos, dtype=float))
        return len(atoms) - 1

    omega = 180.0
    # ACE: CH3 at origin, C along x, N of first ALA in the xy plane.
    ace = top.addResidue("ACE", chain)
    i_ch3 = add(ace, "CH3", el.carbon, [0.0, 0.0, 0.0])
    i_c = add(ace, "C", el.carbon, [_B_ACE_CH3_C, 0.0, 0.0])
    theta = np.deg2rad(180.0 - _A_CA_C_N)
    n_pos = xyz[i_c] + _B_C_N * np.array([np.cos(theta), np.sin(theta), 0.0])
    bonds = [(i_ch3, i_c)]
    prev_ca, prev_c = i_ch3, i_c  # "CA" of ACE is its methyl carbon
    prev_o_res = ace
    n_res_pos = n_pos
    for k, (phi, psi) in enumerate(phi_psi):
        # carbonyl O of the previous residue: trans to the next N across CA-C
        i_o_prev = add(prev_o_res, "O", el.oxygen,
                       place_atom(n_res_pos, xyz[prev_ca], xyz[prev_c], _B_C_O, _A_CA_C_O, 180.0))
        res = top.addResidue("ALA", chain)
        i_n = add(res, "N", el.nitrogen, n_res_pos)
        i_ca = add(res, "CA", el.carbon,
                   place_atom(xyz[prev_ca], xyz[prev_c], xyz[i_n], _B_N_CA, _A_C_N_CA, omega))
        i_cc = add(res, "C", el.carbon,
                   place_atom(xyz[prev_c], xyz[i_n], xyz[i_ca], _B_CA_C, _A_N_CA_C, phi))
        i_cb = add(res, "CB", el.carbon,
                   place_atom(xyz[i_cc], xyz[i_n], xyz[i_ca], _B_CA_CB, _A_N_CA_CB, _D_C_N_CA_CB))
        bonds += [(prev_c, i_o_prev), (prev_c, i_n), (i_n, i_ca), (i_ca, i_cc), (i_ca, i_cb)]
        n_res_pos = place_atom(xyz[i_n], xyz[i_ca], xyz[i_cc], _B_C_N, _A_CA_C_N, psi)
        prev_ca, prev_c, prev_o_res = i_ca, i_cc, res
    i_o_prev = add(prev_o_res, "O", el.oxygen,
                   place_atom(n_res_pos, xyz[prev_ca], xyz[prev_c], _B_C_O, _A_CA_C_O, 180.0))
    nme = top.addResidue("NME", chain)
    i_n = add(nme, "N", el.nitrogen, n_res_pos)
    i_cm = add(nme, "C", el.carbon,
               place_atom(xyz[prev_ca], xyz[prev_c], xyz[i_n], _B_NME_N_C, _A_C_N_CA, omega))
    bonds += [(prev_c, i_o_prev), (prev_c, i_n), (i_n, i_cm)]
    for a, b in bonds:
        top.addBond(atoms[a], atoms[b])
    return top, np.array(xyz)


def _reorder(topology: app.Topology, positions_nm: np.ndarray):
    """Rebuild ``topology`` with the conventional per-residue atom order and names."""
    new = app.Topology()
    old_to_new: dict[int, app.topology.Atom] = {}
    order: list[int] = []
    for chain in topology.chains():
        new_chain = new.addChain(chain.id)
        for res in chain.residues():
            by_name = {a.name: a for a in res.atoms()}
            spec = _ATOM_ORDER[res.name]
            if set(by_name) != {old for old, _ in spec}:
                raise RuntimeError(
                    f"unexpected atoms in {res.name}: {sorted(by_name)} "
                    f"(expected {sorted(old for old, _ in spec)})"
                )
            new_res = new.addResidue(res.name, new_chain, res.id)
            for old_name, new_name in spec:
                atom = by_name[old_name]
                old_to_new[atom.index] = new.addAtom(new_name, atom.element, new_res)
                order.append(atom.index)
    for a, b in topology.bonds():
        new.addBond(old_to_new[a.index], old_to_new[b.index])
    return new, positions_nm[order]


def _check_l_chirality(topology: app.Topology, pos: np.ndarray) -> None:
    for res in topology.residues():
        if res.name != "ALA":
            continue
        idx = {a.name: a.index for a in res.atoms()}
        ca = pos[idx["CA"]]
        vol = np.dot(pos[idx["N"]] - ca, np.cross(pos[idx["C"]] - ca, pos[idx["CB"]] - ca))
        if vol <= 0:
            raise RuntimeError(f"residue ALA{res.id} was built with D chirality")


def _relax(system: openmm.System, positions_nm: np.ndarray, tolerance: float, minimize: bool):
    """Apply constraints, optionally minimize; return (positions[nm], energy)."""
    integrator = openmm.VerletIntegrator(0.001)
    platform = openmm.Platform.getPlatformByName("Reference")
    context = openmm.Context(system, integrator, platform)
    context.setPositions(positions_nm)
    context.applyConstraints(1e-8)
    if minimize:
        openmm.LocalEnergyMinimizer.minimize(context, tolerance, 0)
    state = context.getState(getPositions=True, getEnergy=True)
    pos = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    energy = state.getPotentialEnergy()
    del context, integrator
    return np.asarray(pos), energy


def alanine_peptide(
    n_ala: int,
    constraints=app.HBonds,
    phi_psi: Sequence[tuple[float, float]] | None = None,
    minimize: bool = True,
    tolerance: float = 1.0,
    seed: int = 0,
) -> PeptideSystem:
    """Build Ace-(Ala)n-Nme in vacuum with Amber99SB (``amber99sb.xml``), no cutoff.

    Parameters
    ----------
    n_ala : int
        Number of alanine residues (>= 1).
    constraints : object, optional
        ``None``, ``app.HBonds``, ``app.AllBonds`` or ``app.HAngles``
        (default ``app.HBonds``).
    phi_psi : sequence of (float, float), optional
        Starting backbone dihedrals in degrees, one pair per Ala, applied before
        minimization. Default: C7eq ``(-80, 75)`` for a single Ala, extended
        ``(-150, 150)`` otherwise.
    minimize : bool, optional
        Energy-minimize on the Reference platform (default ``True``).
    tolerance : float, optional
        Minimizer force tolerance in kJ/mol/nm (default 1.0).
    seed : int, optional
        Seeds Python's ``random`` while ``Modeller.addHydrogens`` places the hydrogens (it draws
        random directions), so that every build with the same arguments is the same structure;
        the global random state is restored afterwards.

    Returns
    -------
    PeptideSystem

    Examples
    --------
    >>> pep = alanine_peptide(2)
    >>> [r.name for r in pep.topology.residues()]
    ['ACE', 'ALA', 'ALA', 'NME']
    """
    if isinstance(n_ala, bool) or not isinstance(n_ala, (int, np.integer)) or n_ala < 1:
        raise ValueError(f"n_ala must be a positive integer, got {n_ala!r}")
    if constraints not in (None, app.HBonds, app.AllBonds, app.HAngles):
        raise ValueError(
            f"constraints must be None, app.HBonds, app.AllBonds or app.HAngles, got {constraints!r}"
        )
    if phi_psi is None:
        phi_psi = [_C7EQ if n_ala == 1 else _EXTENDED] * int(n_ala)
    phi_psi = [tuple(float(v) for v in p) for p in phi_psi]
    if len(phi_psi) != n_ala or any(len(p) != 2 for p in phi_psi):
        raise ValueError(f"phi_psi must hold {n_ala} (phi, psi) pairs in degrees, got {phi_psi!r}")
    if not tolerance > 0:
        raise ValueError(f"tolerance must be positive (kJ/mol/nm), got {tolerance!r}")

    forcefield = app.ForceField("amber99sb.xml")
    top, xyz = _heavy_atom_chain(phi_psi)
    modeller = app.Modeller(top, xyz * unit.nanometer)
    # addHydrogens minimizes the new hydrogens on the fastest platform unless told otherwise; the
    # multi-threaded CPU platform sums forces in a varying order, so the structure would differ
    # in the 4th decimal from call to call: the Reference platform makes the build reproducible
    state = random.getstate()
    try:
        random.seed(int(seed))
        modeller.addHydrogens(forcefield, platform=openmm.Platform.getPlatformByName("Reference"))
    finally:
        random.setstate(state)
    pos = np.asarray(modeller.getPositions().value_in_unit(unit.nanometer))
    top, pos = _reorder(modeller.getTopology(), pos)
    _check_l_chirality(top, pos)
    system = forcefield.createSystem(top, nonbondedMethod=app.NoCutoff, constraints=constraints)
    pos, energy = _relax(system, pos, tolerance, minimize)
    name = {1: "alanine-dipeptide", 3: "alanine-tetrapeptide"}.get(int(n_ala), f"ace-ala{n_ala}-nme")
    return PeptideSystem(
        topology=top,
        system=system,
        positions=unit.Quantity(pos, unit.nanometer),
        torsions=backbone_torsions(top),
        name=name,
        potential_energy=energy,
    )


def alanine_dipeptide(constraints=app.HBonds) -> PeptideSystem:
    """Ace-Ala-Nme (22 atoms) in vacuum, Amber99SB, no cutoff, minimized from C7eq.

    Parameters
    ----------
    constraints : object, optional
        ``None``, ``app.HBonds`` (default), ``app.AllBonds`` or ``app.HAngles``.

    Returns
    -------
    PeptideSystem
        Torsions ``phi = (4, 6, 8, 14)`` and ``psi = (6, 8, 14, 16)`` (conventional
        PDB atom order); ``potential_energy`` in kJ/mol.

    Examples
    --------
    >>> pep = alanine_dipeptide()
    >>> pep.system.getNumParticles()
    22
    """
    return alanine_peptide(1, constraints=constraints)


def alanine_tetrapeptide(constraints=app.HBonds) -> PeptideSystem:
    """Ace-Ala3-Nme (42 atoms) in vacuum, Amber99SB, no cutoff, minimized from extended.

    ``constraints`` as in :func:`alanine_dipeptide`. The returned :class:`PeptideSystem` has the
    torsions ``phi1, psi1, phi2, psi2, phi3, psi3`` over the three Ala; ``potential_energy`` in kJ/mol.

    Examples
    --------
    >>> sorted(alanine_tetrapeptide().torsions)
    ['phi1', 'phi2', 'phi3', 'psi1', 'psi2', 'psi3']
    """
    return alanine_peptide(3, constraints=constraints)
