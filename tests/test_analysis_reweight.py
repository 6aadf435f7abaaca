"""Reweighting of a colvar (analysis.reweight) and uneven frame spacing (a run restored from a thinned archive)."""

import math
import warnings

import numpy as np
import pytest

from openmm_nnbias.analysis import reweight_colvar
from openmm_nnbias.io import read_colvar


def _write(path, times, x, rbias):
    with open(path, "w") as fh:
        fh.write("#! FIELDS time x rbias\n#! SET units_time ps\n")
        for t, a, b in zip(times, x, rbias):
            fh.write(f"{t:.6f} {a:.6f} {b:.6f}\n")


def test_reweighting_recovers_an_analytic_two_state_free_energy(tmp_path):
    # frames sampled under a bias V(x) = -F(x) flatten the distribution: exp(V/kT) must give back F(x)
    kT = 2.5
    rng = np.random.default_rng(0)
    x = rng.uniform(-math.pi, math.pi, 200_000)
    f_true = 4.0 * np.cos(x) ** 2  # kJ/mol
    p = tmp_path / "colvar"
    _write(p, np.arange(x.size) * 0.1, x, -f_true)
    (axis,), f = reweight_colvar(str(p), kT, bins=24)
    expect = 4.0 * np.cos(axis) ** 2
    # a flat histogram: each bin is F at its centre up to the bin average of cos^2 and sampling noise
    assert np.max(np.abs((f - f.mean()) - (expect - expect.mean()))) < 0.3


def test_uneven_spacing_warns_and_every_resamples(tmp_path):
    # 1-ps rows (restored history) followed by 0.1-ps rows (after the restart)
    times = np.concatenate([np.arange(0.0, 100.0, 1.0), np.arange(100.0, 200.0, 0.1)])
    x = np.where(times < 100.0, -2.0, 2.0)
    p = tmp_path / "colvar"
    _write(p, times, x, np.zeros_like(x))
    with pytest.warns(UserWarning, match="not evenly spaced"):
        reweight_colvar(str(p), 2.5, bins=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (axis,), f = reweight_colvar(str(p), 2.5, bins=2, every=1.0)
    # one frame per ps on both halves: equal populations, F equal in both bins
    assert f[0] == pytest.approx(f[1], abs=1e-9)
    assert read_colvar(str(p), every=1.0)["time"].size == 200


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_every_must_be_positive(tmp_path, bad):
    p = tmp_path / "colvar"
    _write(p, [0.0, 1.0], [0.0, 0.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="every"):
        read_colvar(str(p), every=bad)
