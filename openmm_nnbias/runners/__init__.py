"""Run loops and the input-file schema: what the command line runs, callable from Python.

* Deep-VES: :func:`build_deepves` (an embedded system with its recipe, :mod:`.deepves`), the run with
  progress bar, final checkpoint and walkers (:func:`run_deepves`, :func:`run_deepves_walkers`,
  :mod:`.deepves_run`), your own system from an input file (:func:`read_input`, :mod:`.inputfile`;
  :func:`build_input_deepves`, :mod:`.userinput`);
* WT-metadynamics references: :func:`run_reference`, :func:`run_reference_ala4` (:mod:`.reference`);
* DiffSim: :func:`build_diffsim`, :func:`run_diffsim` (training with checkpoint/restart, :mod:`.diffsim`)
  and its stage evaluations (:mod:`.diffsim_eval`).
"""

from .deepves import assemble_deepves, build_deepves, mts_strides
from .deepves_run import run_deepves, run_deepves_walkers
from .diffsim import build_diffsim, run_diffsim
from .inputfile import read_input
from .reference import run_reference, run_reference_ala4
from .userinput import build_input_deepves

__all__ = ["build_deepves", "assemble_deepves", "mts_strides", "run_deepves", "run_deepves_walkers",
           "read_input", "build_input_deepves", "run_reference", "run_reference_ala4", "build_diffsim", "run_diffsim"]
