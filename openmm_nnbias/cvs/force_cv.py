"""Any OpenMM Force whose energy is a CV value (a cvpack CV, a ``CustomCVForce``, ...) as a CV."""

from __future__ import annotations

import math
import numbers
from typing import List, Optional

__all__ = ["ForceCV"]

#: cvpack's unit names → the short names of file headers and plot axes
_UNIT_NAMES = {"nanometer": "nm", "radian": "rad", "dimensionless": "1", "": "1"}


def _cvpack_unit(force) -> str:
    """The unit of a cvpack CV (``getUnit()``) as a short name, "1" for other forces."""
    get = getattr(force, "getUnit", None)
    if get is None:
        return "1"
    name = str(get()).strip()
    return _UNIT_NAMES.get(name, name)


class ForceCV:
    """One CV computed by an OpenMM ``Force``: its energy (kJ/mol as a number) is the CV value.

    A cvpack CV (``cvpack.RadiusOfGyration``, ``cvpack.Torsion``, ... are OpenMM forces whose
    energy is the CV in its unit), a ``CustomCVForce`` or any ``Custom*Force`` whose energy is the
    CV. OpenMM computes the value and its gradient; the bias applies the network through a
    ``CustomCVForce`` over these forces with the network tabulated on a grid (the ``"cvforce"``
    backend of :class:`~openmm_nnbias.bias.NeuralBiasForce`, at most 3 Force CVs, all periodic or
    all non-periodic), and the Deep-VES updater reads the values from the Context
    (``CustomCVForce.getCollectiveVariableValues``). A :class:`~openmm_nnbias.cvs.CVSet` of Force
    CVs takes no other kind of CV.

    Parameters
    ----------
    force : openmm.Force
        The CV; a copy (``XmlSerializer.clone``) goes into the bias force, so the object itself stays
        yours. Its atoms are 0-based indices of the System the bias is added to.
    lower, upper : float
        Declared range in the CV's unit: the bias grid spans it; for a periodic CV, the period.
    periodic : bool, optional
        Whether the CV is periodic with period ``upper - lower`` (default: cvpack's
        ``getPeriodicBounds()`` is not None; False for other forces).
    name : str, optional
        Name of the CV (default: ``force.getName()``, e.g. cvpack's ``"radius_of_gyration"``).
    unit : str, optional
        Unit of its values, for file headers and plot axes (default: cvpack's ``getUnit()``, as
        ``"nm"``/``"rad"``; ``"1"`` for other forces).

    Examples
    --------
    >>> import openmm as mm
    >>> from openmm_nnbias.cvs import CVSet, ForceCV
    >>> force = mm.CustomBondForce("r")           # the distance of atoms 0 and 1, in nm
    >>> _ = force.addBond(0, 1, [])
    >>> cvs = CVSet([ForceCV(force, 0.0, 2.0, name="d01", unit="nm")])
    >>> cvs.names, cvs.units, cvs.periodic, cvs.has_force_cvs
    (['d01'], ['nm'], [False], True)
    """

    n_cvs = 1
    fusable = False

    def __init__(self, force, lower: float, upper: float, periodic: Optional[bool] = None,
                 name: Optional[str] = None, unit: Optional[str] = None):
        import openmm as mm

        if not isinstance(force, mm.Force):
            raise TypeError(f"force must be an openmm.Force, got {type(force).__name__}")
        for arg, value in (("lower", lower), ("upper", upper)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"{arg} must be a float, got {type(value).__name__}")
        if not (math.isfinite(lower) and math.isfinite(upper)) or not upper > lower:
            raise ValueError(f"ForceCV: range must satisfy lower < upper, got [{lower}, {upper}]")
        if periodic is None:
            bounds = getattr(force, "getPeriodicBounds", lambda: None)()
            periodic = bounds is not None
        if not isinstance(periodic, bool):
            raise TypeError(f"periodic must be a bool, got {type(periodic).__name__}")
        name = force.getName() if name is None else name
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        unit = _cvpack_unit(force) if unit is None else unit
        if not isinstance(unit, str):
            raise TypeError(f"unit must be a str, got {type(unit).__name__}")
        self.force = force
        self.names: List[str] = [name]
        self.lower, self.upper, self.periodic, self.unit = float(lower), float(upper), periodic, unit

    def clone(self):
        """A serialized copy of the force (a plain OpenMM force, for a ``CustomCVForce``)."""
        import openmm as mm

        return mm.XmlSerializer.clone(self.force)

    def __getstate__(self) -> dict:
        """Pickle and deepcopy support: the force travels as its XML (a plain OpenMM force)."""
        import openmm as mm

        state = dict(self.__dict__)
        state["force"] = mm.XmlSerializer.serialize(self.force)
        return state

    def __setstate__(self, state: dict) -> None:
        import openmm as mm

        state = dict(state)
        state["force"] = mm.XmlSerializer.deserialize(state["force"])
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return (f"ForceCV({type(self.force).__name__}, lower={self.lower}, upper={self.upper}, "
                f"periodic={self.periodic}, name={self.names[0]!r}, unit={self.unit!r})")
