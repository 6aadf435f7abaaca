"""Collective variables: positions (nm) → CV values, as TorchScript modules, or OpenMM forces (ForceCV)."""

from .base import Angle, CollectiveVariable, Distance, Position, Torsion, minimum_image
from .centroid_distance import CentroidDistance
from .cvset import CVSet
from .envsim import EnvironmentSimilarity, diamond_references
from .envsim_fused import FusedEnvironmentSimilarity
from .force_cv import ForceCV
from .helix_torsion_content import HelixTorsionContent
from .model import ModelCV
from .number_of_contacts import NumberOfContacts
from .path_cv import PathCV
from .radius_of_gyration import RadiusOfGyration
from .rmsd import RMSD

__all__ = ["CollectiveVariable", "Torsion", "Distance", "Angle", "Position", "CVSet", "ModelCV", "EnvironmentSimilarity",
           "FusedEnvironmentSimilarity", "diamond_references", "minimum_image", "RadiusOfGyration", "RMSD", "NumberOfContacts", "CentroidDistance",
           "HelixTorsionContent", "PathCV", "ForceCV"]
