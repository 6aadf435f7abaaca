"""The input file of ``openmm-nnbias deepves --input run.yaml``: schema, units and validation.

:func:`read_input` reads a YAML file into a :class:`RunInput` with every key checked (one error
naming the key: TypeError for a wrong type, ValueError for a wrong value or an unknown key,
FileNotFoundError for a missing file) and every default filled in. Nothing is loaded or written
here; :mod:`openmm_nnbias.runners.userinput` builds the run from a :class:`RunInput`.

Units: a physical value is a plain number in the documented unit (temperature K, pressure bar,
timestep fs, friction 1/ps, lengths nm, angles rad, masses amu) or a string with one of the
units of :data:`UNITS` (``"300 K"``, ``"2 fs"``, ``"10 A"``, ``"180 deg"``); run lengths and
``decayAfter`` are strings such as ``"10ns"``. Relative paths are relative to the input file.

Examples
--------
>>> spec = parse_input({"system": {"xml": "s.xml", "state": "s.xml"},
...                     "cvs": [{"type": "torsion", "name": "phi", "atoms": {"indices": [4, 6, 8, 14]}}],
...                     "state": {"timestep": "0.002 ps"}, "run": {"time": "1ns", "out": "run"}},
...                    check_files=False)
>>> spec.state["timestep"], spec.steps, spec.deepves["target"]
(0.002, 500000, 'well-tempered')
>>> parse_input({"system": {"xml": "s.xml"}, "sytem": {}}, check_files=False)
Traceback (most recent call last):
...
ValueError: unknown key 'sytem' (did you mean 'system'? known: cvs, deepves, run, state, system)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Optional

from .._units import UNITS, parse_time
from .inputfile_common import REQUIRED, _near, _Section

__all__ = ["RunInput", "read_input", "parse_input", "UNITS", "SCHEMA", "CV_TYPES"]

CV_TYPES = {"torsion": 4, "distance": 2, "angle": 3, "position": 1}
_NONBONDED = ("NoCutoff", "CutoffNonPeriodic", "CutoffPeriodic", "Ewald", "PME", "LJPME")
_CONSTRAINTS = (None, "HBonds", "AllBonds", "HAngles")
_TARGETS = ("well-tempered", "uniform", "monte-carlo")
_ACTIVATIONS = ("relu", "elu", "tanh", "softplus", "silu")  # = bias.network.ACTIVATIONS

#: known keys of each section and their defaults (``REQUIRED``: no default)
SCHEMA = {
    "system": {"xml": None, "pdb": None, "state": None, "forcefield": None, "nonbondedMethod": "NoCutoff",
               "cutoff": 1.0, "constraints": "HBonds", "rigidWater": True, "hydrogenMass": None,
               "prmtop": None, "inpcrd": None},
    "cvs": {"type": REQUIRED, "name": REQUIRED, "atoms": REQUIRED, "lower": None, "upper": None, "axis": None},
    "state": {"temperature": 300.0, "pressure": None, "timestep": 2.0, "friction": 1.0, "platform": None},
    "deepves": {"target": None, "biasFactor": 10.0, "bins": 50, "chains": 2000, "stride": 500, "sampleStride": 10,
                "learningRate": 1e-3, "outputLearningRateScale": 1.0, "tauKL": 10000.0, "tauDecay": 1000.0, "klThreshold": 0.5, "decayAfter": None,
                "freezeRatio": 5e-5, "hidden": [48, 24, 12], "activation": "relu", "backend": None, "mode": "sync",
                "pushInterval": 1, "precision": "mixed", "learnerCPUs": None, "fesInterval": 100,
                "checkpointInterval": 100, "colvarStride": None},
    "run": {"time": None, "steps": None, "out": None, "seed": 1, "threads": 1},
}


@dataclass
class RunInput:
    """A validated input file: sections with every default filled in, paths absolute.

    Attributes
    ----------
    system : dict
        One of three forms (``form``: ``"xml"``, ``"pdb"``, ``"prmtop"``) and its keys.
    cvs : list of dict
        ``type``, ``name``, ``atoms`` (a selection string, a list of one-atom selections,
        ``{"indices": [...]}`` (0-based) or ``{"phi"|"psi": residue index}``), ``lower``/``upper``
        (nm or rad) and ``axis``.
    state : dict
        ``temperature`` K, ``pressure`` bar (``pressure_given``: the key was in the file),
        ``timestep`` ps, ``friction`` 1/ps, ``platform``.
    deepves : dict
        Deep-VES settings (strides in MD steps, times in iterations, ``decayAfter`` ps).
    steps, out, seed, threads
        MD steps of the run, output folder, seed, CPU threads; ``labels``: overridden keys -> flags.
    """

    system: dict
    cvs: list
    state: dict
    deepves: dict
    steps: int
    out: str
    seed: int = 1
    threads: int = 1
    source: Optional[str] = None
    labels: dict = field(default_factory=dict)


def _system(s: _Section, base: str, check: bool) -> dict:
    forms = [k for k in ("xml", "forcefield", "prmtop") if s.has(k)]
    if len(forms) != 1:
        raise ValueError("the system section needs exactly one of 'xml' (with 'pdb' and/or 'state'), "
                         f"'forcefield' (with 'pdb') or 'prmtop' (with 'inpcrd'), got {forms or 'none'}")
    form = {"forcefield": "pdb"}.get(forms[0], forms[0])
    built = {"nonbondedMethod", "cutoff", "constraints", "rigidWater", "hydrogenMass"}
    allowed = {"xml": {"xml", "pdb", "state"}, "pdb": {"pdb", "forcefield"} | built,
               "prmtop": {"prmtop", "inpcrd"} | built}[form]
    extra = sorted(k for k in s.raw if k not in allowed)
    if extra:
        raise ValueError(f"system.{extra[0]} does not apply to a system given by '{forms[0]}'")
    need = {"xml": ["pdb", "state"], "pdb": ["pdb"], "prmtop": ["inpcrd"]}[form]
    if not any(s.has(k) for k in need):
        raise ValueError(f"system.{forms[0]} needs system.{' or system.'.join(need)} (positions)")
    out = {"form": form}
    for key in ("xml", "pdb", "state", "prmtop", "inpcrd"):
        out[key] = s.path_(key, base, check)
    if form == "pdb":
        ff = s.value("forcefield")
        ff = [ff] if isinstance(ff, str) else ff
        if not isinstance(ff, list) or not ff or not all(isinstance(f, str) for f in ff):
            raise TypeError(f"{s.name('forcefield')} must be a file name or a list of them, got {ff!r}")
        local = [os.path.join(base, f) for f in ff]
        out["forcefield"] = [p if os.path.isfile(p) else f for p, f in zip(local, ff)]  # else OpenMM's bundled file
    if form != "xml":
        out.update(nonbondedMethod=s.text("nonbondedMethod", _NONBONDED), cutoff=s.number("cutoff", 0, True, "nm"),
                   constraints=s.text("constraints", _CONSTRAINTS), hydrogenMass=s.number("hydrogenMass", 0, True, "amu"))
        rigid = s.value("rigidWater")
        if not isinstance(rigid, bool):
            raise TypeError(f"{s.name('rigidWater')} must be true or false, got {rigid!r}")
        out["rigidWater"] = rigid
    return out


def _cv(raw, i: int, labels: dict, base: str = ".", check: bool = False) -> dict:
    from .inputfile_cvs import EXTRA_CV_TYPES, parse_extra_cv

    if isinstance(raw, dict) and "type" in raw:  # the type first: it decides the keys
        kind = _Section({"type": raw["type"]}, f"cvs[{i}]", {"type": REQUIRED}, labels).text(
            "type", tuple(CV_TYPES) + EXTRA_CV_TYPES)
        if kind in EXTRA_CV_TYPES:
            return parse_extra_cv(raw, i, kind, labels, base, check)
    s = _Section(raw, f"cvs[{i}]", SCHEMA["cvs"], labels)
    kind = s.text("type", tuple(CV_TYPES))
    cv = {"type": kind, "name": s.text("name"), "atoms": s.value("atoms")}
    atoms = cv["atoms"]
    if isinstance(atoms, dict):
        keys = sorted(atoms)
        if keys not in (["indices"], ["phi"], ["psi"]):
            raise ValueError(f"cvs[{i}].atoms must be a selection string, a list of selections, {{indices: [...]}} "
                             f"(0-based) or {{phi: residue}} / {{psi: residue}}, got keys {keys}")
        if keys != ["indices"] and kind != "torsion":
            raise ValueError(f"cvs[{i}].atoms.{keys[0]} picks a torsion, but the CV type is {kind!r}")
        a = _Section(atoms, f"cvs[{i}].atoms", {keys[0]: REQUIRED}, labels)
        cv["atoms"] = {"indices": a.ints("indices", 0)} if keys == ["indices"] else {keys[0]: a.integer(keys[0], 0)}
    elif isinstance(atoms, list):
        if not all(isinstance(x, str) for x in atoms):
            raise TypeError(f"cvs[{i}].atoms as a list takes one selection string per atom, got {atoms!r} "
                            "(0-based indices go in {indices: [...]})")
    elif not isinstance(atoms, str):
        raise TypeError(f"cvs[{i}].atoms must be a selection string, a list of selections or {{indices: [...]}}, "
                        f"got {type(atoms).__name__}")
    unit = "rad" if kind == "angle" else "nm"
    lower, upper = s.number("lower", unit=unit), s.number("upper", unit=unit)
    if kind == "torsion" and (lower is not None or upper is not None):
        raise ValueError(f"cvs[{i}]: a torsion is periodic on [-pi, pi) rad; remove lower/upper")
    if kind in ("distance", "position") and (lower is None or upper is None):
        raise ValueError(f"cvs[{i}] ({kind}) needs lower and upper (nm)")
    if kind == "angle":
        lower, upper = (0.0 if lower is None else lower), (math.pi if upper is None else upper)
    if lower is not None and not upper > lower:  # noqa: SIM102
        raise ValueError(f"cvs[{i}]: lower must be < upper, got [{lower:g}, {upper:g}] {unit}")
    cv.update(lower=lower, upper=upper, axis=s.text("axis", (None, "x", "y", "z")))
    if (kind == "position") != (cv["axis"] is not None):
        why = "a position CV needs axis x, y or z" if kind == "position" else "only a position CV has an axis"
        raise ValueError(f"cvs[{i}].axis: {why}")
    return cv


def _cvs(raw, labels: dict, base: str = ".", check: bool = False) -> list:
    from .inputfile_cvs import output_names

    if not isinstance(raw, list) or not raw:
        raise TypeError(f"cvs must be a non-empty list of CVs, got {type(raw).__name__}")
    cvs = [_cv(c, i, labels, base, check) for i, c in enumerate(raw)]
    names = [n for c in cvs for n in output_names(c)]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"cvs: names must be unique, {dup[0]!r} is used twice")
    return cvs


def _deepves(d: _Section, cvs: list) -> dict:
    from .inputfile_cvs import choose_backend, output_names

    n_cvs = sum(len(output_names(c)) for c in cvs)
    out = {k: d.number(k, 0, True) for k in ("biasFactor", "learningRate", "outputLearningRateScale", "klThreshold")}
    out.update({k: d.number(k, 1.0) for k in ("tauKL", "tauDecay")})
    out.update({k: d.integer(k) for k in ("chains", "stride", "sampleStride", "pushInterval", "fesInterval",
                                         "checkpointInterval", "colvarStride")})
    out["freezeRatio"] = d.number("freezeRatio", 0, True)
    if out["biasFactor"] <= 1:
        raise ValueError(f"{d.name('biasFactor')} must be > 1, got {out['biasFactor']:g}")
    if not out["freezeRatio"] < 1:
        raise ValueError(f"{d.name('freezeRatio')} must be < 1, got {out['freezeRatio']:g}")
    bins = d.value("bins")
    out["bins"] = d.ints("bins") if isinstance(bins, list) else d.integer("bins", 2)
    out["hidden"] = d.ints("hidden")
    out["target"] = d.text("target", (None,) + _TARGETS) or ("well-tempered" if n_cvs <= 3 else "monte-carlo")
    out["backend"] = choose_backend(cvs, d.text("backend", (None, "table", "cmap", "torch", "cvforce")),
                                    d.name("backend"))
    out.update(activation=d.text("activation", _ACTIVATIONS), mode=d.text("mode", ("sync", "thread", "process")),
               precision=d.text("precision", ("mixed", "double")))
    out["learnerCPUs"] = d.ints("learnerCPUs", 0)
    after = d.value("decayAfter")
    out["decayAfter"] = None if after is None else parse_time(after, d.name("decayAfter"))
    if out["target"] == "uniform" and d.has("biasFactor"):
        raise ValueError(f"{d.name('biasFactor')} does not apply to target 'uniform'")
    return out


def parse_input(raw: Any, base: str = ".", overrides: Optional[dict] = None, check_files: bool = True) -> RunInput:
    """Validate the parsed contents ``raw`` of an input file into a :class:`RunInput`.

    Parameters
    ----------
    raw : dict
        The file's top-level mapping (sections ``system``, ``cvs``, ``state``, ``deepves``, ``run``).
    base : str
        Folder that relative paths are relative to.
    overrides : dict, optional
        ``{"section.key": (value, "--flag")}``: command-line values replacing the file's (None
        values ignored); messages about them name the flag. ``run.time`` or ``run.steps``
        replaces both.
    check_files : bool
        Check that the named files exist.

    Returns
    -------
    RunInput
    """
    if not isinstance(raw, dict):
        raise TypeError(f"the input file must hold a mapping of sections, got {type(raw).__name__}")
    for key in raw:
        if key not in SCHEMA:
            raise ValueError(f"unknown key {key!r} ({_near(str(key), SCHEMA)}known: {', '.join(sorted(SCHEMA))})")
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    labels = {}
    for path, (value, flag) in (overrides or {}).items():
        if value is None:
            continue
        section, key = path.split(".")
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            continue  # reported below
        if key in ("time", "steps"):
            raw[section].pop("time", None), raw[section].pop("steps", None)
        raw[section][key] = value
        labels[path] = flag
    for key in ("system", "cvs", "run"):
        if key not in raw:
            raise ValueError(f"the input file needs a '{key}' section")
    system = _system(_Section(raw["system"], "system", SCHEMA["system"], labels), base, check_files)
    cvs = _cvs(raw["cvs"], labels, base, check_files)
    st = _Section(raw.get("state") or {}, "state", SCHEMA["state"], labels)
    state = {"temperature": st.number("temperature", 0, True, "K"), "pressure": st.number("pressure", 0, True, "bar"),
             "pressure_given": "pressure" in st.raw, "timestep": st.number("timestep", 0, True, "fs") / 1000.0,
             "friction": st.number("friction", 0, False, "1/ps"), "platform": st.text("platform")}
    deepves = _deepves(_Section(raw.get("deepves") or {}, "deepves", SCHEMA["deepves"], labels), cvs)
    r = _Section(raw["run"], "run", SCHEMA["run"], labels)
    if r.has("time") == r.has("steps"):
        raise ValueError("run needs exactly one of 'time' (e.g. '10ns') and 'steps' (in the file or in overrides)")
    steps = r.integer("steps")
    if steps is None:
        ps = parse_time(r.value("time"), r.name("time"))
        steps = int(round(ps / state["timestep"]))
        if steps < 1:
            raise ValueError(f"{r.name('time')} {r.value('time')} is shorter than one MD step "
                             f"({state['timestep'] * 1000:g} fs)")
    out = r.text("out")
    if out is None:
        raise ValueError("run.out (the output folder) is missing; give it in the file or in overrides")
    return RunInput(system=system, cvs=cvs, state=state, deepves=deepves, steps=steps,
                    out=os.path.normpath(os.path.join(base, out)) if "run.out" not in labels else out,
                    seed=r.integer("seed", 0), threads=r.integer("threads"), labels=labels)


def read_input(path: str, overrides: Optional[dict] = None) -> RunInput:
    """Read and validate the YAML input file ``path`` (see :func:`parse_input` for ``overrides``).

    Raises
    ------
    FileNotFoundError
        ``path`` or a file it names does not exist.
    ValueError, TypeError
        A wrong value or type, an unknown key or a file that is not valid YAML (one line, naming the key).
    """
    import yaml

    if not os.path.isfile(path):
        raise FileNotFoundError(f"input file {path!r} not found")
    try:
        with open(path) as fh:
            raw = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ValueError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    spec = parse_input(raw, os.path.dirname(os.path.abspath(path)), overrides)
    spec.source = os.path.abspath(path)
    return spec
