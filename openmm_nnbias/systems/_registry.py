"""Name-based access to the bundled systems."""

from __future__ import annotations

import functools
from typing import Any, Callable

from openmm_nnbias.systems.model_potentials import ModelSystem, mueller_brown, wolfe_quapp
from openmm_nnbias.systems.peptides import PeptideSystem, alanine_dipeptide, alanine_tetrapeptide
from openmm_nnbias.systems.solvated import solvated_alanine_dipeptide
from openmm_nnbias.systems.villin import villin_headpiece

__all__ = ["get_system", "SYSTEM_NAMES"]

_BUILDERS: dict[str, Callable[..., Any]] = {
    "alanine-dipeptide": alanine_dipeptide,
    "alanine-tetrapeptide": alanine_tetrapeptide,
    "alanine-dipeptide-solvated": solvated_alanine_dipeptide,
    # hydrogen mass repartitioning for a 4 fs step (OpenMM moves mass from the bonded heavy atom;
    # water keeps its masses)
    "alanine-dipeptide-solvated-hmr": functools.partial(solvated_alanine_dipeptide, hydrogenMass=1.5),
    "villin": villin_headpiece,
    "wolfe-quapp": wolfe_quapp,
    "mueller-brown": mueller_brown,
}

#: Valid names for :func:`get_system`.
SYSTEM_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def get_system(name: str, **kwargs: Any) -> PeptideSystem | ModelSystem:
    """Build a bundled system by name.

    Parameters
    ----------
    name : str
        One of ``"alanine-dipeptide"``, ``"alanine-tetrapeptide"``, ``"alanine-dipeptide-solvated"``
        (TIP3P, PME, barostat), ``"alanine-dipeptide-solvated-hmr"`` (the same, hydrogens 1.5 amu),
        ``"villin"`` (the villin headpiece in TIP3P, :func:`~openmm_nnbias.systems.villin.villin_headpiece`),
        ``"wolfe-quapp"``, ``"mueller-brown"`` (case-insensitive; underscores are accepted in place of hyphens).
    **kwargs
        Forwarded to the builder (e.g. ``constraints=None`` for peptides,
        ``energy_scale=0.2`` for Müller-Brown).

    Returns
    -------
    PeptideSystem or ModelSystem

    Raises
    ------
    ValueError
        If ``name`` is not a known system; the message lists the valid names.

    Examples
    --------
    >>> get_system("wolfe-quapp").name
    'wolfe-quapp'
    """
    key = name.strip().lower().replace("_", "-") if isinstance(name, str) else None
    if key not in _BUILDERS:
        raise ValueError(f"unknown system {name!r}; valid names are: {', '.join(SYSTEM_NAMES)}")
    return _BUILDERS[key](**kwargs)
