"""Unit handling at the API edge: accept ``openmm.unit`` quantities or plain MD numbers."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["strip_unit", "parse_time", "parse_with_unit", "UNITS", "KB", "EV_TO_KJ_PER_MOL", "MD_UNITS"]

#: Boltzmann constant in kJ/mol/K (``openmm.unit.MOLAR_GAS_CONSTANT_R``); the one value the package uses.
KB = 0.00831446261815324
#: kJ/mol per eV (CODATA 2018: e · N_A / 1000); the one value the package uses.
EV_TO_KJ_PER_MOL = 96.48533212

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


def parse_time(text: str, argument: str = "time") -> float:
    """Read a simulated time such as ``'20ns'``, ``'500ps'``, ``'1.5 ns'``, ``'2fs'`` → picoseconds.

    Parameters
    ----------
    text : str
        A finite, non-negative number followed by ``ns``, ``ps`` or ``fs``.
    argument : str, optional
        Name of the option or argument the text came from, used in error messages (e.g. ``"time"``).

    Returns
    -------
    float
        The time in ps (>= 0).

    Raises
    ------
    TypeError
        If ``text`` is not a string.
    ValueError
        If ``text`` has no unit, is not a number, or is negative, NaN or infinite.

    Examples
    --------
    >>> parse_time("20ns"), parse_time("1.5 ps"), parse_time("500fs")
    (20000.0, 1.5, 0.5)
    >>> parse_time("-5ns", "time")
    Traceback (most recent call last):
    ...
    ValueError: time must be a finite time >= 0, got '-5ns'
    """
    if not isinstance(text, str):
        raise TypeError(f"{argument} must be a string such as '20ns', got {type(text).__name__}")
    t = text.strip().lower().replace(" ", "")
    for suffix, factor in (("ns", 1000.0), ("ps", 1.0), ("fs", 1e-3)):
        if t.endswith(suffix):
            try:
                value = float(t[: -len(suffix)])
            except ValueError:
                break
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{argument} must be a finite time >= 0, got {text!r}")
            return value * factor
    raise ValueError(f"cannot read {argument} {text!r}: use a number and a unit, e.g. 20ns, 500ps")


#: accepted unit names per quantity, as factors to the documented unit
UNITS = {
    "K": {"K": 1.0},
    "bar": {"bar": 1.0, "atm": 1.01325},
    "fs": {"fs": 1.0, "ps": 1000.0},
    "1/ps": {"1/ps": 1.0, "/ps": 1.0, "ps^-1": 1.0, "1/fs": 1000.0},
    "nm": {"nm": 1.0, "A": 0.1, "angstrom": 0.1},
    "rad": {"rad": 1.0, "deg": math.pi / 180},
    "amu": {"amu": 1.0, "Da": 1.0},
}


def parse_with_unit(name: str, text: str, unit: str) -> float:
    """``"300 K"`` → 300.0 in ``unit`` (a key of :data:`UNITS`; ValueError naming ``name`` otherwise).

    Examples
    --------
    >>> parse_with_unit("state.timestep", "0.002 ps", "fs")
    2.0
    """
    t = text.strip()
    for suffix, factor in sorted(UNITS[unit].items(), key=lambda kv: -len(kv[0])):
        if t.endswith(suffix):
            try:
                return float(t[: -len(suffix)]) * factor
            except ValueError:
                break
    raise ValueError(f"cannot read {name} {text!r}: use a number in {unit} or a number and one of "
                     f"{list(UNITS[unit])}, e.g. '1 {unit}'")
