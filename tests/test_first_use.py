"""What a new user's first trial tripped over (issue 29, item 5): each test failed before its fix."""

import copy
import math
import os
import warnings

import numpy as np
import openmm as mm
import pytest
import torch
from openmm import app, unit

from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
from openmm_nnbias.cvs import CVSet, Distance, ModelCV, Torsion
from openmm_nnbias.ves import DeepVESUpdater


def _phipsi(pep):
    return [Torsion(pep.torsions["phi"], "phi"), Torsion(pep.torsions["psi"], "psi")]


def test_bias_force_takes_a_list_of_cvs(dipeptide):
    """Before: AttributeError ('list' object has no attribute 'n_cvs')."""
    cvs = CVSet(_phipsi(dipeptide))
    nnforce = NeuralBiasForce(_phipsi(dipeptide), NeuralBias.from_cvs(cvs))
    assert isinstance(nnforce.cvs, CVSet) and nnforce.cvs.names == ["phi", "psi"]
    with pytest.raises(TypeError, match="cvs must be a CVSet \\(or a list of CVs\\), got Torsion"):
        NeuralBiasForce(_phipsi(dipeptide)[0], NeuralBias.from_cvs(CVSet(_phipsi(dipeptide)[:1])))
    with pytest.raises(TypeError, match="bias must be a NeuralBias"):
        NeuralBiasForce(cvs, "bias")


def test_backend_is_chosen_from_the_cvs(dipeptide):
    """Before: always "torch". Now as the command line: table where it takes the CVs, torch otherwise."""
    def backend(cvs, **kw):
        cvs = CVSet(cvs)
        return NeuralBiasForce(cvs, NeuralBias.from_cvs(cvs), **kw).backend.name

    assert backend(_phipsi(dipeptide)) == "table"
    assert backend([Distance([1, 18], 0.1, 1.0, "d")]) == "table"
    assert backend(_phipsi(dipeptide) + [Distance([1, 18], 0.1, 1.0, "d")]) == "torch"  # mixed periodicity
    four = [Torsion([i, i + 1, i + 2, i + 3], f"t{i}") for i in range(4)]
    assert backend(four) == "torch"
    model = torch.jit.script(torch.nn.Linear(1, 1))
    assert backend([ModelCV(model, Distance([1, 18], 0.0, 2.0, "d"), -5.0, 5.0, names="m")]) == "torch"
    assert backend(_phipsi(dipeptide), backend="torch") == "torch"  # an explicit choice stays
    assert backend(_phipsi(dipeptide), backend="cmap") == "cmap"


def test_torsion_shortcut_out_of_range_gives_the_valid_residues(dipeptide):
    """Before: "residue 2 has no phi torsion", without the valid range nor that residues count from 0."""
    from openmm_nnbias.runners.userinput import build_cvs

    spec = [{"type": "torsion", "name": "phi", "atoms": {"phi": 2}, "lower": None, "upper": None}]
    with pytest.raises(ValueError, match=r"residue 2 has no phi torsion; residue numbers are 0-based .* "
                                         r"the residues with a phi torsion here are 1$"):
        build_cvs(spec, dipeptide.topology, 22)


def test_model_cv_unit_reaches_the_colvar_header(dipeptide, tmp_path):
    """Before: ModelCV had no unit, and colvar said ``units_rg 1`` for a radius in nm."""
    model = torch.jit.script(torch.nn.Linear(1, 1))
    rg = ModelCV(model, Distance([1, 18], 0.0, 2.0, "d"), 0.0, 5.0, names="rg", unit="nm")
    cvs = CVSet([rg])
    assert cvs.units == ["nm"] and CVSet([ModelCV(model, Distance([1, 18], 0.0, 2.0, "d"), 0.0, 5.0)]).units == ["1"]
    updater = DeepVESUpdater(NeuralBiasForce(cvs, NeuralBias.from_cvs(cvs)), 300.0, stride=10,
                             outputs=str(tmp_path / "run"))
    assert "#! SET units_rg nm" in updater._colvar_header()
    assert "min_rg" not in updater._colvar_header()  # not periodic: no domain line (PLUMED's colvar convention)
    with pytest.raises(TypeError, match="unit must be a str"):
        ModelCV(model, Distance([1, 18], 0.0, 2.0, "d"), 0.0, 5.0, unit=1)


