"""openmm_nnbias: neural-network bias potentials (Deep-VES, differentiable-simulation biases) for OpenMM."""

__version__ = "0.1.0"
__all__ = ["__version__"]
