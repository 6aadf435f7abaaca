"""Deep-VES (Bonati, Zhang & Parrinello, PNAS 2019): pure-torch, device-agnostic.

What a user calls (``ves.__all__``):

* :class:`DeepVESUpdater` — the OpenMM reporter that runs Deep-VES during ``simulation.step``,
  configured by a target (:class:`WellTempered`, :class:`Uniform`, :class:`MonteCarlo`), a decay
  trigger (:class:`KLThreshold`, :class:`Recrossings`, :class:`MinimumTime`, combined with ``&``)
  and grouped options (:class:`ScheduleOptions`, :class:`OutputOptions`, :class:`ExecutionOptions`).
* :class:`WalkerDeepVESUpdater`, :class:`WalkerGroup`, :func:`spawn_walkers` — multiple walkers
  sharing one bias through ``torch.distributed``.
* :class:`DeepVESOptimizer` — the lower-level API: one Deep-VES iteration per
  :meth:`~DeepVESOptimizer.step` on CV samples you provide; :class:`CVGrid` — its bin-centre grid.
* :func:`reweighted_fes` — free energy by reweighting (Eq. 11).

Options have one name everywhere, OpenMM's camelCase (``biasFactor``, ``learningRate``, ``tauKL``,
``klThreshold``, ``chains``, ``stepSize``, …), in the option groups, the targets and triggers, the
optimizer and the classes below it.

The machinery stays importable from its module:
:mod:`~openmm_nnbias.ves.targets` (``UniformTarget``, ``WellTemperedTarget``: p(s) on a grid, Eq. 7),
:mod:`~openmm_nnbias.ves.omega` (``omega_loss``, Eq. 10 by autograd; ``omega_functional``, Eq. 3;
``bias_normalization``, c(t); ``evaluate_bias``),
:mod:`~openmm_nnbias.ves.schedule` (``KLMonitor``, Eq. 12; ``LearningRateSchedule``),
:mod:`~openmm_nnbias.ves.montecarlo` (``MonteCarloTarget``, its sampler ``MetropolisSampler`` in :mod:`~openmm_nnbias.ves.metropolis`: the Monte Carlo
target average for many CVs), :mod:`~openmm_nnbias.ves.monitors` (``MarginalKLMonitor``,
``RecrossingMonitor``), :mod:`~openmm_nnbias.ves.learner` and
:mod:`~openmm_nnbias.ves.learner_process` (the learner of each execution mode),
:mod:`~openmm_nnbias.ves.samples` (``SampleEvaluator``: positions → checked CVs and V of the bias
in force), :mod:`~openmm_nnbias.ves.averaging` (``AveragedFES``: the FES from the bias averaged
over the decay phase).

Units: energies and kT in kJ/mol, CVs in nm or rad.
"""

from .grid import CVGrid
from .optimizer import DeepVESOptimizer
from .options import ExecutionOptions, OutputOptions, ScheduleOptions
from .reweight import reweighted_fes
from .targets import MonteCarlo, Uniform, WellTempered
from .triggers import KLThreshold, MinimumTime, Recrossings
from .updater import DeepVESUpdater
from .walkers import WalkerDeepVESUpdater, WalkerGroup, spawn_walkers

__all__ = [
    "DeepVESUpdater",
    "WellTempered",
    "Uniform",
    "MonteCarlo",
    "KLThreshold",
    "Recrossings",
    "MinimumTime",
    "ScheduleOptions",
    "OutputOptions",
    "ExecutionOptions",
    "WalkerDeepVESUpdater",
    "WalkerGroup",
    "spawn_walkers",
    "DeepVESOptimizer",
    "CVGrid",
    "reweighted_fes",
]
