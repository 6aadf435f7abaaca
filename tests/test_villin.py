"""Villin headpiece in water (OpenMM's test.pdb): the system, ``--system villin`` and the same run from
``examples/villin.yaml``.

Villin costs ~70-90 ms per MD step on one core, so the default suite runs 20 steps (one iteration of
20 steps); the 2 ps run of the issue is marked ``long`` (``pytest -m long tests/test_villin.py``).
"""

import math
import os
import shutil

import numpy as np
import openmm
import pytest
from openmm import unit

from openmm_nnbias.cli import main
from openmm_nnbias.io import read_colvar
from openmm_nnbias.recipes import get_recipe, get_system
from openmm_nnbias.systems.villin import VILLIN_PDB

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "villin.yaml")
SHORT = ["--steps", "20", "--stride", "20", "--sample-stride", "10", "--no-progress"]


@pytest.fixture(scope="module")
def system_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("villin") / "sys"
    assert main(["deepves", "--system", "villin", "--out", str(out)] + SHORT) == 0
    return out


def test_system_force_field_box_and_cvs():
    built = get_system("villin")
    system, top = built.system, built.topology
    assert top.getNumAtoms() == 8867 and built.name == "villin" and len(built.ca) == 35
    forces = {type(f).__name__: f for f in system.getForces()}
    nb = forces["NonbondedForce"]
    assert nb.getNonbondedMethod() == openmm.NonbondedForce.PME
    assert math.isclose(nb.getCutoffDistance().value_in_unit(unit.nanometer), 0.9)
    assert math.isclose(forces["MonteCarloBarostat"].getDefaultPressure().value_in_unit(unit.bar), 1.0)
    n_water = sum(r.name == "HOH" for r in top.residues())
    h_protein = sum(1 for a in top.atoms() if a.element.symbol == "H" and a.residue.name != "HOH")
    assert system.getNumConstraints() == h_protein + 3 * n_water  # HBonds + rigid water
    recipe = get_recipe("villin")
    cvs = recipe.buildCVs(built)
    assert cvs.names == ["rg_ca", "rmsd_ca"] and recipe.backend == "torch" and recipe.options["stride"] == 500
    import torch

    values = cvs(torch.tensor(np.asarray(built.positions.value_in_unit(unit.nanometer))))
    assert values[0] == pytest.approx(0.8965, abs=1e-3) and abs(float(values[1])) < 1e-6  # RMSD to itself
    assert all(lo <= float(v) <= hi for v, lo, hi in zip(values, cvs.lower, cvs.upper))
    with pytest.raises(ValueError, match="cutoff must be > 0 nm and at most half the shortest box width"):
        get_system("villin", cutoff=2.5)


def test_cli_smoke_run(system_run):
    for name in ("colvar", "ves.log", "fes_bias.dat", "bias.pt", "checkpoint.pt"):
        assert (system_run / name).exists(), name
    colvar = read_colvar(str(system_run / "colvar"))
    assert list(colvar)[:3] == ["time", "rg_ca", "rmsd_ca"] and len(colvar["time"]) == 2
    assert len([ln for ln in open(system_run / "ves.log") if not ln.startswith("#")]) == 1


def test_input_file_example_is_the_same_run(system_run, tmp_path):
    """examples/villin.yaml (new CV types) gives the System, CVs and trajectory of --system villin."""
    shutil.copy(EXAMPLE, tmp_path / "villin.yaml")
    shutil.copy(VILLIN_PDB, tmp_path / "villin.pdb")
    out = tmp_path / "inp"
    assert main(["deepves", "--input", str(tmp_path / "villin.yaml"), "--out", str(out)] + SHORT) == 0
    a, b = read_colvar(str(system_run / "colvar")), read_colvar(str(out / "colvar"))
    assert list(a) == list(b)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-6, err_msg=key)


def test_example_file_keys():
    import yaml

    from openmm_nnbias.runners.inputfile import parse_input

    spec = parse_input(yaml.safe_load(open(EXAMPLE)), os.path.dirname(EXAMPLE), check_files=False)  # no villin.pdb
    assert [c["type"] for c in spec.cvs] == ["radius_of_gyration", "rmsd"]
    assert spec.steps == 1000 and spec.deepves["backend"] == "torch" and spec.deepves["target"] == "well-tempered"
    assert spec.state["pressure"] == 1.0 and spec.system["cutoff"] == 0.9


@pytest.mark.long
def test_two_ps_run(tmp_path):
    """The issue's run: ``openmm-nnbias deepves --system villin --time 2ps`` (1 000 steps, 2 iterations, ~2 min)."""
    out = tmp_path / "v2ps"
    assert main(["deepves", "--system", "villin", "--time", "2ps", "--out", str(out), "--no-progress"]) == 0
    log = [ln.split() for ln in open(out / "ves.log") if not ln.startswith("#")]
    assert len(log) == 2 and (out / "bias.pt").exists()
    colvar = read_colvar(str(out / "colvar"))
    assert len(colvar["time"]) == 100 and colvar["time"][-1] == pytest.approx(2.0)
