"""The ``force`` CV type of the input file: an OpenMM Force whose energy is the CV (:class:`~openmm_nnbias.cvs.ForceCV`).

Keys (besides ``type`` and ``name``):

* ``xml``: a serialized OpenMM Force (``XmlSerializer.serialize(force)``, e.g. of a ``CustomCVForce``
  or a cvpack CV), relative to the input file; or
* ``cvpack`` with ``args``: a cvpack class by name (``RadiusOfGyration``, ``Torsion``, ...) and its
  keyword arguments (atom arguments as 0-based indices), e.g.
  ``{type: force, name: rg, cvpack: RadiusOfGyration, args: {group: [4, 8, 14]}, lower: 0.1, upper: 1.0}``;
* ``lower``, ``upper`` (required; the CV's unit), ``periodic`` (default: cvpack's periodic bounds, else
  false), ``unit`` (default: cvpack's unit, else ``"1"``).

The bias over Force CVs is the ``cvforce`` backend (the default for them); they take no other kind of CV.
"""

from __future__ import annotations

__all__ = ["FORCE_SCHEMA", "parse_force_cv", "build_force_cv"]

#: keys of a ``force`` CV besides ``type`` and ``name`` ("required": no default)
FORCE_SCHEMA = {"xml": None, "cvpack": None, "args": None, "lower": "required", "upper": "required",
                "periodic": None, "unit": None}


def parse_force_cv(raw: dict, i: int, labels: dict, base: str, check: bool) -> dict:
    """Validate a ``force`` entry ``cvs[i]`` (one error naming the key)."""
    from .inputfile_common import REQUIRED, _near, _Section

    known = {"type": REQUIRED, "name": REQUIRED}
    known.update({k: (REQUIRED if v == "required" else v) for k, v in FORCE_SCHEMA.items()})
    for key in raw:
        if key not in known:
            raise ValueError(f"unknown key 'cvs[{i}].{key}' for a force CV ({_near(str(key), known)}known: "
                             f"{', '.join(known)})")
    s = _Section(raw, f"cvs[{i}]", known, labels)
    if s.has("xml") == s.has("cvpack"):
        raise ValueError(f"cvs[{i}] (force) needs exactly one of 'xml' (a serialized Force) and 'cvpack' (a class name)")
    args = s.value("args")
    if args is not None and not s.has("cvpack"):
        raise ValueError(f"cvs[{i}].args applies to cvs[{i}].cvpack only")
    if args is not None and (not isinstance(args, dict) or not all(isinstance(k, str) for k in args)):
        raise TypeError(f"cvs[{i}].args must be a mapping of keyword arguments, got {args!r}")
    cv = {"type": "force", "name": s.text("name"), "xml": s.path_("xml", base, check), "cvpack": s.text("cvpack"),
          "args": dict(args or {}), "lower": s.number("lower"), "upper": s.number("upper"), "unit": s.text("unit")}
    periodic = s.value("periodic")
    if periodic is not None and not isinstance(periodic, bool):
        raise TypeError(f"cvs[{i}].periodic must be true or false, got {periodic!r}")
    cv["periodic"] = periodic
    if not cv["upper"] > cv["lower"]:
        raise ValueError(f"cvs[{i}]: lower must be < upper, got [{cv['lower']:g}, {cv['upper']:g}]")
    return cv


def build_force_cv(cv: dict, i: int):
    """The :class:`~openmm_nnbias.cvs.ForceCV` of a parsed ``force`` entry ``cvs[i]``."""
    import openmm as mm

    from .inputfile_common import _first_line, _read

    if cv["xml"] is not None:
        force = _read(f"cvs[{i}].xml", cv["xml"], lambda p: mm.XmlSerializer.deserialize(open(p).read()))
        if not isinstance(force, mm.Force):
            raise ValueError(f"cvs[{i}].xml: {cv['xml']} holds a {type(force).__name__}, not a Force")
    else:
        try:
            import cvpack
        except ImportError:
            raise ValueError(f"cvs[{i}].cvpack: cvpack is not installed (pip install cvpack)") from None
        cls = getattr(cvpack, cv["cvpack"], None)
        if not isinstance(cls, type) or not issubclass(cls, mm.Force):
            import difflib

            names = [n for n in dir(cvpack) if isinstance(getattr(cvpack, n), type)
                     and issubclass(getattr(cvpack, n), mm.Force)]
            close = difflib.get_close_matches(cv["cvpack"], names, n=1)
            raise ValueError(f"cvs[{i}].cvpack: no cvpack CV named {cv['cvpack']!r}"
                             + (f" (did you mean {close[0]!r}?)" if close else ""))
        try:
            force = cls(**cv["args"])
        except Exception as exc:  # noqa: BLE001 - any failure of the user's arguments, as one line
            raise ValueError(f"cvs[{i}].args: cvpack.{cv['cvpack']}({', '.join(cv['args'])}) failed: "
                             f"{_first_line(exc)}") from None
    from ..cvs import ForceCV

    try:
        return ForceCV(force, cv["lower"], cv["upper"], periodic=cv["periodic"], name=cv["name"], unit=cv["unit"])
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"cvs[{i}] (force): {exc}") from None
