"""Bias networks, their TorchScript export, and OpenMM force backends behind one adapter."""

from .backends import ForceBackend, TableBackend, TorchBackend
from .registry import BACKENDS
from .force import NeuralBiasForce, export_bias, load_bias
from .fused_torsions import FusedLiveBiasEnergy
from .mts import bias_force_group, mts_langevin_integrator
from .modules import BiasEnergy, LiveBiasEnergy
from .network import CVFeatures, NeuralBias
from .weights import SharedWeights

__all__ = ["NeuralBias", "CVFeatures", "NeuralBiasForce", "BiasEnergy", "LiveBiasEnergy", "FusedLiveBiasEnergy",
           "SharedWeights", "ForceBackend", "TorchBackend", "TableBackend", "BACKENDS",
           "export_bias", "load_bias", "mts_langevin_integrator", "bias_force_group"]
