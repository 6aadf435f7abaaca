"""WT-metadynamics recipes: the settings of the reference runs (:mod:`openmm_nnbias.runners.reference`).

:data:`METAD_RECIPES` — :class:`MetadRecipe` per system, looked up by name with
:func:`~openmm_nnbias.recipes.registry.get_recipe` (``kind="metad"``).

MD units: rad, ps, K, kJ/mol.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Tuple

__all__ = ["MetadRecipe", "METAD_RECIPES"]


@dataclass(frozen=True)
class MetadRecipe:
    """WT-metadynamics reference run over torsions (see :mod:`openmm_nnbias.runners.reference`).

    ``temperature`` K, ``timestep`` ps, ``friction`` 1/ps, ``height`` kJ/mol, ``width`` rad,
    ``frequency`` MD steps between Gaussians, ``gridWidth`` grid points per torsion (endpoint included).
    """

    name: str
    torsions: Tuple[str, ...]
    biasFactor: float
    height: float
    width: float = 0.35
    frequency: int = 500
    gridWidth: int = 37
    temperature: float = 300.0
    timestep: float = 0.002
    friction: float = 1.0


#: WT-metadynamics reference recipes by system name.
METAD_RECIPES: Mapping[str, MetadRecipe] = MappingProxyType({
    "alanine-dipeptide": MetadRecipe("alanine-dipeptide", ("phi", "psi"), 6.0, 1.0, gridWidth=73),
    "alanine-tetrapeptide": MetadRecipe("alanine-tetrapeptide", ("phi1", "phi2", "phi3"), 8.0, 1.2),
    "alanine-dipeptide-solvated": MetadRecipe("alanine-dipeptide-solvated", ("phi", "psi"), 6.0, 1.0, gridWidth=73),
    # HMR, 4 fs: a Gaussian every 250 steps is the same 1 ps as every 500 steps of 2 fs
    "alanine-dipeptide-solvated-hmr": MetadRecipe("alanine-dipeptide-solvated-hmr", ("phi", "psi"), 6.0, 1.0,
                                                  frequency=250, gridWidth=73, timestep=0.004),
})
