"""The FES a bias implies (Eq. 4) as 1-D marginals over many CVs (analysis.bias_fes, ``openmm-nnbias marginals``):
against a 1-D quadrature for a bias of one CV, chunking, a run folder and the command line."""

import math
import os

import numpy as np
import pytest
import torch

from openmm_nnbias.analysis.bias_fes import bias_marginals, bias_marginals_run
from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
from openmm_nnbias.cvs import CVSet, Torsion

KT = 2.494338785445972  # kJ/mol at 300 K


def _bias_of_first_cv(n_cvs=4, span=20.0, seed=3):
    """A network of n_cvs torsions that reads only (cos s0, sin s0), V(s0) spanning ``span`` kJ/mol."""
    bias = NeuralBias([True] * n_cvs, [-math.pi] * n_cvs, [math.pi] * n_cvs, hidden=(32, 16), seed=seed,
                      zero_output=False)
    with torch.no_grad():
        keep = torch.zeros_like(bias.layers[0].weight)
        keep[:, [0, n_cvs]] = 1.0  # features: the cosines, then the sines
        bias.layers[0].weight.mul_(keep)
        x = torch.zeros(720, n_cvs, dtype=torch.float64)
        x[:, 0] = torch.linspace(-math.pi, math.pi, 720, dtype=torch.float64)
        bias.layers[-1].weight.mul_(span / float(np.ptp(bias(x).numpy())))
    return bias


def _quadrature(bias, scale, bins, n_cvs=4):
    """−kT ln of the bin mean of e^{scale·βV(s0)} on a fine grid of each bin (bins from −π, as histogram_fes)."""
    h = 2 * math.pi / bins
    fine = -math.pi + h * (np.arange(bins)[:, None] + (np.arange(400)[None, :] + 0.5) / 400)
    s = torch.zeros(fine.size, n_cvs, dtype=torch.float64)
    s[:, 0] = torch.from_numpy(fine.ravel())
    with torch.no_grad():
        logw = scale * bias(s).numpy().reshape(fine.shape) / KT
    f = -KT * (np.log(np.mean(np.exp(logw - logw.max()), axis=1)))
    return f - f.min()


@pytest.mark.parametrize("bias_factor, scale", [(10.0, 10.0 / 9.0), (None, 1.0)])
def test_marginal_of_a_bias_of_one_cv_equals_the_quadrature(bias_factor, scale):
    """F = −V γ/(γ − 1) (well-tempered target) or −V (uniform) bin-averaged on s0; the other marginals flat."""
    bias = _bias_of_first_cv()
    axes, fes, ess = bias_marginals(bias, KT, bias_factor, bins=24, points=400_000)
    expected = _quadrature(bias, scale, 24)
    assert np.ptp(expected) > 10.0
    assert np.allclose(axes[0], -math.pi + (np.arange(24) + 0.5) * 2 * math.pi / 24)
    d = fes[0] - expected  # noise: ~16 700 points a bin, the count's 0.8 %
    assert np.abs(d - d.mean()).max() < 0.12
    noise = 5 * KT / math.sqrt(ess / 24)  # the flat marginals: each bin holds ~ESS/24 effective points
    assert max(np.abs(f).max() for f in fes[1:]) < noise < 0.6
    assert 0 < ess <= 400_000


def test_chunks_do_not_change_the_result():
    """The weights are summed against one reference, raised when a later chunk has a larger weight."""
    bias = _bias_of_first_cv(span=40.0)
    one = bias_marginals(bias, KT, 10.0, bins=12, points=30_000, chunk=30_000)
    many = bias_marginals(bias, KT, 10.0, bins=12, points=30_000, chunk=7_000)
    assert all(np.allclose(a, b, atol=1e-9) for a, b in zip(one[1], many[1]))
    assert one[2] == pytest.approx(many[2], rel=1e-9)


@pytest.mark.parametrize("kw, match", [({"bins": 0}, "bins must be >= 1"), ({"points": 0}, "points must be >= 1")])
def test_bad_arguments_name_the_parameter(kw, match):
    with pytest.raises(ValueError, match=match):
        bias_marginals(_bias_of_first_cv(), KT, 10.0, **{"bins": 12, "points": 100, **kw})
    with pytest.raises(ValueError, match="biasFactor must be a finite number > 1"):
        bias_marginals(_bias_of_first_cv(), KT, 1.0, bins=12, points=100)


