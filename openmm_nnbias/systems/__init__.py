"""Molecules and materials: capped alanine peptides, the solvated dipeptide and villin, 2-D model
potentials (OpenMM and torch), Stillinger-Weber silicon (:mod:`.silicon`) and azobenzene with its neural
potentials (:mod:`.azobenzene`).

Everything is built from code (no downloads). By name: :func:`openmm_nnbias.recipes.get_system`.
"""

from openmm_nnbias.systems._exact import exact_free_energy_x_wolfe_quapp
from openmm_nnbias.systems.model_potentials import (
    MUELLER_BROWN_PARAMETERS,
    WOLFE_QUAPP_EXPRESSION,
    WQ_TEMPERATURE,
    ModelSystem,
    MuellerBrownEnergy,
    mueller_brown,
    mueller_brown_energy,
    wolfe_quapp,
    wolfe_quapp_energy,
)
from openmm_nnbias.systems.peptides import (
    PeptideSystem,
    alanine_dipeptide,
    alanine_peptide,
    alanine_tetrapeptide,
    backbone_torsions,
)
from openmm_nnbias.systems.solvated import solvated_alanine_dipeptide
from openmm_nnbias.systems.villin import ProteinSystem, villin_headpiece

__all__ = [
    "solvated_alanine_dipeptide",
    "villin_headpiece",
    "ProteinSystem",
    "MUELLER_BROWN_PARAMETERS",
    "WOLFE_QUAPP_EXPRESSION",
    "WQ_TEMPERATURE",
    "ModelSystem",
    "MuellerBrownEnergy",
    "exact_free_energy_x_wolfe_quapp",
    "mueller_brown",
    "mueller_brown_energy",
    "wolfe_quapp",
    "wolfe_quapp_energy",
    "PeptideSystem",
    "alanine_dipeptide",
    "alanine_peptide",
    "alanine_tetrapeptide",
    "backbone_torsions",
]

from openmm_nnbias.systems.silicon import SiliconCrystal, silicon_crystal, stillinger_weber_system  # noqa: E402
__all__ += ["SiliconCrystal", "silicon_crystal", "stillinger_weber_system"]
