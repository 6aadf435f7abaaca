"""One default per option whatever the route: the input file's defaults are the Python API's."""

import inspect
from dataclasses import fields

import pytest

from openmm_nnbias.bias import NeuralBias
from openmm_nnbias.runners.inputfile import SCHEMA
from openmm_nnbias.ves import DeepVESUpdater, KLThreshold, MonteCarlo, WellTempered
from openmm_nnbias.ves.options import ExecutionOptions, OutputOptions, ScheduleOptions


def _default(fn, name):
    return inspect.signature(fn).parameters[name].default


def _field_default(cls, name):
    return next(f.default for f in fields(cls) if f.name == name)


#: input-file key of the ``deepves`` section -> the Python default it must equal
PYTHON_DEFAULTS = {
    "biasFactor": lambda: _default(WellTempered, "biasFactor"),
    "bins": lambda: _default(WellTempered, "bins"),
    "chains": lambda: _default(MonteCarlo, "chains"),
    "stride": lambda: _default(DeepVESUpdater, "stride"),
    "sampleStride": lambda: _default(DeepVESUpdater, "sampleStride"),
    "learningRate": lambda: _field_default(ScheduleOptions, "learningRate"),
    "outputLearningRateScale": lambda: _field_default(ScheduleOptions, "outputLearningRateScale"),
    "tauKL": lambda: _field_default(ScheduleOptions, "tauKL"),
    "tauDecay": lambda: _field_default(ScheduleOptions, "tauDecay"),
    "freezeRatio": lambda: _field_default(ScheduleOptions, "freezeRatio"),
    "klThreshold": lambda: _default(KLThreshold, "threshold"),
    "hidden": lambda: list(_default(NeuralBias, "hidden")),
    "activation": lambda: _default(NeuralBias, "activation"),
    "mode": lambda: _field_default(ExecutionOptions, "mode"),
    "pushInterval": lambda: _field_default(ExecutionOptions, "pushInterval"),
    "precision": lambda: _field_default(ExecutionOptions, "precision"),
    "learnerCPUs": lambda: _field_default(ExecutionOptions, "learnerCPUs"),
    "fesInterval": lambda: _field_default(OutputOptions, "fesInterval"),
    "checkpointInterval": lambda: _field_default(OutputOptions, "checkpointInterval"),
    "colvarStride": lambda: _field_default(OutputOptions, "colvarStride"),
}


@pytest.mark.parametrize("key", sorted(PYTHON_DEFAULTS))
def test_input_file_default_is_the_python_default(key):
    assert SCHEMA["deepves"][key] == PYTHON_DEFAULTS[key](), key


def test_every_numeric_input_key_is_checked():
    """A new key of the deepves section gets a row above (or is a choice with no Python default)."""
    no_python_default = {"target", "backend", "decayAfter"}  # chosen by the number of CVs / the system
    assert set(SCHEMA["deepves"]) - no_python_default == set(PYTHON_DEFAULTS)


def test_build_deepves_defaults_are_the_input_file_defaults():
    """The keywords of build_deepves that the command line leaves to the library: one default each."""
    from openmm_nnbias.runners import build_deepves
    from openmm_nnbias.runners.deepves import updater_default

    assert _default(build_deepves, "mode") == SCHEMA["deepves"]["mode"]
    # sampleStride: the recipe's option (alanine-dipeptide 2), else the updater's default, that of the input file
    assert _default(build_deepves, "sampleStride") is None
    assert updater_default("sampleStride") == SCHEMA["deepves"]["sampleStride"]
    for key in ("seed", "threads"):
        assert _default(build_deepves, key) == SCHEMA["run"][key], key
