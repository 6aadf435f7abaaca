"""Command line: misuse is one clear error, and nothing is written."""

import os

import pytest

from openmm_nnbias.cli import main


@pytest.mark.parametrize("time, message", [
    ("--time=-5ns", "--time must be a finite time >= 0, got '-5ns'"),
    ("--time=nanns", "--time must be a finite time >= 0, got 'nanns'"),
    ("--time=infps", "--time must be a finite time >= 0"),
    ("--time=5", "cannot read --time '5'"),
    ("--time=0.001fs", "--time 0.001fs is shorter than one MD step"),
])
def test_deepves_bad_time_is_one_clear_error(tmp_path, capsys, time, message):
    out = tmp_path / "run"
    assert main(["deepves", "--system", "wolfe-quapp", time, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "NaN to integer" not in err
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "--steps must be >= 1, got 0"),
    (["--steps", "10", "--mts", "0"], "--mts must be an integer >= 1"),
    (["--steps", "10", "--decay-after=-1ns"], "--decay-after must be a finite time >= 0"),
])
def test_deepves_bad_numbers(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert main(["deepves", "--system", "alanine-tetrapeptide", "--out", str(out), "--no-progress"] + args) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_restart_without_checkpoint_creates_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["deepves", "--system", "wolfe-quapp", "--steps", "10", "--out", str(out), "--restart",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--restart: checkpoint" in err and "does not exist" in err
    assert not out.exists()
    ref = tmp_path / "ref"
    assert main(["reference", "--system", "alanine-tetrapeptide", "--steps", "10", "--out", str(ref),
                 "--restart", "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err and not ref.exists()
    assert main(["reference", "--time=-1ns", "--out", str(ref), "--no-progress"]) == 2
    assert "--time must be a finite time >= 0" in capsys.readouterr().err and not ref.exists()


def test_reweight_bad_window_names_the_option(tmp_path, capsys):
    assert main(["reweight", str(tmp_path), "--from", "soon"]) == 2
    assert "cannot read --from 'soon'" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []
    assert main(["reweight", str(tmp_path / "missing")]) == 2
    assert "No such file" in capsys.readouterr().err


def test_traceback_on_request(tmp_path, capsys, monkeypatch):
    """OPENMM_NNBIAS_TRACEBACK=1 raises the error instead of the one-line message (for bug reports)."""
    args = ["deepves", "--system", "wolfe-quapp", "--steps", "0", "--out", str(tmp_path / "r"), "--no-progress"]
    monkeypatch.setenv("OPENMM_NNBIAS_TRACEBACK", "0")
    assert main(args) == 2
    monkeypatch.setenv("OPENMM_NNBIAS_TRACEBACK", "1")
    with pytest.raises(ValueError, match="--steps must be >= 1"):
        main(args)


def test_system_choices_come_from_the_one_registry():
    """Each subcommand reads its --system choices from openmm_nnbias.recipes.system_names."""
    from openmm_nnbias.cli import _parser
    from openmm_nnbias.recipes import system_names

    for command, method in (("deepves", "deepves"), ("reference", "metad"), ("diffsim", "diffsim")):
        args = _parser().parse_args([command, "--system", system_names(method)[0], "--out", "x"])
        assert list(args.options["system"].choices) == system_names(method), command
        assert args.func.__module__ == f"openmm_nnbias.cli.{command}"

