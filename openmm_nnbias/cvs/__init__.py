"""Collective variables: positions (nm) → CV values, as TorchScript modules."""

from .base import Angle, CollectiveVariable, Distance, Position, Torsion, minimum_image
from .cvset import CVSet

__all__ = ["CollectiveVariable", "Torsion", "Distance", "Angle", "Position", "CVSet", "minimum_image"]
