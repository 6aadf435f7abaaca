"""The numbers of benchmarks/silicon_deepves_analysis.py on analytic F(CV) and a schedule written by hand."""

import importlib.util
import os

import numpy as np
import pytest
import torch

HERE = os.path.dirname(__file__)
spec = importlib.util.spec_from_file_location(
    "silicon_deepves_analysis", os.path.join(HERE, "..", "benchmarks", "silicon_deepves_analysis.py"))
sda = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sda)


def test_landmarks_of_an_analytic_double_well():
    kT, n = 2.5, 216
    axis = np.arange(n) + 0.5
    # crystal minimum at 215.5 (0), liquid minimum at 3.5 (4 kT), barrier at 100.5 (60 kT)
    f = np.interp(axis, [0.5, 3.5, 100.5, 215.5], [10.0, 4.0, 60.0, 0.0]) * kT
    marks = sda.landmarks(axis, f, n, kT)
    assert marks["cv_liquid"] == 3.5 and marks["cv_crystal"] == 215.5 and marks["cv_barrier"] == 100.5
    assert marks["f_liquid"] == pytest.approx(4.0) and marks["barrier"] == pytest.approx(60.0)
    p = np.exp(-f / kT)
    expected = -np.log(p[axis < 0.15 * n].sum() / p[axis > 0.85 * n].sum())
    assert marks["dF_basins"] == pytest.approx(expected)
    # empty bins (inf) are no barrier, and a basin without data gives NaN, not a number
    f_gap = f.copy()
    f_gap[90:110] = np.inf
    assert sda.landmarks(axis, f_gap, n, kT)["barrier"] < 60.0
    f_gap[183:] = np.inf  # every bin above 0.85 N
    assert np.isnan(sda.landmarks(axis, f_gap, n, kT)["barrier"])


def test_freeze_projection_reads_the_schedule_of_the_checkpoint(tmp_path):
    torch.save({"config": {"schedule": {"tauDecay": 2000.0, "freezeRatio": 5e-5}}}, tmp_path / "checkpoint.pt")
    proj = sda.freeze_projection(str(tmp_path), None, 1.0)
    assert proj["decays_to_freeze"] == 19803 and proj["t_freeze_earliest_ps"] is None
    proj = sda.freeze_projection(str(tmp_path), 10_000.0, 1.0)
    assert proj["t_freeze_earliest_ps"] == pytest.approx(10_000.0 + 19_802.0)  # the paper: 10 ns, then ~30 ns


def test_kl_threshold_comes_from_the_run_decay_trigger():
    assert sda.kl_threshold_of({"decay": [["KLThreshold", {"threshold": 0.3}]]}) == 0.3
    assert sda.kl_threshold_of({"decay": [["MinimumTime", {"time": 5.0}]]}) == 0.5
