"""Collective variables: positions (nm) → CV values, as TorchScript modules."""

from .base import Angle, CollectiveVariable, Distance, Position, Torsion
from .cvset import CVSet
from .model import ModelCV

__all__ = ["CollectiveVariable", "Torsion", "Distance", "Angle", "Position", "CVSet", "ModelCV"]
