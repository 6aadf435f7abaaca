"""Library messages name Python parameters; the command line names its flags instead."""

import ast
import pathlib
import re

import pytest

import openmm_nnbias

PACKAGE = pathlib.Path(openmm_nnbias.__file__).parent
FLAG = re.compile(r"(?<![\w-])--[a-z]")


def _strings(node) -> list:
    """The string constants in ``node`` (f-string parts included)."""
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _messages(tree) -> list:
    """``(line, text)`` of each string in a ``raise`` or a ``warnings.warn(...)`` call."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            found += [(node.lineno, s) for s in _strings(node.exc)]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "warn":
            found += [(node.lineno, s) for s in _strings(node)]
    return found


def test_library_messages_name_no_command_line_flag():
    """Every raise and warning outside openmm_nnbias/cli names the Python parameter, never a ``--flag``."""
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "cli" in path.relative_to(PACKAGE).parts:
            continue
        for line, text in _messages(ast.parse(path.read_text())):
            if FLAG.search(text):
                bad.append(f"{path.relative_to(PACKAGE)}:{line}: {text!r}")
    assert not bad, "\n".join(bad)


def test_library_error_names_the_parameter():
    from openmm_nnbias.runners import build_deepves

    with pytest.raises(ValueError) as info:
        build_deepves("alanine-dipeptide", mts=0)
    assert str(info.value).startswith("mts must be") and "--" not in str(info.value)


def test_command_line_error_names_the_flag(tmp_path, capsys):
    from openmm_nnbias.cli import main

    out = tmp_path / "run"
    assert main(["deepves", "--system", "alanine-dipeptide", "--mts", "0", "--time", "1ps", "--out", str(out),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "openmm-nnbias: error: --mts must be an integer >= 1" in err and not out.exists()
    assert main(["diffsim", "--system", "mueller-brown", "--epochs", "1", "--eval-replicas", "-1",
                 "--out", str(out), "--no-progress"]) == 2
    assert "--eval-replicas must be >= 0" in capsys.readouterr().err


@pytest.mark.parametrize("text, expected", [
    ("mts must be an integer >= 1, got 0", "--mts must be an integer >= 1, got 0"),
    ("restart: checkpoint 'x' does not exist", "--restart: checkpoint 'x' does not exist"),
    ("mcPoints, recrossings and decayAfter apply to alanine-tetrapeptide only",
     "--mc-points, --recrossings and --decay-after apply to alanine-tetrapeptide only"),
    ("sampleStride must be >= 1", "--sample-stride must be >= 1"),
    ("input file 'run.yaml' not found", "--input file 'run.yaml' not found"),
    ("the input file needs a 'system' section", "the input file needs a 'system' section"),
    ("system.xml: s.xml holds a State, not a System", "system.xml: s.xml holds a State, not a System"),
    ("deepves.stride must be >= 1, got 0", "deepves.stride must be >= 1, got 0"),
    ("the run ended 3 MD steps into an iteration", "the run ended 3 MD steps into an iteration"),
    ("temperature must be > 0 K", "--temperature must be > 0 K"),
])
def test_flags_replace_parameters_only_where_they_are_named(text, expected):
    from openmm_nnbias.cli import _parser
    from openmm_nnbias.cli._args import flag_message

    args = _parser().parse_args(["deepves"])
    assert flag_message(text, args.options.flags()) == expected


def test_dests_are_the_python_names():
    """Each deepves option's dest is its library name: build_deepves keyword, overrides key or input-file key."""
    from openmm_nnbias.cli import _parser
    from openmm_nnbias.cli.deepves import SECTIONS
    from openmm_nnbias.runners.inputfile import SCHEMA

    flags = _parser().parse_args(["deepves"]).options.flags()
    assert flags["sampleStride"] == "--sample-stride" and flags["tauKL"] == "--tau-kl"
    assert flags["mcPoints"] == "--mc-points" and flags["mode"] == "--async" and flags["bins"] == "--bins"
    assert all(dest in SCHEMA[section] for dest, section in SECTIONS.items())


def test_cli_warnings_name_flags(monkeypatch):
    """A warning raised during a CLI run names the flag a CLI user types, not the Python parameter."""
    from openmm_nnbias import cli

    monkeypatch.setattr(cli, "_FLAGS", {"learnerCPUs": "--learner-cpus", "sampleStride": "--sample-stride"})
    line = cli._format_warning("MD and learning share one CPU; give the learner another one with learnerCPUs",
                               RuntimeWarning, "x.py", 1)
    assert line == ("openmm-nnbias: warning: MD and learning share one CPU; give the learner another one "
                    "with --learner-cpus\n")
    assert "deepves.sampleStride" in cli._format_warning("deepves.sampleStride is large", UserWarning, "x.py", 1)