def test_colvar_header_declares_the_periodic_domain(tmp_path):
    """The colvar says which CVs are periodic on which domain (PLUMED's ``#! SET min_<cv>``/``max_<cv>``), so that
    ``openmm-nnbias reweight`` can histogram a run that has no fes_bias.dat (more than 3 CVs)."""
    from openmm_nnbias.io import read_grid_domain

    cvs = CVSet([Torsion([4, 6, 8, 14], "phi"), Distance([1, 18], 0.0, 2.0, "d")])
    updater = DeepVESUpdater(NeuralBiasForce(cvs, NeuralBias.from_cvs(cvs)), 300.0, stride=10,
                             outputs=str(tmp_path / "run"))
    path = tmp_path / "colvar"
    path.write_text(updater._colvar_header())
    dom = read_grid_domain(str(path))
    assert list(dom) == ["phi"] and dom["phi"]["min"] == pytest.approx(-math.pi, abs=1e-9)
    assert dom["phi"]["max"] == pytest.approx(math.pi, abs=1e-9)


def test_a_failed_start_creates_no_output_folder(dipeptide, tmp_path):
    """Before: the updater created ``out`` when built, so a start failing before the first report left an
    empty folder behind."""
    cvs = CVSet(_phipsi(dipeptide))
    nnforce = NeuralBiasForce(cvs, NeuralBias.from_cvs(cvs))
    system = copy.deepcopy(dipeptide.system)
    nnforce.addToSystem(system)
    out = tmp_path / "new" / "run"
    updater = DeepVESUpdater(nnforce, 300 * unit.kelvin, stride=10, outputs=str(out))
    assert not (tmp_path / "new").exists()
    integrator = mm.LangevinMiddleIntegrator(310 * unit.kelvin, 1 / unit.picosecond, 0.002 * unit.picoseconds)
    sim = app.Simulation(dipeptide.topology, system, integrator, mm.Platform.getPlatformByName("Reference"))
    sim.context.setPositions(dipeptide.positions)
    sim.reporters.append(updater)
    with pytest.raises(ValueError, match="differs from the integrator's"):
        sim.step(10)
    assert not (tmp_path / "new").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        DeepVESUpdater(nnforce, 300 * unit.kelvin, stride=10, outputs=str(tmp_path / "file" / "run"))
    integrator.setTemperature(300 * unit.kelvin)  # the same updater, a good start: the folder appears
    sim.step(9)  # to step 10, an iteration boundary (the failed start took one step)
    updater.finish()
    assert (out / "colvar").exists() and (out / "bias.pt").exists()


def test_cli_warnings_are_one_line(tmp_path):
    """Before: a warning showed the source path and a line of code. Run as a user runs it (a new process:
    under pytest warnings are recorded, not printed)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "openmm_nnbias.cli", "deepves", "--system", "wolfe-quapp",
                           "--steps", "10", "--out", str(tmp_path / "run"), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "warning" in ln.lower()]
    assert lines and all(ln.startswith("openmm-nnbias: warning: ") for ln in lines), proc.stderr
    assert "ended 10 MD steps into an iteration" in proc.stderr and ".py:" not in proc.stderr


def test_cli_restores_the_warning_format():
    from openmm_nnbias.analysis import plots  # noqa: F401
    from openmm_nnbias.cli import main

    formatted = warnings.formatwarning
    with pytest.raises(SystemExit):
        main(["plot", "--help"])
    assert warnings.formatwarning is formatted


def test_plot_help_describes_its_argument(capsys):
    from openmm_nnbias.cli import main

    with pytest.raises(SystemExit):
        main(["plot", "--help"])
    out = capsys.readouterr().out
    assert "RUN" in out and "run folder" in out and "colvar" in out


@pytest.mark.parametrize("length_ps, label", [(2.0, "time (ps)"), (5000.0, "time (ns)")])
def test_colvar_plot_time_unit_and_markers(tmp_path, monkeypatch, length_ps, label):
    """Before: the time axis was in ns even for a 2 ps run, and the markers were single pixels."""
    import matplotlib
    import matplotlib.figure

    matplotlib.use("Agg")
    from openmm_nnbias.analysis.plots import plot_run

    t = np.linspace(0.0, length_ps, 101)
    rows = np.column_stack([t, np.sin(t), np.cos(t), np.cos(t) - 1])
    header = "#! FIELDS time phi bias rbias\n#! SET units_time ps\n#! SET units_phi rad\n"
    np.savetxt(tmp_path / "colvar", rows, fmt="%.6f", header=header.rstrip("\n"), comments="")
    seen = []
    save = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, *a, **k: (seen.append(fig), save(fig, *a, **k)))
    assert plot_run(str(tmp_path)) == [str(tmp_path / "colvar.png")]
    axes = seen[0].axes
    assert axes[-1].get_xlabel() == label
    line = axes[0].get_lines()[0]
    assert line.get_marker() == "." and line.get_markersize() >= 2
    assert math.isclose(max(line.get_xdata()), length_ps if label == "time (ps)" else length_ps / 1000)
    assert os.path.exists(tmp_path / "colvar.png")
