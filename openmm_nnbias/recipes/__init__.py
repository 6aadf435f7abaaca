"""Per-system settings of each method, and the one registry of the embedded systems.

* :mod:`.registry`: :func:`get_system` (build a system by name), :func:`get_recipe`, :func:`system_names`
  (the choices of the command line), :data:`DIFFSIM_SETUPS`;
* :mod:`.deepves`: :data:`DEEPVES_RECIPES` (:class:`DeepVESRecipe`), the alanine-tetrapeptide Monte Carlo
  target and recrossing decay (:func:`tetrapeptide_options`, :data:`PHI_STATES`, :func:`count_transitions`);
* :mod:`.metad`: :data:`METAD_RECIPES` (:class:`MetadRecipe`) of the WT-metadynamics reference runs;
* :mod:`.silicon`: :func:`silicon_deepves_system`, Stillinger-Weber silicon set up for Deep-VES;
* :mod:`openmm_nnbias.recipes.diffsim`: the DiffSim setups (Müller–Brown, alanine dipeptide, azobenzene,
  the authors' Müller–Brown), imported on use (torch).
"""

from .deepves import DEEPVES_RECIPES, PHI_STATES, DeepVESRecipe, count_transitions, tetrapeptide_options
from .metad import METAD_RECIPES, MetadRecipe
from .registry import DIFFSIM_SETUPS, SYSTEM_NAMES, get_diffsim_setup, get_recipe, get_system, system_names
from .silicon import SiliconDeepVESSystem, silicon_deepves_system

__all__ = ["get_system", "SYSTEM_NAMES", "get_recipe", "system_names", "DIFFSIM_SETUPS", "get_diffsim_setup",
           "DeepVESRecipe", "DEEPVES_RECIPES", "tetrapeptide_options", "PHI_STATES", "count_transitions",
           "MetadRecipe", "METAD_RECIPES", "SiliconDeepVESSystem", "silicon_deepves_system"]
