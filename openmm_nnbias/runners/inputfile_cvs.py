"""The group CV types of the input file (protein CVs): their keys, validation and construction.

A ``cvs[i]`` entry whose ``type`` is one of :data:`GROUP_CV_TYPES` takes the keys of
:data:`GROUP_SCHEMAS` (the keyword names of its class in :mod:`openmm_nnbias.cvs`, plus ``type`` and
``name``). The type is the snake_case of the class name without a ``CV`` suffix (``PathCV`` →
``path``), as for ``torsion``, ``distance``, ``angle`` and ``position``.

* A group of atoms (``atoms``, ``groupA``, ``groupB``) is an mdtraj selection string (its atoms in
  index order, e.g. ``"name CA"``) or ``{indices: [0-based ints]}``, in the order given.
* ``residues`` (``helix_torsion_content``) is a selection string (the residues of its atoms) or
  ``{indices: [0-based residue indices]}``.
* ``reference`` (``rmsd``: default the starting positions; ``number_of_contacts``: native contacts)
  is a PDB file and ``frames`` (``path``) a multi-model PDB file or a list of PDB files, relative to
  the input file; each model holds either every atom of the System or one atom per CV atom.
* ``weights``: ``masses`` (the System's particle masses) or a list of positive numbers.
* ``lower``/``upper`` (nm; ``path``: ``zLower``/``zUpper`` in nm²) are required where the CV has no
  natural range: ``radius_of_gyration``, ``rmsd``, ``centroid_distance`` and ``path`` (``zUpper``).
  ``number_of_contacts`` defaults to [0, number of pairs] ([0, 1] with ``normalize``),
  ``helix_torsion_content`` to [0, residues − 2] ([0, 1] with ``normalize``).

:func:`parse_group_cv` checks the keys (one error naming the key), :func:`build_group_cv` selects the
atoms and builds the CV; the ``path`` CV gives two columns, ``<name>_s`` and ``<name>_z``. The ``force``
type (an OpenMM Force as the CV) is in :mod:`~openmm_nnbias.runners.inputfile_force`;
:func:`parse_extra_cv` and :func:`build_extra_cv` dispatch to either, :func:`choose_backend` picks the bias
backend (group CVs: ``torch``; force CVs: ``cvforce``).
"""

from __future__ import annotations

import math
import numbers

__all__ = ["GROUP_CV_TYPES", "EXTRA_CV_TYPES", "GROUP_SCHEMAS", "parse_extra_cv", "parse_group_cv", "build_extra_cv",
           "build_group_cv", "output_names", "choose_backend"]

_DEG = math.pi / 180
_RANGE = {"lower": None, "upper": None}
#: keys of each group CV type (besides ``type`` and ``name``) and their defaults; see the module text
GROUP_SCHEMAS = {
    "radius_of_gyration": {"atoms": "required", "weights": None, **_RANGE},
    "rmsd": {"atoms": "required", "reference": None, "align": True, **_RANGE},
    "number_of_contacts": {"groupA": "required", "groupB": None, "r0": 0.3, "nn": 6, "mm": 12, "reference": None,
                           "referenceCutoff": None, "normalize": False, **_RANGE},
    "centroid_distance": {"groupA": "required", "groupB": "required", "weights": None, **_RANGE},
    "helix_torsion_content": {"residues": "required", "phiReference": -63.8 * _DEG, "psiReference": -41.1 * _DEG,
                              "tolerance": 25 * _DEG, "halfExponent": 3, "normalize": False, **_RANGE},
    "path": {"atoms": "required", "frames": "required", "lam": "required", "align": True, "zLower": None,
             "zUpper": None},
}
GROUP_CV_TYPES = tuple(GROUP_SCHEMAS)
#: the CV types parsed here: the group CVs and ``force`` (:mod:`~openmm_nnbias.runners.inputfile_force`)
EXTRA_CV_TYPES = GROUP_CV_TYPES + ("force",)
_NEEDS_RANGE = {"radius_of_gyration": ("lower", "upper"), "rmsd": ("lower", "upper"),
                "centroid_distance": ("lower", "upper"), "path": ("zUpper",)}


def parse_extra_cv(raw: dict, i: int, kind: str, labels: dict, base: str, check: bool) -> dict:
    """Validate ``cvs[i]`` of a type of :data:`EXTRA_CV_TYPES`."""
    if kind == "force":
        from .inputfile_force import parse_force_cv

        return parse_force_cv(raw, i, labels, base, check)
    return parse_group_cv(raw, i, kind, labels, base, check)


