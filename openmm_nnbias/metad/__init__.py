"""Our well-tempered metadynamics: restartable WT-metaD over torsions on a grid (the reference runs' method).

See :class:`~openmm_nnbias.metad.metadynamics.WellTemperedMetadynamics`.
"""

from .metadynamics import WellTemperedMetadynamics

__all__ = ["WellTemperedMetadynamics"]
