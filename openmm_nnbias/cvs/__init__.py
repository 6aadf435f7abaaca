"""Collective variables: positions (nm) → CV values, as TorchScript modules."""

from .base import Angle, CollectiveVariable, Distance, Position, Torsion, minimum_image
from .cvset import CVSet
from .model import ModelCV

__all__ = ["CollectiveVariable", "Torsion", "Distance", "Angle", "Position", "CVSet", "ModelCV", "minimum_image"]
