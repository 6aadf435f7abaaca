"""benchmarks/race_archive.sh: what a race's restart archive keeps, and colvars thinned to whole ps or kept whole."""

import os
import subprocess
import tarfile

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "race_archive.sh")
COLVAR = "#! FIELDS time x\n0.500000 1\n1.000000 2\n1.500000 3\n2.000000 4\n"


def _root(tmp_path):
    run = tmp_path / "out" / "race_x" / "deepves" / "1"
    (run / "ves").mkdir(parents=True)
    (run / "ves" / "colvar").write_text(COLVAR)
    (run / "ves" / "checkpoint.pt").write_text("updater's own")
    (run / "checkpoint.pt").write_text("runner's")
    (run / "progress.csv").write_text("t_ns\n1\n")
    (run / "progress.csv.tmp").write_text("half-written")
    (run / "lock").write_text("12345\n")  # the pid of the lane running it: not restart state
    return str(tmp_path / "out" / "race_x")


@pytest.mark.parametrize("thin", ["1", "0"])
def test_archive_keeps_restart_state(tmp_path, thin):
    root, dest = _root(tmp_path), str(tmp_path / "runs")
    env = dict(os.environ, RACE_ARCHIVE_DIR=dest, THIN=thin)
    subprocess.run(["bash", SCRIPT, root, "race_x"], check=True, env=env, capture_output=True)
    with tarfile.open(os.path.join(dest, "race_x.tar.xz")) as tar:
        names = set(tar.getnames())
        colvar = tar.extractfile("race_x/deepves/1/ves/colvar").read().decode()
    assert {"race_x/deepves/1/checkpoint.pt", "race_x/deepves/1/progress.csv"} <= names
    assert "race_x/deepves/1/ves/checkpoint.pt" not in names and not any(n.endswith(".tmp") for n in names)
    assert "race_x/deepves/1/lock" not in names
    assert colvar == (COLVAR if thin == "0" else "#! FIELDS time x\n1.000000 2\n2.000000 4\n")


def test_archive_of_a_missing_root_fails(tmp_path):
    r = subprocess.run(["bash", SCRIPT, str(tmp_path / "none"), "x"], capture_output=True, text=True,
                       env=dict(os.environ, RACE_ARCHIVE_DIR=str(tmp_path)))
    assert r.returncode == 2 and "no folder" in r.stderr


def test_exclude_leaves_a_subfolder_out(tmp_path):
    root, dest = _root(tmp_path), str(tmp_path / "runs")
    ref = os.path.join(root, "reference", "stage2")
    os.makedirs(ref)
    for name in ("samples_0.npz", "colvar"):
        with open(os.path.join(ref, name), "w") as fh:
            fh.write(COLVAR)
    env = dict(os.environ, RACE_ARCHIVE_DIR=dest, THIN="0", EXCLUDE="reference")
    subprocess.run(["bash", SCRIPT, root, "race_x"], check=True, env=env, capture_output=True)
    with tarfile.open(os.path.join(dest, "race_x.tar.xz")) as tar:
        names = set(tar.getnames())
    assert "race_x/deepves/1/ves/colvar" in names and not any("reference" in n for n in names)
    env.pop("EXCLUDE")
    subprocess.run(["bash", SCRIPT, root, "race_x"], check=True, env=env, capture_output=True)
    with tarfile.open(os.path.join(dest, "race_x.tar.xz")) as tar:
        assert {"race_x/reference/stage2/samples_0.npz", "race_x/reference/stage2/colvar"} <= set(tar.getnames())
