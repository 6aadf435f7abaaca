"""Differentiable-simulation bias (Šípka et al. 2023): torch potentials, batched Langevin
dynamics, ellipsoidal wells with the Eq. 5 loss, the partial (detached-position) adjoint
and graph mini-batched training of a :class:`~openmm_nnbias.bias.NeuralBias` over CVs.

The method only: the set-ups of the embedded systems are in :mod:`openmm_nnbias.recipes.diffsim`,
the training run with checkpoints in :mod:`openmm_nnbias.runners.diffsim`.

Units: nm, ps, kJ/mol, amu, K.
"""

from .adjoint import AdjointPairs, partial_adjoint
from .bidirectional import BidirectionalDiffSimTrainer
from .gaussian_grid import GaussianGridBias
from .langevin import LangevinSimulator, Trajectory, make_force_fn
from .potentials import ONE_4PI_EPS0, OpenMMTorchEnergy, masses_from_system
from .setup import DiffSimSetup, unbiased_well_run
from .streaming import AdjointRun, forward_for_adjoint
from .training import DiffSimTrainer, EpochResult, bias_gradient, maxwell_boltzmann_velocities, minibatch_updates
from .wells import LossResult, Well, crossing_loss, loss_position_gradient, success_fraction, wrapped_difference

__all__ = [
    "LangevinSimulator", "Trajectory", "make_force_fn", "maxwell_boltzmann_velocities",
    "ONE_4PI_EPS0", "OpenMMTorchEnergy", "masses_from_system",
    "AdjointPairs", "DiffSimTrainer", "EpochResult", "bias_gradient", "minibatch_updates", "partial_adjoint",
    "LossResult", "Well", "crossing_loss", "loss_position_gradient", "success_fraction", "wrapped_difference",
    "AdjointRun", "forward_for_adjoint",
    "BidirectionalDiffSimTrainer", "GaussianGridBias", "DiffSimSetup", "unbiased_well_run",
]
