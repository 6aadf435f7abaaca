"""benchmarks/long_runs.sh keeps a run's restart state in git: archive thins the colvar, restore unpacks it."""

import os
import shutil
import subprocess
import tarfile

import numpy as np
import pytest

from openmm_nnbias.io import read_colvar

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "long_runs.sh")
pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("xz") is None,
                                reason="needs bash and xz")


def _run(tmp_path, *args):
    env = dict(os.environ, LONG_RUNS_OUT=str(tmp_path / "out"), LONG_RUNS_ARCHIVE=str(tmp_path / "runs"))
    return subprocess.run(["bash", SCRIPT, *args], env=env, capture_output=True, text=True, check=True).stdout


def test_archive_thins_the_colvar_and_restore_brings_the_run_back(tmp_path):
    run = tmp_path / "out" / "si216"
    run.mkdir(parents=True)
    (run / "checkpoint.pt").write_bytes(b"state" * 100)
    (run / "ves.log").write_text("#! FIELDS iteration time\n0 1.000\n")
    (run / "fes_bias.dat").write_text("#! FIELDS n_diamond file.free\n0 1\n")
    times = np.round(np.arange(1, 501) * 0.02, 6)  # 0.02-ps rows, as the silicon recipe writes them
    with open(run / "colvar", "w") as fh:
        fh.write("#! FIELDS time n_diamond bias rbias\n#! SET units_time ps\n")
        for t in times:
            fh.write(f"{t:.6f} 215.0 0.0 0.0\n")
    out = _run(tmp_path, "archive", "si216")
    assert "si216: archived 0.010 ns" in out
    with tarfile.open(tmp_path / "runs" / "si216.tar.xz") as tar:
        assert sorted(tar.getnames()) == ["si216", "si216/checkpoint.pt", "si216/colvar", "si216/fes_bias.dat",
                                          "si216/ves.log"]
    shutil.rmtree(run)
    assert "restored" in _run(tmp_path, "restore", "si216")
    assert (run / "checkpoint.pt").read_bytes() == b"state" * 100
    col = read_colvar(str(run / "colvar"))
    np.testing.assert_allclose(col["time"], np.arange(1.0, 11.0))  # one row per ps, header kept
    assert (run / "colvar").read_text().startswith("#! FIELDS time n_diamond bias rbias\n#! SET units_time ps\n")
    # restore never overwrites a run that is there
    assert _run(tmp_path, "restore", "si216") == ""


def test_archive_keeps_reference_snapshots(tmp_path):
    run = tmp_path / "out" / "solv_hmr_ref"
    run.mkdir(parents=True)
    (run / "checkpoint.pkl").write_bytes(b"x")
    (run / "fes_reference.dat").write_text("#! FIELDS phi psi file.free\n0 0 1\n")
    (run / "colvar").write_text("#! FIELDS time phi psi\n1.000000 0 0\n2.000000 0 0\n")
    _run(tmp_path, "archive", "solv_hmr_ref")
    assert (run / "snapshots" / "2.dat").read_text() == (run / "fes_reference.dat").read_text()
    with tarfile.open(tmp_path / "runs" / "solv_hmr_ref.tar.xz") as tar:
        assert "solv_hmr_ref/snapshots/2.dat" in tar.getnames()