def build_extra_cv(cv: dict, i: int, topology, n_atoms: int, positions=None, system=None):
    """The CV of a parsed ``cvs[i]`` of a type of :data:`EXTRA_CV_TYPES` (see :func:`build_group_cv`)."""
    if cv["type"] == "force":
        from .inputfile_force import build_force_cv

        return build_force_cv(cv, i)
    return build_group_cv(cv, i, topology, n_atoms, positions, system)


def choose_backend(cvs: list, given, key: str) -> str:
    """The bias backend of parsed CVs: ``given`` (from ``key``) checked, or the default.

    ``cvforce`` for ``force`` CVs (which take no other kind), ``torch`` with a group CV or more than 3
    CV columns or torsions mixed with other CVs, else ``table``.
    """
    kinds = [c["type"] for c in cvs]
    if "force" in kinds:
        other = next((f"cvs[{k}] is a {t}" for k, t in enumerate(kinds) if t != "force"), None)
        if other:
            raise ValueError(f"cvs: force CVs take no other kind of CV ({other})")
        if given not in (None, "cvforce"):
            raise ValueError(f"{key}: force CVs need the cvforce backend, got {given!r}")
        return "cvforce"
    group = next((t for t in kinds if t in GROUP_CV_TYPES), None)
    if given == "cvforce":
        raise ValueError(f"{key}: the cvforce backend takes force CVs only")
    if group and given not in (None, "torch"):
        raise ValueError(f"{key}: a {group} CV needs the torch backend, got {given!r}")
    n_cvs = sum(len(output_names(c)) for c in cvs)
    mixed = len({t == "torsion" for t in kinds}) > 1  # the table backend takes one periodic flag
    return given or ("table" if n_cvs <= 3 and not mixed and not group else "torch")


def output_names(cv: dict) -> list:
    """Column names of a parsed CV (``path``: ``<name>_s``, ``<name>_z``; others: ``name``)."""
    return [cv["name"] + "_s", cv["name"] + "_z"] if cv["type"] == "path" else [cv["name"]]


def _group(s, key: str, what: str = "atom"):
    """A selection string or ``{indices: [...]}`` (0-based), checked."""
    from .inputfile_common import REQUIRED, _Section

    v = s.value(key)
    if v is None or isinstance(v, str):
        if isinstance(v, str) and not v.strip():
            raise ValueError(f"{s.name(key)} must not be an empty selection")
        return v
    if isinstance(v, dict):
        sub = _Section(v, s.name(key), {"indices": REQUIRED}, s.labels)
        return {"indices": sub.ints("indices", 0)}
    raise TypeError(f"{s.name(key)} must be an mdtraj selection string or {{indices: [0-based {what} indices]}}, "
                    f"got {type(v).__name__} {v!r}")


def _flag(s, key: str) -> bool:
    v = s.value(key)
    if not isinstance(v, bool):
        raise TypeError(f"{s.name(key)} must be true or false, got {v!r}")
    return v


def _weights(s):
    v = s.value("weights")
    if v is None or v == "masses":
        return v
    if isinstance(v, list) and v and all(isinstance(w, numbers.Real) and not isinstance(w, bool) for w in v):
        if not all(math.isfinite(w) and w > 0 for w in v):
            raise ValueError(f"{s.name('weights')} must be finite numbers > 0, got {v}")
        return [float(w) for w in v]
    raise TypeError(f"{s.name('weights')} must be 'masses' or a non-empty list of numbers, got {v!r}")


