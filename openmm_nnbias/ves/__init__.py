"""Deep-VES core (Bonati, Zhang & Parrinello, PNAS 2019): pure-torch, device-agnostic.

* :class:`CVGrid` — bin-centre grid over the CV domain.
* :class:`UniformTarget`, :class:`WellTemperedTarget` — target distributions p(s) (Eq. 7).
* :func:`omega_loss` (Eq. 10 by autograd), :func:`omega_functional` (Eq. 3),
  :func:`bias_normalization` (c(t)), :func:`evaluate_bias`.
* :class:`KLMonitor`, :class:`LearningRateSchedule` — KL divergence (Eq. 12) and the
  learning / decaying / frozen schedule.
* :class:`DeepVESOptimizer` — one Deep-VES iteration per :meth:`~DeepVESOptimizer.step`.
* :class:`MetropolisSampler`, :class:`MonteCarloTarget` — Monte Carlo target average for
  many CVs (no grid); :class:`MarginalKLMonitor`, :class:`RecrossingMonitor` — its
  convergence monitors (marginal KL; the paper's recrossing rule).
* :func:`reweighted_fes` — free energy by reweighting (Eq. 11).
* :class:`DeepVESUpdater` — the OpenMM reporter that runs all of it during ``simulation.step``,
  configured by a target (:class:`WellTempered`, :class:`Uniform`, :class:`MonteCarlo`), a decay
  trigger (:class:`KLThreshold`, :class:`Recrossings`, :class:`MinimumTime`, combined with ``&``)
  and grouped options (:class:`ScheduleOptions`, :class:`OutputOptions`, :class:`ExecutionOptions`);
  its learner (:mod:`~openmm_nnbias.ves.learner`: inline, thread or :class:`ProcessLearner`);
  :class:`SampleEvaluator` — positions of an iteration → checked CVs and V of the bias in force;
  :class:`AveragedFES` — the FES from the bias averaged over the decay phase.
* :class:`WalkerGroup`, :class:`WalkerDeepVESUpdater`, :func:`spawn_walkers` — multiple walkers
  sharing one bias through ``torch.distributed``.

Units: energies and kT in kJ/mol, CVs in nm or rad.
"""

from .grid import CVGrid
from .monitors import MarginalKLMonitor, RecrossingMonitor
from .montecarlo import MetropolisSampler, MonteCarloTarget
from .omega import bias_normalization, evaluate_bias, omega_functional, omega_loss
from .optimizer import DeepVESOptimizer
from .reweight import reweighted_fes
from .schedule import KLMonitor, LearningRateSchedule
from .targets import UniformTarget, WellTemperedTarget
from .updater import DeepVESUpdater
from .walkers import WalkerDeepVESUpdater, WalkerGroup, spawn_walkers
from .learner import InlineLearner, IterationResult, LearnerCore, ThreadLearner
from .learner_process import ProcessLearner
from .options import ExecutionOptions, OutputOptions, ScheduleOptions
from .samples import SampleEvaluator, SampleRecord
from .targets import MonteCarlo, Uniform, WellTempered
from .triggers import KLThreshold, MinimumTime, Recrossings
from .averaging import AveragedFES

__all__ = [
    "DeepVESUpdater",
    "CVGrid",
    "UniformTarget",
    "WellTemperedTarget",
    "omega_loss",
    "omega_functional",
    "bias_normalization",
    "evaluate_bias",
    "KLMonitor",
    "LearningRateSchedule",
    "DeepVESOptimizer",
    "reweighted_fes",
    "MetropolisSampler",
    "MonteCarloTarget",
    "MarginalKLMonitor",
    "RecrossingMonitor",
    "WalkerGroup",
    "WalkerDeepVESUpdater",
    "spawn_walkers",
    "ProcessLearner",
    "InlineLearner",
    "ThreadLearner",
    "LearnerCore",
    "IterationResult",
    "SampleEvaluator",
    "SampleRecord",
    "WellTempered",
    "Uniform",
    "MonteCarlo",
    "KLThreshold",
    "Recrossings",
    "MinimumTime",
    "ScheduleOptions",
    "OutputOptions",
    "ExecutionOptions",
    "AveragedFES",
]