def _run_folder(tmp_path, target):
    cvs = CVSet([Torsion([4, 6, 8, 14], "phi"), Torsion([6, 8, 14, 16], "psi"),
                 Torsion([8, 14, 16, 18], "omega"), Torsion([1, 4, 6, 8], "chi")])
    bias = NeuralBias.from_cvs(cvs, hidden=(16, 8), seed=2, zero_output=False)
    run = tmp_path / "run"
    run.mkdir()
    NeuralBiasForce(cvs, bias).exportBias(str(run / "bias.pt"))
    torch.save({"config": {"temperature": 300.0, "target": target}}, str(run / "checkpoint.pt"))
    return str(run), bias


def test_run_folder_and_command_line(tmp_path, capsys):
    from openmm_nnbias.cli import main
    from openmm_nnbias.io import read_grid_domain, read_grid_file

    run, bias = _run_folder(tmp_path, {"kind": "MonteCarlo", "biasFactor": 8.0})
    paths, ess = bias_marginals_run(run, bins=10, points=50_000, seed=1)
    assert [os.path.basename(p) for p in paths] == [f"fes_bias_{n}.dat" for n in ("phi", "psi", "omega", "chi")]
    direct = bias_marginals(bias, KT, 8.0, bins=10, points=50_000, seed=1)
    assert np.allclose(read_grid_file(paths[1])[1], direct[1][1], atol=1e-6)  # the exported bias, the same numbers
    assert read_grid_domain(paths[0])["phi"]["periodic"] is True
    assert main(["marginals", run, "--points", "2e4", "--bins", "8"]) == 0
    out = capsys.readouterr().out
    assert "fes_bias_chi.dat" in out and "effective sample size of the 20000 points" in out
    assert main(["marginals", run, "--points", "0"]) == 2
    assert "--points must be a whole number >= 1" in capsys.readouterr().err
    os.remove(os.path.join(run, "checkpoint.pt"))
    assert main(["marginals", run]) == 2
    assert "checkpoint.pt does not exist" in capsys.readouterr().err
    assert main(["marginals", str(tmp_path / "none")]) == 2
    assert "bias.pt does not exist" in capsys.readouterr().err


def test_plot_run_draws_the_marginals(tmp_path):
    from openmm_nnbias.analysis.plots import plot_run

    run, _ = _run_folder(tmp_path, {"kind": "MonteCarlo", "biasFactor": 8.0})
    bias_marginals_run(run, bins=10, points=5_000)
    assert [os.path.basename(p) for p in plot_run(run)] == ["marginals.png"]
    assert os.path.getsize(os.path.join(run, "marginals.png")) > 0


def test_uniform_target_run(tmp_path):
    run, bias = _run_folder(tmp_path, {"kind": "Uniform", "bins": 50})
    paths, _ = bias_marginals_run(run, bins=10, points=20_000)
    from openmm_nnbias.io import read_grid_file

    assert np.allclose(read_grid_file(paths[0])[1], bias_marginals(bias, KT, None, bins=10, points=20_000)[1][0],
                       atol=1e-6)


def test_window_averages_the_snapshots_of_the_last_part(tmp_path, capsys):
    """--window 0.25 over snapshots at 1000..4000 iterations: the mean of the marginals of bias_3000 and bias_4000."""
    from openmm_nnbias.cli import main
    from openmm_nnbias.io import read_grid_file

    run, _ = _run_folder(tmp_path, {"kind": "MonteCarlo", "biasFactor": 8.0})
    cvs = CVSet([Torsion([4, 6, 8, 14], "phi"), Torsion([6, 8, 14, 16], "psi"),
                 Torsion([8, 14, 16, 18], "omega"), Torsion([1, 4, 6, 8], "chi")])
    biases = {}
    for it in (1000, 2000, 3000, 4000):
        biases[it] = NeuralBias.from_cvs(cvs, hidden=(16, 8), seed=it, zero_output=False)
        NeuralBiasForce(cvs, biases[it]).exportBias(os.path.join(run, f"bias_{it}.pt"))
    paths, _ = bias_marginals_run(run, bins=10, points=20_000, window=0.25)
    each = [bias_marginals(biases[it], KT, 8.0, bins=10, points=20_000)[1][2] for it in (3000, 4000)]
    expected = np.mean(each, axis=0)
    assert np.allclose(read_grid_file(paths[2])[1], expected - expected.min(), atol=1e-6)
    assert "bias_3000.pt,bias_4000.pt" in open(paths[2]).read()
    assert main(["marginals", run, "--window", "2", "--points", "100"]) == 2
    assert "window must be a fraction of the run in [0, 1]" in capsys.readouterr().err
    for it in (1000, 2000, 3000, 4000):
        os.remove(os.path.join(run, f"bias_{it}.pt"))
    assert main(["marginals", run, "--window", "0.25", "--points", "100"]) == 2
    assert "has no bias snapshots" in capsys.readouterr().err
