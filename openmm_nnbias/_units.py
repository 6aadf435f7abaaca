"""Unit handling at the API edge: accept ``openmm.unit`` quantities or plain MD numbers."""

from __future__ import annotations

from typing import Any

__all__ = ["strip_unit", "MD_UNITS"]

MD_UNITS = {
    "length": "nanometer",
    "time": "picosecond",
    "energy": "kilojoule_per_mole",
    "angle": "radian",
    "temperature": "kelvin",
}


def strip_unit(value: Any, unit_name: str) -> float:
    """Return ``value`` as a float in MD units.

    Parameters
    ----------
    value : float or openmm.unit.Quantity
        A plain number (already in MD units) or a quantity compatible with ``unit_name``.
    unit_name : str
        Name of the target unit in :mod:`openmm.unit`, e.g. ``"kelvin"``, ``"nanometer"``,
        ``"kilojoule_per_mole"``, ``"picosecond"``, ``"radian"``.

    Examples
    --------
    >>> from openmm import unit
    >>> strip_unit(300 * unit.kelvin, "kelvin")
    300.0
    >>> strip_unit(2.5, "nanometer")
    2.5
    """
    from openmm import unit

    target = getattr(unit, unit_name)
    if unit.is_quantity(value):
        if not value.unit.is_compatible(target):
            raise ValueError(f"expected a quantity compatible with {unit_name}, got {value}")
        return float(value.value_in_unit(target))
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"expected a number in {unit_name} or a Quantity, got {value!r}") from exc
    return out
