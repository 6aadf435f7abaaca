"""CLI: deepves / reference --system alanine-tetrapeptide (MC target, --mts) and the Ala4 analysis."""

import math
import os

import numpy as np
import pytest
import torch  # noqa: F401  (before openmmtorch)

from openmm_nnbias.cli import main
from openmm_nnbias._units import KB
from openmm_nnbias.analysis.marginals import marginals_from_fes3d, reweighted_marginals


def _rows(path, usecols=None):
    return np.loadtxt(path, comments="#", ndmin=2, usecols=usecols)


def test_deepves_tetrapeptide_mc_target_mts_and_restart(tmp_path):
    out = str(tmp_path / "run")
    args = ["deepves", "--system", "alanine-tetrapeptide", "--out", out, "--mts", "2", "--mc-points", "400",
            "--stride", "100", "--no-progress"]
    assert main(args + ["--steps", "150"]) == 0   # 150 outer steps = 300 inner = 3 iterations of 0.2 ps
    log = _rows(os.path.join(out, "ves.log"), usecols=range(6))
    assert log.shape[0] == 3
    colvar = _rows(os.path.join(out, "colvar"))
    assert colvar.shape[1] == 1 + 6 + 2 and np.isfinite(colvar).all()
    # one outer step = 2 x 2 fs; samples every 5 outer steps
    np.testing.assert_allclose(colvar[-1, 0], 150 * 0.004, atol=1e-6)
    np.testing.assert_allclose(np.diff(colvar[:, 0]), 0.02, atol=1e-6)
    assert (np.abs(colvar[:, 1:7]) <= math.pi + 1e-6).all()
    state = torch.load(os.path.join(out, "checkpoint.pt"), weights_only=False)
    assert state["config"]["target"]["kind"] == "MonteCarlo"
    # from the final checkpoint at step 150, learning in a child process (MC target, torch backend)
    assert main(args + ["--steps", "250", "--restart", "--async", "process"]) == 0
    log = _rows(os.path.join(out, "ves.log"), usecols=range(6))
    assert log[-1, 0] == 4 and np.isfinite(log[:, 3]).all()


def test_build_tetrapeptide_options_and_errors(tmp_path, capsys):
    import openmm as mm

    from openmm_nnbias.runners import build_deepves
    from openmm_nnbias.ves.monitors import RecrossingMonitor

    sim, up, dt = build_deepves("alanine-tetrapeptide", backend="torch", mts=4, overrides=dict(mcPoints=200))
    assert isinstance(sim.integrator, mm.MTSLangevinIntegrator) and math.isclose(dt, 0.008)
    assert up.stride * dt == pytest.approx(1.0, rel=1e-12) and up.grid is None  # 125 outer steps of 8 fs
    assert isinstance(up.optimizer.recrossing, RecrossingMonitor) and up.optimizer.recrossing.cv_indices == [0, 2, 4]
    assert up.optimizer.recrossing.min_iterations == round(10000 / (up.stride * dt))  # paper: 10 ns constant lr
    _, up2, _ = build_deepves("alanine-tetrapeptide", backend="torch", overrides=dict(mcPoints=200, decayAfter=500.0))
    assert up2.optimizer.recrossing.min_iterations == 500  # 500 steps x 2 fs = 1 ps per iteration
    with pytest.raises(ValueError, match="^decayAfter needs recrossings"):
        build_deepves("alanine-tetrapeptide", backend="torch", overrides=dict(recrossings=0, decayAfter=5.0))
    assert up.cvs.names == ["phi1", "psi1", "phi2", "psi2", "phi3", "psi3"]
    assert up.optimizer.target.sampler.n_chains * up.optimizer.target.n_steps == 200
    _, up, _ = build_deepves("alanine-tetrapeptide", backend="torch", overrides=dict(recrossings=0, mcPoints=200))
    assert up.optimizer.recrossing is None
    with pytest.raises(ValueError, match="mts"):
        build_deepves("alanine-tetrapeptide", backend="torch", mts=0)
    assert main(["deepves", "--system", "wolfe-quapp", "--steps", "10", "--out", str(tmp_path / "w"),
                 "--walkers", "2", "--async", "process"]) == 2
    assert "the 'process' mode cannot be combined with multiple walkers" in capsys.readouterr().err
    assert main(["deepves", "--system", "alanine-dipeptide", "--steps", "10", "--out", str(tmp_path),
                 "--mc-points", "100", "--no-progress"]) == 2
    assert "alanine-tetrapeptide only" in capsys.readouterr().err


def test_reference_tetrapeptide_marginals_and_restart(tmp_path):
    from openmm_nnbias.io import read_grid_file

    out = str(tmp_path / "ref")
    assert main(["reference", "--system", "alanine-tetrapeptide", "--steps", "1000", "--out", out, "--no-progress"]) == 0
    pts, f3, names = read_grid_file(os.path.join(out, "fes_reference_3d.dat"))
    assert names == ["phi1", "phi2", "phi3"] and f3.size == 36 ** 3 and f3.min() == 0
    assert f3.max() > 0  # Gaussians were deposited (every 500 steps)
    f3 = f3.reshape(36, 36, 36)
    kT = KB * 300.0
    # independent marginalization: numerical integral of exp(-βF) over φ3 / over φ1, φ3
    p = np.exp(-f3 / kT)
    for tag, axes in (("phi1_phi2", 2), ("phi2", (0, 2))):
        ref = -kT * np.log(p.sum(axis=axes))
        got = read_grid_file(os.path.join(out, f"fes_reference_{tag}.dat"))[1].reshape(ref.shape)
        np.testing.assert_allclose(got, ref - ref.min(), atol=1e-5)
    n0 = _rows(os.path.join(out, "colvar")).shape[0]
    assert main(["reference", "--system", "alanine-tetrapeptide", "--steps", "1500", "--out", out, "--restart",
                 "--no-progress"]) == 0
    colvar = _rows(os.path.join(out, "colvar"))
    assert colvar.shape[0] == n0 + 1 and math.isclose(colvar[-1, 0], 3.0)


def test_reweighted_marginals_analytic(tmp_path):
    """Uniform φ with rbias = −2kT cos φ1: F(φ1) = 2kT cos φ1 + const, F(φ2) flat."""
    kT = KB * 300.0
    rng = np.random.default_rng(0)
    phi = rng.uniform(-math.pi, math.pi, size=(200000, 3))
    rbias = -2 * kT * np.cos(phi[:, 0])
    path = tmp_path / "colvar"
    data = np.column_stack([np.arange(len(phi)) * 0.01, phi, rbias, rbias])
    with open(path, "w") as fh:
        fh.write("#! FIELDS time phi1 phi2 phi3 bias rbias\n")
        np.savetxt(fh, data, fmt="%.6f")
    marg = reweighted_marginals(str(path), kT, n=36)
    axis = -math.pi + 2 * math.pi * np.arange(36) / 36
    exact = 2 * kT * np.cos(axis)
    # bins of width 10 degrees centred on the grid points: the bin average of e^{-βF} is within 1 %
    np.testing.assert_allclose(marg[(0,)], exact - exact.min(), atol=0.15)
    assert np.ptp(marg[(1,)]) < 0.3
    assert np.allclose(marginals_from_fes3d(np.zeros((4, 4, 4)), kT)[(0, 1)], 0.0)
