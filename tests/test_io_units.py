"""Files say their units (``#! SET units_<field>``) and plot axes carry them."""

import os
import sys

import numpy as np

from openmm_nnbias.analysis.plots import _label, plot_run
from openmm_nnbias.io import read_colvar, read_grid_file, read_units, write_grid_file

sys.path.insert(0, os.path.dirname(__file__))
from test_ves_updater import make_run  # noqa: E402


def test_grid_file_units_round_trip(tmp_path):
    p = str(tmp_path / "fes.dat")
    x = np.linspace(-1, 1, 5)
    write_grid_file(p, ["d"], [x], x ** 2, [False], units=["nm"])
    assert read_units(p) == {"d": "nm", "file.free": "kJ/mol"}
    assert read_grid_file(p)[2] == ["d"]  # still an ordinary grid file
    write_grid_file(p, ["d"], [x], x ** 2, [False])
    assert read_units(p) == {}


def test_run_files_carry_units_and_plots_use_them(tmp_path):
    out = tmp_path / "run"
    sim, up, _ = make_run(str(out))
    sim.step(200 * 3)
    up.finish()
    assert read_units(str(out / "colvar")) == {"time": "ps", "x": "nm", "bias": "kJ/mol", "rbias": "kJ/mol"}
    assert list(read_colvar(str(out / "colvar"))) == ["time", "x", "bias", "rbias"]
    log_units = read_units(str(out / "ves.log"))
    assert log_units["time"] == "ps" and log_units["c"] == "kJ/mol" and log_units["kl"] == "1"
    assert read_units(str(out / "fes_bias.dat")) == {"x": "nm", "file.free": "kJ/mol"}
    assert _label("x", read_units(str(out / "colvar"))) == "x (nm)" and _label("kl", log_units) == "kl"
    # fes.dat, the run's best estimate, is drawn too (before: only fes_bias.dat and fes_reweighted.dat)
    assert {os.path.basename(p) for p in plot_run(str(out))} >= {"fes.png", "fes_bias.png", "colvar.png", "ves.png"}
    sim2, up2, _ = make_run(str(tmp_path / "restart"), seed=5)
    up2.loadCheckpoint(str(out / "checkpoint.pt"), sim2)  # the headers survive a restart's truncation


def test_read_colvar_every_keeps_times_that_drifted_in_a_long_run(tmp_path):
    """OpenMM sums the steps in floating point: after 26 ns the written time is 4e-6 ps off its multiple."""
    from openmm_nnbias.io import read_colvar

    path = tmp_path / "colvar"
    rows = [(0.5, 1), (1.0, 2), (26189.5, 3), (26190.000004, 4), (26190.3, 5), (99999.99998, 6)]
    path.write_text("#! FIELDS time x\n" + "".join(f"{t:.6f} {x}\n" for t, x in rows))
    assert read_colvar(str(path), every=1.0)["x"].tolist() == [2.0, 4.0, 6.0]
    assert read_colvar(str(path), every=0.5)["x"].tolist() == [1.0, 2.0, 3.0, 4.0, 6.0]
