"""``python -m openmm_nnbias.cli`` = ``openmm-nnbias``."""

import sys

from . import main

sys.exit(main())
