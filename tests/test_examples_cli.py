"""Smoke tests: every example and CLI command runs end to end with few steps."""

import os
import runpy
import sys

import numpy as np
import pytest

from openmm_nnbias.analysis import compare_files, interpolate_grid, read_grid_file, write_grid_file
from openmm_nnbias._units import parse_time
from openmm_nnbias.cli import main

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def run_example(name, argv):
    old = sys.argv
    sys.argv = [name] + argv
    try:
        return runpy.run_path(os.path.join(EXAMPLES, name), run_name="__main__")
    finally:
        sys.argv = old


def test_examples_run(tmp_path):
    run_example("wolfe_quapp_deepves.py", ["--steps", "3000", "--out", str(tmp_path / "wq")])
    assert os.path.exists(tmp_path / "wq" / "fes_bias.dat")
    run_example("alanine_dipeptide_deepves.py", ["--steps", "1500", "--out", str(tmp_path / "ala")])
    bias = tmp_path / "ala" / "bias.pt"
    assert bias.exists()
    run_example("static_bias_reweighting.py", ["--bias", str(bias), "--steps", "400", "--every", "20",
                                                "--out", str(tmp_path / "prod")])
    _, fes, names = read_grid_file(str(tmp_path / "prod" / "fes_reweighted.dat"))
    assert names == ["phi", "psi"] and np.nanmin(fes) == 0.0


def test_cli_deepves_restart_plot_compare(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["deepves", "--system", "wolfe-quapp", "--steps", "2000", "--out", out, "--no-progress"]) == 0
    assert main(["deepves", "--system", "wolfe-quapp", "--steps", "3000", "--out", out, "--no-progress",
                 "--restart"]) == 0
    log = [ln for ln in open(os.path.join(out, "ves.log")) if not ln.startswith("#")]
    assert len(log) == 6  # 4 iterations, then 2 more after the restart
    assert main(["deepves", "--system", "wolfe-quapp", "--steps", "4000", "--out", out, "--no-progress",
                 "--restart", "--activation", "elu"]) == 2  # another network than the checkpoint's
    assert "'network'" in capsys.readouterr().err
    assert main(["reweight", out, "--temperature", "120.27", "--output", os.path.join(out, "rw.dat")]) == 0
    _, rw, names = read_grid_file(os.path.join(out, "rw.dat"))
    assert names == ["x"] and np.nanmin(rw) == 0.0
    assert main(["plot", out]) == 0
    assert os.path.exists(os.path.join(out, "fes_bias.png"))
    assert main(["compare", os.path.join(out, "fes_bias.dat"), os.path.join(out, "fes_bias.dat")]) == 0
    assert "RMSE 0.000" in capsys.readouterr().out


def test_cli_errors(tmp_path, capsys):
    assert main(["deepves", "--system", "wolfe-quapp", "--steps", "100", "--out", str(tmp_path / "r"),
                 "--platform", "Quantum", "--no-progress"]) == 2
    assert "unknown OpenMM platform 'Quantum'" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "nothing")]) == 2
    assert main(["deepves", "--system", "wolfe-quapp", "--steps", "100", "--out", str(tmp_path / "r2"),
                 "--restart", "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(ValueError, match="cannot read time"):
        parse_time("20 parsecs")
    assert parse_time("20ns") == 20000.0
    assert main(["deepves", "--system", "wolfe-quapp", "--steps", "100", "--out", str(tmp_path / "r3"),
                 "--async", "process", "--learner-cpus", "one", "--no-progress"]) == 2
    assert "--learner-cpus takes comma-separated CPU ids" in capsys.readouterr().err
    assert main(["deepves", "--system", "wolfe-quapp", "--steps", "100", "--out", str(tmp_path / "r4"),
                 "--learner-cpus", "0", "--no-progress"]) == 2
    assert "--learner-cpus applies to the 'process' execution mode only" in capsys.readouterr().err
    from openmm_nnbias.runners import build_deepves

    from openmm_nnbias.bias.network import ACTIVATIONS
    from openmm_nnbias.cli import _parser

    action = _parser().parse_args(["deepves"]).options["activation"]
    assert sorted(action.choices) == sorted(ACTIVATIONS)  # the CLI offers exactly the network's activations
    _, updater, _ = build_deepves("wolfe-quapp", overrides={"activation": "elu"})  # --activation elu
    assert updater.bias.activation == "elu" and updater.config["network"]["activation"] == "elu"


def test_compare_interpolates_between_grids(tmp_path):
    """A smooth periodic FES on a 50-bin centre grid vs the same function on a 72-point grid."""
    f = lambda a, b: 10 * (1 - np.cos(a)) + 5 * (1 - np.cos(b - 1))  # noqa: E731
    c = -np.pi + (np.arange(50) + 0.5) * 2 * np.pi / 50
    r = np.linspace(-np.pi, np.pi, 73)[:-1]
    A, B = np.meshgrid(c, c, indexing="ij")
    RA, RB = np.meshgrid(r, r, indexing="ij")
    write_grid_file(str(tmp_path / "a.dat"), ["phi", "psi"], [c, c], f(A, B) + 3.0, [True, True])
    write_grid_file(str(tmp_path / "r.dat"), ["phi", "psi"], [r, r], f(RA, RB), [True, True])
    rmse, n = compare_files(str(tmp_path / "a.dat"), str(tmp_path / "r.dat"), cutoff=20.0)
    assert rmse < 0.1 and n > 1000
    # a FES known on part of the region only (a reweighted run that never left one basin) says so
    write_grid_file(str(tmp_path / "p.dat"), ["phi", "psi"], [c, c], np.where(A < 0, f(A, B), np.inf), [True, True])
    with pytest.warns(RuntimeWarning, match="the RMSE covers those only"):
        _, n_part = compare_files(str(tmp_path / "p.dat"), str(tmp_path / "r.dat"), cutoff=20.0)
    assert n_part < 0.6 * n
    # exact on grid nodes, wraps periodically
    axes = [c]
    vals = np.sin(c)
    np.testing.assert_allclose(interpolate_grid(axes, vals, c[:, None] + 2 * np.pi, [True]), vals, atol=1e-12)
