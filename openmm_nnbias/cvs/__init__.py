"""Collective variables: positions (nm) → CV values, as TorchScript modules."""

from .base import Angle, CollectiveVariable, Distance, Position, Torsion, minimum_image
from .cvset import CVSet
from .envsim import EnvironmentSimilarity, diamond_references
from .model import ModelCV

__all__ = ["CollectiveVariable", "Torsion", "Distance", "Angle", "Position", "CVSet", "ModelCV", "EnvironmentSimilarity",
           "diamond_references", "minimum_image"]
