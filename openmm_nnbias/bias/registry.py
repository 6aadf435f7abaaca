"""The force backends by name: the one registry ``NeuralBiasForce(backend=...)`` and the CLI choose from."""

from .backends import CMAPBackend, TableBackend, TorchBackend
from .cvforce import CVForceBackend

__all__ = ["BACKENDS"]

#: name → :class:`~openmm_nnbias.bias.backends.ForceBackend` subclass
BACKENDS = {"torch": TorchBackend, "table": TableBackend, "cmap": CMAPBackend, "cvforce": CVForceBackend}