def parse_group_cv(raw: dict, i: int, kind: str, labels: dict, base: str, check: bool) -> dict:
    """Validate ``cvs[i]`` of group type ``kind`` (keys of :data:`GROUP_SCHEMAS`); paths made absolute."""
    from .inputfile_common import REQUIRED, _Section

    known = {"type": REQUIRED, "name": REQUIRED}
    known.update({k: (REQUIRED if v == "required" else v) for k, v in GROUP_SCHEMAS[kind].items()})
    for key in raw:
        if key not in known:
            from .inputfile_common import _near

            raise ValueError(f"unknown key 'cvs[{i}].{key}' for a {kind} CV ({_near(str(key), known)}known: "
                             f"{', '.join(known)})")
    s = _Section(raw, f"cvs[{i}]", known, labels)
    cv = {"type": kind, "name": s.text("name")}
    for key in ("atoms", "groupA", "groupB"):
        if key in known:
            cv[key] = _group(s, key)
    if "residues" in known:
        cv["residues"] = _group(s, "residues", "residue")
    if "weights" in known:
        cv["weights"] = _weights(s)
    for key in ("align", "normalize"):
        if key in known:
            cv[key] = _flag(s, key)
    if "reference" in known:
        cv["reference"] = s.path_("reference", base, check)
    if kind == "number_of_contacts":
        cv.update(r0=s.number("r0", 0, True, "nm"), nn=s.integer("nn"), mm=s.integer("mm"),
                  referenceCutoff=s.number("referenceCutoff", 0, True, "nm"))
        if cv["nn"] == cv["mm"]:
            raise ValueError(f"cvs[{i}].nn and cvs[{i}].mm must differ, got {cv['nn']} for both")
        if cv["referenceCutoff"] is not None and cv["reference"] is None:
            raise ValueError(f"cvs[{i}].referenceCutoff needs cvs[{i}].reference (native contacts)")
    if kind == "helix_torsion_content":
        cv.update({k: s.number(k, unit="rad") for k in ("phiReference", "psiReference")})
        cv.update(tolerance=s.number("tolerance", 0, True, "rad"), halfExponent=s.integer("halfExponent"))
    if kind == "path":
        frames = s.value("frames")
        frames = [frames] if isinstance(frames, str) else frames
        if not isinstance(frames, list) or not frames or not all(isinstance(f, str) for f in frames):
            raise TypeError(f"cvs[{i}].frames must be a PDB file (several models) or a list of PDB files, "
                            f"got {frames!r}")
        cv["frames"] = [_path(s, "frames", f, base, check) for f in frames]
        cv.update(lam=s.number("lam", 0, True), zLower=s.number("zLower"), zUpper=s.number("zUpper"))
    else:
        unit = "nm" if kind in ("radius_of_gyration", "rmsd", "centroid_distance") else None
        cv.update(lower=s.number("lower", unit=unit), upper=s.number("upper", unit=unit))
    needed = _NEEDS_RANGE.get(kind, ())
    if any(cv[k] is None for k in needed):
        unit = "nm^2" if kind == "path" else "nm"
        raise ValueError(f"cvs[{i}] ({kind}) needs {' and '.join(needed)} ({unit})")
    lo, hi = ("zLower", "zUpper") if kind == "path" else ("lower", "upper")
    if cv[lo] is not None and cv[hi] is not None and not cv[hi] > cv[lo]:
        raise ValueError(f"cvs[{i}]: {lo} must be < {hi}, got [{cv[lo]:g}, {cv[hi]:g}]")
    return cv


def _path(s, key: str, value: str, base: str, check: bool) -> str:
    import os

    p = os.path.normpath(os.path.join(base, os.path.expanduser(value)))
    if check and not os.path.isfile(p):
        raise FileNotFoundError(f"{s.name(key)}: file {value!r} not found (looked for {p})")
    return p


def _select(cv: dict, i: int, key: str, topology, n_atoms: int) -> list:
    """0-based atom indices of the group ``cv[key]``."""
    from .inputfile_common import _first_line

    name, spec = f"cvs[{i}].{key}", cv[key]
    if isinstance(spec, dict):
        picked = list(spec["indices"])
    else:
        if topology is None:
            raise ValueError(f"{name}: a selection needs a topology; give system.pdb or use {{indices: [...]}}")
        import mdtraj as md

        try:
            picked = [int(a) for a in md.Topology.from_openmm(topology).select(spec)]
        except Exception as exc:  # noqa: BLE001 - mdtraj raises several kinds for bad syntax
            raise ValueError(f"{name}: bad mdtraj selection {spec!r}: {_first_line(exc)}") from None
        if not picked:
            raise ValueError(f"{name}: selection {spec!r} picks no atom")
    if max(picked) >= n_atoms:
        raise ValueError(f"{name}: atom index {max(picked)} but the system has {n_atoms} atoms (0-based)")
    if len(set(picked)) != len(picked):
        raise ValueError(f"{name}: repeated atom in {picked[:8]}{'...' if len(picked) > 8 else ''}")
    return picked


def _models(key: str, path: str, n_system: int, n_cv: int) -> list:
    """Positions (nm, numpy) of every model of the PDB file ``path``, each checked for its atom count."""
    import numpy as np
    from openmm import app, unit

    from .inputfile_common import _read

    pdb = _read(key, path, app.PDBFile)
    out = []
    for k in range(pdb.getNumFrames()):
        x = np.asarray(pdb.getPositions(asNumpy=True, frame=k).value_in_unit(unit.nanometer))
        if len(x) not in (n_system, n_cv):
            raise ValueError(f"{key}: {path} has {len(x)} atoms; it needs every atom of the System ({n_system}) "
                             f"or one per CV atom ({n_cv})")
        out.append(x)
    return out


