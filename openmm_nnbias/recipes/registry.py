"""The one registry of the embedded systems: by name, how to build each and which methods have settings for it.

* :func:`get_system`, :data:`SYSTEM_NAMES` — build a molecule or model potential of :mod:`openmm_nnbias.systems`;
* :func:`get_recipe` — its Deep-VES (:data:`~openmm_nnbias.recipes.deepves.DEEPVES_RECIPES`) or WT-metadynamics
  (:data:`~openmm_nnbias.recipes.metad.METAD_RECIPES`) settings;
* :data:`DIFFSIM_SETUPS`, :func:`get_diffsim_setup` — its DiffSim setup (:mod:`openmm_nnbias.recipes.diffsim`);
* :func:`system_names` — the systems of one method, the choices of the command line.
"""

from __future__ import annotations

import functools
import importlib
from types import MappingProxyType
from typing import Any, Callable, Mapping, Tuple

from openmm_nnbias.systems.model_potentials import ModelSystem, mueller_brown, wolfe_quapp
from openmm_nnbias.systems.peptides import PeptideSystem, alanine_dipeptide, alanine_tetrapeptide
from openmm_nnbias.systems.solvated import solvated_alanine_dipeptide
from openmm_nnbias.systems.villin import villin_headpiece

from .deepves import DEEPVES_RECIPES
from .metad import METAD_RECIPES

__all__ = ["get_system", "SYSTEM_NAMES", "get_recipe", "DIFFSIM_SETUPS", "get_diffsim_setup", "system_names"]

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

#: DiffSim setups by system name: (module of :mod:`openmm_nnbias.recipes.diffsim`, setup function), imported
#: when used; :func:`~openmm_nnbias.runners.diffsim.build_diffsim` calls them.
DIFFSIM_SETUPS: Mapping[str, Tuple[str, str]] = MappingProxyType({
    "mueller-brown": ("mueller_brown", "mueller_brown_setup"),
    "alanine-dipeptide": ("alanine", "alanine_dipeptide_setup"),
    "azobenzene": ("azobenzene", "azobenzene_setup"),
    "mueller-brown-authors": ("mb_authors", "mueller_brown_authors_setup"),
})


def system_names(method: str) -> list:
    """The systems with settings for ``method``: ``"deepves"``, ``"metad"`` (the reference runs) or ``"diffsim"``.

    Examples
    --------
    >>> system_names("metad")
    ['alanine-dipeptide', 'alanine-dipeptide-solvated', 'alanine-dipeptide-solvated-hmr', 'alanine-tetrapeptide']
    >>> system_names("diffsim")
    ['mueller-brown', 'alanine-dipeptide', 'azobenzene', 'mueller-brown-authors']
    """
    if method == "deepves":
        return sorted(DEEPVES_RECIPES)
    if method == "metad":
        return sorted(METAD_RECIPES)
    if method == "diffsim":
        return list(DIFFSIM_SETUPS)
    raise ValueError(f"method must be 'deepves', 'metad' or 'diffsim', got {method!r}")


def get_diffsim_setup(name: str) -> Callable[..., Any]:
    """The setup function of :data:`DIFFSIM_SETUPS` for system ``name`` (KeyError for another name)."""
    module, function = DIFFSIM_SETUPS[name]
    return getattr(importlib.import_module(f"openmm_nnbias.recipes.diffsim.{module}"), function)


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


def get_recipe(name: str, kind: str = "deepves"):
    """The :class:`~openmm_nnbias.recipes.deepves.DeepVESRecipe` (``kind="deepves"``) or
    :class:`~openmm_nnbias.recipes.metad.MetadRecipe` (``"metad"``) of system ``name``.

    Examples
    --------
    >>> get_recipe("wolfe-quapp").timestep
    0.005
    >>> get_recipe("argon")
    Traceback (most recent call last):
    ...
    ValueError: system: deepves supports ['alanine-dipeptide', 'alanine-dipeptide-solvated', 'alanine-dipeptide-solvated-hmr', 'alanine-tetrapeptide', 'silicon', 'silicon-64', 'villin', 'wolfe-quapp'], got 'argon'
    """
    registry = {"deepves": DEEPVES_RECIPES, "metad": METAD_RECIPES}.get(kind)
    if registry is None:
        raise ValueError(f"kind must be 'deepves' or 'metad', got {kind!r}")
    if not isinstance(name, str):
        raise TypeError(f"system must be a str, got {type(name).__name__}")
    if name not in registry:
        raise ValueError(f"system: {kind} supports {sorted(registry)}, got {name!r}")
    return registry[name]
