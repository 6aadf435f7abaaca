"""Deep-VES on your own system, from a validated input file (:mod:`openmm_nnbias.runners.inputfile`).

* :func:`load_system` — the System, topology, positions (box, velocities) of the ``system``
  section: a serialized ``system.xml`` with a PDB and/or a serialized State, a PDB and OpenMM
  force-field files, or Amber ``prmtop``/``inpcrd``.
* :func:`select_atoms`, :func:`build_cvs` — CV atoms from mdtraj selections, 0-based indices or
  the ``phi``/``psi`` torsion of a residue; the group (protein) CVs through
  :mod:`~openmm_nnbias.runners.inputfile_cvs`.
* :func:`build_input_deepves` — ``(simulation, updater, timestep_ps)``, like
  :func:`~openmm_nnbias.runners.build_deepves` for the embedded systems; everything is checked
  before the output folder is created.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from .inputfile_common import _first_line, _read

__all__ = ["LoadedSystem", "load_system", "select_atoms", "build_cvs", "check_barostat", "build_input_deepves"]


@dataclass
class LoadedSystem:
    """What :func:`load_system` read: ``topology`` (None without a PDB or prmtop), ``system``,
    ``positions`` (nm), ``box`` (nm, or None) and ``velocities`` (nm/ps, or None)."""

    topology: Any
    system: Any
    positions: Any
    box: Any = None
    velocities: Any = None


def load_system(spec: dict) -> LoadedSystem:
    """Load the ``system`` section of a :class:`~openmm_nnbias.runners.inputfile.RunInput`.

    Parameters
    ----------
    spec : dict
        ``RunInput.system``.

    Returns
    -------
    LoadedSystem
    """
    import openmm as mm
    from openmm import app, unit

    form = spec["form"]
    if form == "xml":
        system = _read("system.xml", spec["xml"], lambda p: mm.XmlSerializer.deserialize(open(p).read()))
        if not isinstance(system, mm.System):
            raise ValueError(f"system.xml: {spec['xml']} holds a {type(system).__name__}, not a System")
        pdb = _read("system.pdb", spec["pdb"], app.PDBFile) if spec["pdb"] else None
        topology = pdb.topology if pdb else None
        positions, box, velocities = (pdb.positions if pdb else None), None, None
        if pdb is not None and pdb.topology.getPeriodicBoxVectors() is not None:
            box = pdb.topology.getPeriodicBoxVectors()
        if spec["state"]:
            state = _read("system.state", spec["state"], lambda p: mm.XmlSerializer.deserialize(open(p).read()))
            if not isinstance(state, mm.State):
                raise ValueError(f"system.state: {spec['state']} holds a {type(state).__name__}, not a State")
            positions = _read("system.state", spec["state"], lambda _: state.getPositions())
            box = state.getPeriodicBoxVectors() if system.usesPeriodicBoundaryConditions() else None
            try:
                velocities = state.getVelocities()
            except Exception:  # noqa: BLE001 - a State written without velocities
                velocities = None
        natoms = len(positions)
        if natoms != system.getNumParticles():
            key = "system.state" if spec["state"] else "system.pdb"
            raise ValueError(f"{key}: the System has {system.getNumParticles()} particles but "
                             f"{spec['state'] or spec['pdb']} has {natoms} positions")
        return LoadedSystem(topology, system, positions, box, velocities)
    method = getattr(app, spec["nonbondedMethod"])
    kwargs = dict(nonbondedMethod=method, constraints=None if spec["constraints"] is None else getattr(app, spec["constraints"]),
                  rigidWater=spec["rigidWater"])
    if spec["nonbondedMethod"] != "NoCutoff":
        kwargs["nonbondedCutoff"] = spec["cutoff"] * unit.nanometer
    if spec["hydrogenMass"] is not None:
        kwargs["hydrogenMass"] = spec["hydrogenMass"] * unit.amu
    if form == "pdb":
        pdb = _read("system.pdb", spec["pdb"], app.PDBFile)
        ff = _read("system.forcefield", ", ".join(spec["forcefield"]), lambda _: app.ForceField(*spec["forcefield"]))
        system = _read("system.forcefield", ", ".join(spec["forcefield"]),
                       lambda _: ff.createSystem(pdb.topology, **kwargs))
        return LoadedSystem(pdb.topology, system, pdb.positions, pdb.topology.getPeriodicBoxVectors())
    prmtop = _read("system.prmtop", spec["prmtop"], app.AmberPrmtopFile)
    inpcrd = _read("system.inpcrd", spec["inpcrd"], app.AmberInpcrdFile)
    system = _read("system.prmtop", spec["prmtop"], lambda _: prmtop.createSystem(**kwargs))
    return LoadedSystem(prmtop.topology, system, inpcrd.positions, inpcrd.boxVectors, inpcrd.velocities)


def select_atoms(cv: dict, index: int, topology, n_atoms: int) -> list:
    """0-based atom indices of CV ``cv`` (``RunInput.cvs[index]``), as many as its type takes.

    A selection string picks atoms in index order (a torsion: exactly 4, in that order); a list of
    selections picks one atom each, in the list's order; ``{"phi": r}``/``{"psi": r}`` the backbone
    torsion of residue ``r`` (0-based, mdtraj ``resid``).
    """
    import numpy as np

    from .inputfile import CV_TYPES

    key, width, atoms = f"cvs[{index}].atoms", CV_TYPES[cv["type"]], cv["atoms"]
    if isinstance(atoms, dict) and "indices" in atoms:
        picked = atoms["indices"]
    else:
        if topology is None:
            raise ValueError(f"{key}: a selection needs a topology; give system.pdb or use {{indices: [...]}}")
        import mdtraj as md

        top = md.Topology.from_openmm(topology)
        if isinstance(atoms, dict):
            name = next(iter(atoms))
            rows, _ = getattr(md, f"compute_{name}")(md.Trajectory(np.zeros((1, top.n_atoms, 3)), top))
            valid = sorted({top.atom(int(r[2])).residue.index for r in rows})
            rows = [list(map(int, r)) for r in rows if top.atom(int(r[2])).residue.index == atoms[name]]
            if not rows:
                contiguous = len(valid) > 1 and valid == list(range(valid[0], valid[-1] + 1))
                where = f"{valid[0]}..{valid[-1]}" if contiguous else ", ".join(map(str, valid)) or "none"
                raise ValueError(f"{key}: residue {atoms[name]} has no {name} torsion; residue numbers are 0-based "
                                 f"(mdtraj resid; the first residue is 0) and the residues with a {name} torsion "
                                 f"here are {where}")
            picked = rows[0]
        else:
            def pick(sel):
                try:
                    return [int(i) for i in top.select(sel)]
                except Exception as exc:  # noqa: BLE001 - mdtraj raises several kinds for bad syntax
                    raise ValueError(f"{key}: bad mdtraj selection {sel!r}: {_first_line(exc)}") from None

            if isinstance(atoms, str):
                picked = pick(atoms)
            else:
                picked = []
                for sel in atoms:
                    one = pick(sel)
                    if len(one) != 1:
                        raise ValueError(f"{key}: each selection of a list picks one atom; {sel!r} picks {len(one)}")
                    picked += one
    if len(picked) != width:
        raise ValueError(f"{key}: a {cv['type']} needs {width} atom{'s' * (width > 1)}, got {len(picked)} "
                         f"({picked[:8]}{'...' if len(picked) > 8 else ''})")
    if max(picked) >= n_atoms:
        raise ValueError(f"{key}: atom index {max(picked)} but the system has {n_atoms} atoms (0-based)")
    if len(set(picked)) != width:
        raise ValueError(f"{key}: repeated atom in {picked}")
    return picked


def build_cvs(cvs: list, topology, n_atoms: int, positions=None, system=None):
    """The :class:`~openmm_nnbias.cvs.CVSet` of ``RunInput.cvs``.

    ``positions`` (nm, the starting structure: the default RMSD reference) and ``system`` (for
    ``weights: masses``) are needed by some group CVs (:mod:`~openmm_nnbias.runners.inputfile_cvs`).
    """
    from ..cvs import Angle, CVSet, Distance, Position, Torsion
    from .inputfile_cvs import EXTRA_CV_TYPES, build_extra_cv

    made = []
    for i, cv in enumerate(cvs):
        if cv["type"] in EXTRA_CV_TYPES:
            made.append(build_extra_cv(cv, i, topology, n_atoms, positions, system))
            continue
        idx, name, lo, hi = select_atoms(cv, i, topology, n_atoms), cv["name"], cv["lower"], cv["upper"]
        made.append({"torsion": lambda: Torsion(idx, name), "distance": lambda: Distance(idx, lo, hi, name),
                     "angle": lambda: Angle(idx, lo, hi, name),
                     "position": lambda: Position(idx[0], cv["axis"], lo, hi, name)}[cv["type"]]())
    return CVSet(made)


def check_barostat(system, state: dict, source: str = "the System") -> None:
    """Reconcile ``state.pressure`` with a barostat already in ``system`` (adds one for a new pressure).

    ``pressure`` given and a barostat present, or ``pressure: null`` with one present: ValueError
    saying so. ``pressure`` given and none present: a ``MonteCarloBarostat`` (25 steps) is added; it
    needs a periodic System. Without the key the System's own barostat (if any) is kept.
    """
    import openmm as mm
    from openmm import unit

    barostats = [f for f in system.getForces() if "Barostat" in type(f).__name__]
    p = state["pressure"]
    if barostats and state["pressure_given"]:
        name = type(barostats[0]).__name__
        try:
            at = f" at {barostats[0].getDefaultPressure().value_in_unit(unit.bar):g} bar"
        except Exception:  # noqa: BLE001 - anisotropic barostats have no single pressure
            at = ""
        what = "null (NVT)" if p is None else f"{p:g} bar"
        raise ValueError(f"state.pressure is {what} but {source} already has a {name}{at}: remove state.pressure "
                         "to run with the System's barostat, or remove the barostat from the System")
    if p is not None:
        if not system.usesPeriodicBoundaryConditions():
            raise ValueError("state.pressure needs a periodic System (a barostat changes the box)")
        system.addForce(mm.MonteCarloBarostat(p * unit.bar, state["temperature"] * unit.kelvin, 25))


def build_input_deepves(spec, out: Optional[str] = None, *, group=None, mts: int = 1, threads: Optional[int] = None,
                        mode: Optional[str] = None):
    """Build ``(simulation, updater, timestep_ps)`` from a :class:`~openmm_nnbias.runners.inputfile.RunInput`.

    Parameters
    ----------
    spec : RunInput
    out : str, optional
        Output folder (default ``spec.out``); created last, once everything else was checked.
    group : WalkerGroup, optional
        Multiple walkers (see :func:`~openmm_nnbias.runners.build_deepves`).
    mts : int
        Inner steps per bias evaluation; strides are divided by it.
    threads : int, optional
        CPU threads (default ``spec.threads``).
    mode : str, optional
        Execution mode (default ``spec.deepves["mode"]``).

    Returns
    -------
    tuple
        ``(openmm.app.Simulation, DeepVESUpdater, float)``, the last the MD step in ps.
    """
    import torch
    from openmm import app

    from ..platforms import get_platform
    from ..ves import KLThreshold, MinimumTime, MonteCarlo, Uniform, WellTempered
    from .deepves import assemble_deepves, mts_strides

    d, st = spec.deepves, spec.state
    if isinstance(mts, bool) or not isinstance(mts, int) or mts < 1:
        raise ValueError(f"mts must be an integer >= 1 (inner steps per bias evaluation), got {mts!r}")
    plat = get_platform(st["platform"])
    loaded = load_system(spec.system)
    source = {"xml": spec.system["xml"]}.get(spec.system["form"], "the System")
    check_barostat(loaded.system, st, source)
    cvs = build_cvs(spec.cvs, loaded.topology, loaded.system.getNumParticles(), loaded.positions, loaded.system)
    torch.manual_seed(spec.seed)
    stride, sample = d["stride"], d["sampleStride"]
    if mts > 1:
        stride, sample = mts_strides(stride, sample, mts)
    if d["target"] == "monte-carlo":
        target = MonteCarlo(biasFactor=d["biasFactor"], chains=d["chains"], seed=spec.seed,
                            marginalBins=d["bins"] if isinstance(d["bins"], int) else d["bins"][0])
    else:
        target = Uniform(d["bins"]) if d["target"] == "uniform" else WellTempered(d["biasFactor"], d["bins"])
    decay = KLThreshold(d["klThreshold"])
    if d["decayAfter"]:
        decay = MinimumTime(iterations=int(math.ceil(d["decayAfter"] / (stride * mts * st["timestep"]) - 1e-9))) & decay
    options = {k: d[k] for k in ("hidden", "activation", "learningRate", "outputLearningRateScale", "tauKL", "tauDecay", "freezeRatio",
                                 "fesInterval", "checkpointInterval", "colvarStride", "pushInterval", "precision",
                                 "learnerCPUs") if d[k] is not None}
    options["stride"] = stride
    return assemble_deepves(loaded.topology or app.Topology(), loaded.system, loaded.positions, cvs,
                            temperature=st["temperature"], timestep=st["timestep"], friction=st["friction"],
                            platform=plat, threads=spec.threads if threads is None else threads, seed=spec.seed,
                            target=target, decay=decay, sampleStride=sample, options=options, backend=d["backend"],
                            out=spec.out if out is None else out, group=group, mts=mts,
                            mode=d["mode"] if mode is None else mode,
                            box=loaded.box if loaded.system.usesPeriodicBoundaryConditions() else None,
                            velocities=loaded.velocities)