def build_group_cv(cv: dict, i: int, topology, n_atoms: int, positions=None, system=None):
    """The CV of a parsed group-type ``cvs[i]`` (class of :mod:`openmm_nnbias.cvs`).

    Parameters
    ----------
    cv : dict
        ``RunInput.cvs[i]``.
    i : int
        Its index (for messages).
    topology : openmm.app.Topology or None
        For selections and residues.
    n_atoms : int
        Particles of the System.
    positions : Quantity or array, optional
        Starting positions (nm): the default ``reference`` of ``rmsd``.
    system : openmm.System, optional
        For ``weights: masses``.
    """
    from .. import cvs as C

    kind, name = cv["type"], cv["name"]
    groups = {k: _select(cv, i, k, topology, n_atoms) for k in ("atoms", "groupA", "groupB") if cv.get(k) is not None}
    if "atoms" in groups:
        members = groups["atoms"]
    elif "groupA" in groups:  # the CV's atoms: groupA, then those of groupB not in groupA
        members = groups["groupA"] + [a for a in groups.get("groupB", []) if a not in set(groups["groupA"])]
    else:
        members = []

    def weights():
        if cv["weights"] != "masses":
            return cv["weights"]
        if system is None:
            raise ValueError(f"cvs[{i}].weights: masses need the System")
        from openmm import unit

        atoms = groups.get("atoms") or groups["groupA"] + groups["groupB"]
        return [system.getParticleMass(a).value_in_unit(unit.dalton) for a in atoms]

    def reference():
        if cv["reference"] is None:
            if positions is None:
                raise ValueError(f"cvs[{i}].reference: no starting positions to default to; give a PDB file")
            return positions
        return _models(f"cvs[{i}].reference", cv["reference"], n_atoms, len(members))[0]

    def residues():
        spec = cv["residues"]
        if topology is None:
            raise ValueError(f"cvs[{i}].residues: needs a topology; give system.pdb")
        all_res = list(topology.residues())
        if isinstance(spec, dict):
            idx = spec["indices"]
            if max(idx) >= len(all_res):
                raise ValueError(f"cvs[{i}].residues: residue index {max(idx)} but the topology has {len(all_res)} "
                                 "residues (0-based)")
        else:
            atoms = _select(dict(cv, residues=spec), i, "residues", topology, n_atoms)
            idx = sorted({a.residue.index for a in topology.atoms() if a.index in set(atoms)})
        return [all_res[k] for k in idx]

    rng = {"names": name, "lower": cv.get("lower"), "upper": cv.get("upper")}
    try:
        if kind == "radius_of_gyration":
            return C.RadiusOfGyration(groups["atoms"], weights=weights() if cv["weights"] else None, **rng)
        if kind == "rmsd":
            return C.RMSD(groups["atoms"], reference(), align=cv["align"], **rng)
        if kind == "centroid_distance":
            return C.CentroidDistance(groups["groupA"], groups["groupB"], weights=weights() if cv["weights"] else None,
                                      **rng)
        if kind == "number_of_contacts":
            return C.NumberOfContacts(groups["groupA"], groups.get("groupB"), r0=cv["r0"], nn=cv["nn"], mm=cv["mm"],
                                      reference=None if cv["reference"] is None else reference(),
                                      referenceCutoff=cv["referenceCutoff"], normalize=cv["normalize"], **rng)
        if kind == "helix_torsion_content":
            return C.HelixTorsionContent(residues(), phiReference=cv["phiReference"], psiReference=cv["psiReference"],
                                         tolerance=cv["tolerance"], halfExponent=cv["halfExponent"],
                                         normalize=cv["normalize"], **rng)
        frames = [x for p in cv["frames"] for x in _models(f"cvs[{i}].frames", p, n_atoms, len(members))]
        if len(frames) < 2:
            raise ValueError(f"cvs[{i}].frames: a path needs at least 2 frames, got {len(frames)}")
        return C.PathCV(groups["atoms"], frames, lam=cv["lam"], align=cv["align"], names=output_names(cv),
                        zLower=cv["zLower"], zUpper=cv["zUpper"])
    except (ValueError, TypeError) as exc:
        if str(exc).startswith(f"cvs[{i}]"):
            raise
        raise type(exc)(f"cvs[{i}] ({kind}): {exc}") from None
