"""Ready-to-train DiffSim problems of the embedded systems (potential, CVs, wells, start states, bias, trainer).

* :mod:`.mueller_brown`: Müller–Brown in the authors' difficulty (:func:`mueller_brown_setup`);
* :mod:`.alanine`: alanine dipeptide C5 → C7ax in vacuum (:func:`alanine_dipeptide_setup`);
* :mod:`.azobenzene`: azobenzene cis → trans (:func:`azobenzene_setup`) and the settings of its run per
  potential (:data:`AZOBENZENE_DEFAULTS`);
* :mod:`.mb_authors`: Müller–Brown in the authors' own 2-D setting (:func:`mueller_brown_authors_setup`).

The setups share :mod:`openmm_nnbias.diffsim.setup`; :data:`openmm_nnbias.recipes.registry.DIFFSIM_SETUPS`
names them for the command line. Units: nm, ps, kJ/mol, amu, K.
"""

from .alanine import ALA2_C5, ALA2_C7AX, alanine_dipeptide_setup, alanine_dipeptide_vacuum
from .azobenzene import AZOBENZENE_DEFAULTS, azobenzene_cvs, azobenzene_defaults_help, azobenzene_setup, minimize_positions
from .mb_authors import MBA_ENERGY_SCALE, MBA_GRID, MBA_LR, MBA_MASS, MBA_STARTS, mueller_brown_authors_setup
from .mueller_brown import MB_ENERGY_SCALE, MB_MASS, MB_MINIMA, MB_SADDLES, mueller_brown_setup

__all__ = ["mueller_brown_setup", "MB_ENERGY_SCALE", "MB_MASS", "MB_MINIMA", "MB_SADDLES",
           "alanine_dipeptide_setup", "alanine_dipeptide_vacuum", "ALA2_C5", "ALA2_C7AX",
           "azobenzene_setup", "azobenzene_cvs", "minimize_positions", "AZOBENZENE_DEFAULTS", "azobenzene_defaults_help",
           "mueller_brown_authors_setup", "MBA_MASS", "MBA_STARTS", "MBA_GRID", "MBA_LR", "MBA_ENERGY_SCALE"]
