"""Azobenzene (C12H10N2) in vacuum: the molecule and its potentials.

* :mod:`.molecule`: the stored trans/cis coordinates, masses, atomic numbers and the CV atoms;
* :mod:`.mlp`: :class:`AzobenzeneMLP`, a small GFN1-xTB-fitted neural potential (shipped in ``data/``);
* :mod:`.sevennet`: :class:`SevenNetEnergy`, the pretrained SevenNet models (needs ``sevenn``);
* :mod:`.potential`: the ``--potential`` choices of the DiffSim run (spec, label, loading);
* :mod:`.openmm_system`, :mod:`.sevennet_openmm`: the same energies as an OpenMM ``TorchForce``;
* :mod:`.analysis`: crossing mechanism (rotation / inversion) and log-density plots.

Torch energies take positions ``(..., 24, 3)`` in nm and return kJ/mol, the calling convention of
:mod:`openmm_nnbias.diffsim.potentials`. Units: nm, kJ/mol, amu.
"""

from .mlp import AzobenzeneMLP
from .molecule import (AZOBENZENE_MASSES, AZOBENZENE_NUMBERS, AZOBENZENE_SYMBOLS, CNN_ANGLE, CNNC_DIHEDRAL, NNC_ANGLE,
                       PHENYL_ATOMS, azobenzene_positions)
from .openmm_system import azobenzene_openmm_system
from .potential import AZOBENZENE_POTENTIALS, load_potential, potential_label, potential_spec
from .sevennet import EV_TO_KJ_PER_MOL, SevenNetEnergy

__all__ = [
    "AZOBENZENE_SYMBOLS", "AZOBENZENE_NUMBERS", "AZOBENZENE_MASSES", "CNNC_DIHEDRAL", "NNC_ANGLE", "CNN_ANGLE",
    "PHENYL_ATOMS", "azobenzene_positions", "AzobenzeneMLP", "SevenNetEnergy", "EV_TO_KJ_PER_MOL",
    "AZOBENZENE_POTENTIALS", "potential_spec", "potential_label", "load_potential", "azobenzene_openmm_system",
]
