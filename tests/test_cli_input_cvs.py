"""The group (protein) CV types of the input file: each builds the CV of its class, and each bad key is one error."""

import copy

import numpy as np
import pytest
import torch
import yaml
from openmm import app, unit

from openmm_nnbias.cli import main
from openmm_nnbias.cvs import CentroidDistance, HelixTorsionContent, NumberOfContacts, PathCV, RadiusOfGyration, RMSD
from openmm_nnbias.io import read_colvar
from openmm_nnbias.systems import alanine_dipeptide
from openmm_nnbias.runners.inputfile import read_input
from openmm_nnbias.runners.userinput import build_cvs, load_system


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """ala.pdb; moved.pdb (the same, displaced); path.pdb (two models: ala and moved); heavy.pdb (heavy atoms only)."""
    d = tmp_path_factory.mktemp("group_inputs")
    pep = alanine_dipeptide()
    x = np.asarray(pep.positions.value_in_unit(unit.nanometer))
    moved = x + np.random.default_rng(3).normal(scale=0.03, size=x.shape)
    for name, pos in (("ala.pdb", x), ("moved.pdb", moved)):
        with open(d / name, "w") as fh:
            app.PDBFile.writeFile(pep.topology, pos * unit.nanometer, fh)
    with open(d / "path.pdb", "w") as fh:
        app.PDBFile.writeHeader(pep.topology, fh)
        for k, pos in enumerate((x, moved)):
            app.PDBFile.writeModel(pep.topology, pos * unit.nanometer, fh, modelIndex=k + 1)
        app.PDBFile.writeFooter(pep.topology, fh)
    heavy = [a.index for a in pep.topology.atoms() if a.element.symbol != "H"]
    x, moved = (np.asarray(app.PDBFile(str(d / n)).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
                for n in ("ala.pdb", "moved.pdb"))  # as read back: PDB files hold 1e-4 nm
    mod = app.Modeller(pep.topology, pep.positions)
    mod.delete([a for a in mod.topology.atoms() if a.element.symbol == "H"])
    with open(d / "heavy.pdb", "w") as fh:
        app.PDBFile.writeFile(mod.topology, mod.positions, fh)
    return d, x, moved, heavy


BASE = {
    "system": {"pdb": "ala.pdb", "forcefield": ["amber99sbildn.xml"]},
    "cvs": [{"type": "radius_of_gyration", "name": "rg", "atoms": "not element H", "lower": 0.1, "upper": "5 A"},
            {"type": "path", "name": "p", "atoms": "not element H", "frames": "path.pdb", "lam": 200.0,
             "zUpper": 0.1}],
    "state": {"platform": "CPU"},
    "deepves": {"stride": 100, "bins": 8, "hidden": [8, 8], "fesInterval": 1, "checkpointInterval": 1},
    "run": {"steps": 200, "out": "run"},
}


def write(folder, content, name="run.yaml"):
    (folder / name).write_text(yaml.safe_dump(content))
    return str(folder / name)


def built(folder, cvs):
    spec = read_input(write(folder, dict(BASE, cvs=cvs), "cvs.yaml"))
    loaded = load_system(spec.system)
    return build_cvs(spec.cvs, loaded.topology, loaded.system.getNumParticles(), loaded.positions, loaded.system), spec


def test_each_type_builds_its_class(files):
    d, x, moved, heavy = files
    pep = alanine_dipeptide()
    masses = [pep.system.getParticleMass(i).value_in_unit(unit.dalton) for i in heavy]
    cvs, spec = built(d, [
        {"type": "radius_of_gyration", "name": "rg", "atoms": "not element H", "weights": "masses",
         "lower": 0.1, "upper": 0.5},
        {"type": "rmsd", "name": "r0", "atoms": {"indices": heavy}, "lower": 0, "upper": 1},  # start = reference
        {"type": "rmsd", "name": "r1", "atoms": "not element H", "reference": "heavy.pdb", "align": False,
         "lower": 0, "upper": 1},
        {"type": "number_of_contacts", "name": "q", "groupA": "not element H", "r0": "4 A", "reference": "moved.pdb",
         "referenceCutoff": 0.45, "normalize": True},
        {"type": "centroid_distance", "name": "d", "groupA": {"indices": [0, 1, 2, 3]}, "groupB": "resid 2",
         "lower": 0, "upper": 1.2},
        {"type": "helix_torsion_content", "name": "h", "residues": "all", "tolerance": "30 deg", "normalize": True},
        {"type": "path", "name": "p", "atoms": "not element H", "frames": ["path.pdb"], "lam": 200, "zUpper": 0.1}])
    assert cvs.names == ["rg", "r0", "r1", "q", "d", "h", "p_s", "p_z"] and spec.deepves["backend"] == "torch"
    assert spec.deepves["target"] == "monte-carlo"  # 8 CV columns
    resid2 = [a.index for a in pep.topology.atoms() if a.residue.index == 2]
    expected = [RadiusOfGyration(heavy, weights=masses), RMSD(heavy, x), RMSD(heavy, x[heavy], align=False),
                NumberOfContacts(heavy, r0=0.4, reference=moved, referenceCutoff=0.45, normalize=True),
                CentroidDistance([0, 1, 2, 3], resid2),
                HelixTorsionContent(list(pep.topology.residues()), tolerance=np.pi / 6, normalize=True),
                PathCV(heavy, [x, moved], lam=200.0)]
    y = torch.tensor(moved)
    want = torch.cat([cv(y) for cv in expected])
    torch.testing.assert_close(cvs(y), want, rtol=1e-12, atol=1e-12)
    assert cvs.lower[:2] == [0.1, 0.0] and cvs.upper[0] == 0.5 and cvs.upper[3] == 1.0  # normalized Q: [0, 1]


def test_group_cvs_run_end_to_end(files):
    d = files[0]
    assert main(["deepves", "--input", write(d, BASE), "--no-progress"]) == 0
    colvar = read_colvar(str(d / "run" / "colvar"))
    assert list(colvar)[:4] == ["time", "rg", "p_s", "p_z"] and (d / "run" / "bias.pt").exists()


def _cv(**changes):
    cv = {"type": "rmsd", "name": "r", "atoms": "not element H", "lower": 0.0, "upper": 1.0}
    cv.update(changes)
    return {k: v for k, v in cv.items() if v is not ...}


PATH = {"type": "path", "name": "p", "atoms": "not element H", "frames": "path.pdb", "lam": 200.0, "zUpper": 0.1}


@pytest.mark.parametrize("cv, message", [
    (_cv(reference="x.pdb"), "cvs[0].reference: file 'x.pdb' not found"),
    (_cv(atom="name CA"), "unknown key 'cvs[0].atom' for a rmsd CV (did you mean 'atoms'?"),
    (_cv(type="rmsdd"), "cvs[0].type must be one of ['torsion', 'distance', 'angle', 'position', 'radius_of_gyration'"),
    (_cv(upper=...), "cvs[0] (rmsd) needs lower and upper (nm)"),
    (_cv(lower=1.0), "cvs[0]: lower must be < upper, got [1, 1]"),
    (_cv(atoms=5), "cvs[0].atoms must be an mdtraj selection string or {indices: [0-based atom indices]}"),
    (_cv(atoms={"index": [1, 2]}), "unknown key 'cvs[0].atoms.index' (did you mean 'indices'?"),
    (_cv(atoms="name XX"), "cvs[0].atoms: selection 'name XX' picks no atom"),
    (_cv(atoms="name and"), "cvs[0].atoms: bad mdtraj selection 'name and'"),
    (_cv(atoms={"indices": [1, 99]}), "cvs[0].atoms: atom index 99 but the system has 22 atoms"),
    (_cv(atoms={"indices": [1, 1, 2]}), "cvs[0].atoms: repeated atom in [1, 1, 2]"),
    (_cv(atoms={"indices": [1]}), "cvs[0] (rmsd): atoms: need at least 2 atoms, got 1"),
    (_cv(align="yes"), "cvs[0].align must be true or false, got 'yes'"),
    (_cv(reference="heavy.pdb", atoms="all"), "cvs[0].reference: "),  # 10 atoms: neither 22 nor one per CV atom
    (_cv(type="radius_of_gyration", weights="heavy"), "cvs[0].weights must be 'masses' or a non-empty list of numbers"),
    (_cv(type="radius_of_gyration", weights=[1.0, 2.0]), "cvs[0] (radius_of_gyration): weights: 2 weights for 10 atoms"),
    (_cv(type="radius_of_gyration", weights=[1.0, -2.0]), "cvs[0].weights must be finite numbers > 0"),
    ({"type": "number_of_contacts", "name": "n", "groupA": "all", "nn": 6, "mm": 6}, "cvs[0].nn and cvs[0].mm must differ"),
    ({"type": "number_of_contacts", "name": "n", "groupA": "all", "referenceCutoff": 0.4},
     "cvs[0].referenceCutoff needs cvs[0].reference"),
    ({"type": "number_of_contacts", "name": "n", "groupA": "all", "r0": -1}, "cvs[0].r0 must be a finite number > 0 nm"),
    ({"type": "number_of_contacts", "name": "n"}, "cvs[0] needs the key 'groupA'"),
    ({"type": "centroid_distance", "name": "c", "groupA": "resid 0", "lower": 0, "upper": 1}, "cvs[0] needs the key 'groupB'"),
    ({"type": "helix_torsion_content", "name": "h", "residues": {"indices": [0, 2]}},
     "cvs[0] (helix_torsion_content): residues: need at least 3 contiguous residues"),
    ({"type": "helix_torsion_content", "name": "h", "residues": {"indices": [0, 1, 7]}},
     "cvs[0].residues: residue index 7 but the topology has 3 residues"),
    ({"type": "helix_torsion_content", "name": "h", "residues": "all", "tolerance": "30 C"},
     "cannot read cvs[0].tolerance '30 C'"),
    (dict(PATH, frames="none.pdb"), "cvs[0].frames: file 'none.pdb' not found"),
    (dict(PATH, frames="ala.pdb"), "cvs[0].frames: a path needs at least 2 frames, got 1"),
    (dict(PATH, frames=[1, 2]), "cvs[0].frames must be a PDB file (several models) or a list of PDB files"),
    ({k: v for k, v in PATH.items() if k != "lam"}, "cvs[0] needs the key 'lam'"),
    ({k: v for k, v in PATH.items() if k != "zUpper"}, "cvs[0] (path) needs zUpper (nm^2)"),
    (dict(PATH, lower=0.0), "unknown key 'cvs[0].lower' for a path CV"),
])
def test_each_bad_key_is_one_clear_error(files, capsys, cv, message):
    d = files[0]
    content = copy.deepcopy(BASE)
    content["cvs"] = [cv]
    content["run"]["out"] = "never"
    assert main(["deepves", "--input", write(d, content, "bad.yaml"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (d / "never").exists()


def test_names_backend_and_reference_size_errors(files, capsys):
    d = files[0]
    for changes, message in [
        ({"cvs": [PATH, _cv(name="p_s")]}, "cvs: names must be unique, 'p_s' is used twice"),
        ({"deepves": {"backend": "table"}}, "deepves.backend: a radius_of_gyration CV needs the torch backend, got 'table'"),
        ({"cvs": [_cv(reference="heavy.pdb", atoms="all")]},
         "has 10 atoms; it needs every atom of the System (22) or one per CV atom (22)"),
    ]:
        content = dict(copy.deepcopy(BASE), **changes)
        content["run"] = {"steps": 10, "out": "never"}
        assert main(["deepves", "--input", write(d, content, "bad2.yaml"), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert not (d / "never").exists()


FORCE = {"type": "force", "name": "rg", "cvpack": "RadiusOfGyration", "args": {"group": [4, 6, 8, 14, 16]},
         "lower": 0.1, "upper": 0.5}


def test_force_cvs_from_cvpack_and_xml_run(files):
    pytest.importorskip("openmm_nnbias.cvs.force_cv", reason="ForceCV (openmm_nnbias/cvs/force_cv.py) not there")
    cvpack = pytest.importorskip("cvpack")
    import openmm as mm

    d = files[0]
    (d / "dist.xml").write_text(mm.XmlSerializer.serialize(cvpack.Distance(4, 16)))
    content = dict(copy.deepcopy(BASE), cvs=[FORCE, {"type": "force", "name": "d", "xml": "dist.xml", "lower": 0.1,
                                                     "upper": 1.0, "unit": "nm"}])
    content["run"] = {"steps": 200, "out": "force_run"}
    spec = read_input(write(d, content, "force.yaml"))
    assert spec.deepves["backend"] == "cvforce"
    loaded = load_system(spec.system)
    cvs = build_cvs(spec.cvs, loaded.topology, 22, loaded.positions, loaded.system)
    assert cvs.names == ["rg", "d"] and cvs.units == ["nm", "nm"] and cvs.periodic == [False, False]
    assert main(["deepves", "--input", str(d / "force.yaml"), "--no-progress"]) == 0
    colvar = read_colvar(str(d / "force_run" / "colvar"))
    assert list(colvar)[:3] == ["time", "rg", "d"] and 0.1 < colvar["d"][0] < 1.0


@pytest.mark.parametrize("cv, message", [
    (dict(FORCE, xml="f.xml"), "cvs[0] (force) needs exactly one of 'xml' (a serialized Force) and 'cvpack'"),
    ({k: v for k, v in FORCE.items() if k != "upper"}, "cvs[0] needs the key 'upper'"),
    (dict(FORCE, cvpack="RadiusOfGyraton"), "cvs[0].cvpack: no cvpack CV named 'RadiusOfGyraton' (did you mean 'RadiusOfGyration'?)"),
    (dict(FORCE, args={"grp": [1, 2]}), "cvs[0].args: cvpack.RadiusOfGyration(grp) failed"),
    (dict(FORCE, args=[1, 2]), "cvs[0].args must be a mapping of keyword arguments"),
    (dict(FORCE, periodic="no"), "cvs[0].periodic must be true or false"),
    ({"type": "force", "name": "x", "xml": "missing.xml", "lower": 0, "upper": 1}, "cvs[0].xml: file 'missing.xml' not found"),
    ({"type": "force", "name": "x", "xml": "ala.pdb", "lower": 0, "upper": 1}, "cvs[0].xml: cannot read"),
])
def test_force_cv_errors(files, capsys, cv, message):
    pytest.importorskip("openmm_nnbias.cvs.force_cv", reason="ForceCV (openmm_nnbias/cvs/force_cv.py) not there")
    pytest.importorskip("cvpack")
    d = files[0]
    content = dict(copy.deepcopy(BASE), cvs=[cv])
    content["run"] = {"steps": 10, "out": "never"}
    assert main(["deepves", "--input", write(d, content, "badforce.yaml"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (d / "never").exists()


def test_force_cvs_take_no_other_kind_and_their_backend(files, capsys):
    d = files[0]
    for cvs, deepves, message in [
        ([FORCE, {"type": "torsion", "name": "phi", "atoms": {"phi": 1}}], {}, "cvs: force CVs take no other kind of CV "
                                                                               "(cvs[1] is a torsion)"),
        ([FORCE], {"backend": "torch"}, "deepves.backend: force CVs need the cvforce backend, got 'torch'"),
        ([{"type": "torsion", "name": "phi", "atoms": {"phi": 1}}], {"backend": "cvforce"},
         "deepves.backend: the cvforce backend takes force CVs only"),
    ]:
        content = dict(copy.deepcopy(BASE), cvs=cvs, deepves=deepves, run={"steps": 10, "out": "never"})
        assert main(["deepves", "--input", write(d, content, "badforce2.yaml"), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
