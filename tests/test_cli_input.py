"""``openmm-nnbias deepves --input run.yaml``: your own system end to end, and one clear error per bad key."""

import copy
import os

import openmm as mm
import pytest
import yaml
from openmm import app, unit

from openmm_nnbias.cli import _parser, main
from openmm_nnbias.cli.deepves import _deepves_input, _flag_values
from openmm_nnbias.io import read_colvar, read_grid_file
from openmm_nnbias.systems import alanine_dipeptide
from openmm_nnbias.runners.inputfile import read_input
from openmm_nnbias.runners.userinput import build_cvs, build_input_deepves, load_system

PHI, PSI = [4, 6, 8, 14], [6, 8, 14, 16]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """ala.pdb, system.xml (Amber99SB-ILDN, vacuum) and barostat.xml (the same with a MonteCarloBarostat)."""
    d = tmp_path_factory.mktemp("inputs")
    pep = alanine_dipeptide()
    with open(d / "ala.pdb", "w") as fh:
        app.PDBFile.writeFile(pep.topology, pep.positions, fh)
    system = app.ForceField("amber99sbildn.xml").createSystem(app.PDBFile(str(d / "ala.pdb")).topology,
                                                            constraints=app.HBonds)
    (d / "system.xml").write_text(mm.XmlSerializer.serialize(system))
    system.addForce(mm.MonteCarloBarostat(1 * unit.bar, 300 * unit.kelvin))
    (d / "barostat.xml").write_text(mm.XmlSerializer.serialize(system))
    return d


BASE = {
    "system": {"pdb": "ala.pdb", "forcefield": ["amber99sbildn.xml"], "constraints": "HBonds"},
    "cvs": [{"type": "torsion", "name": "phi", "atoms": {"phi": 1}},
            {"type": "torsion", "name": "psi", "atoms": "resid 1 and name N CA C or resid 2 and name N"}],
    "state": {"temperature": "300 K", "timestep": "2 fs", "friction": 1.0, "platform": "CPU"},
    "deepves": {"stride": 100, "sampleStride": 10, "bins": 20, "hidden": [8, 8], "fesInterval": 1,
                "checkpointInterval": 1},
    "run": {"steps": 300, "out": "run"},
}


def write(folder, content, name="run.yaml"):
    path = folder / name
    path.write_text(yaml.safe_dump(content))
    return str(path)


def test_pdb_forcefield_runs_end_to_end_and_restarts(files, capsys):
    path = write(files, BASE)
    assert main(["deepves", "--input", path, "--no-progress"]) == 0
    out = files / "run"
    for name in ("colvar", "ves.log", "fes_bias.dat", "bias.pt", "checkpoint.pt"):
        assert (out / name).exists(), name
    assert list(read_colvar(str(out / "colvar")))[:3] == ["time", "phi", "psi"]
    _, fes, names = read_grid_file(str(out / "fes_bias.dat"))
    assert names == ["phi", "psi"] and fes.size == 400
    assert main(["deepves", "--input", path, "--steps", "400", "--restart", "--no-progress"]) == 0
    log = [ln for ln in open(out / "ves.log") if not ln.startswith("#")]
    assert len(log) == 4  # 3 iterations, then 1 more after the restart
    assert "wrote" in capsys.readouterr().out


def test_system_xml_with_pdb_runs(files):
    content = copy.deepcopy(BASE)
    content["system"] = {"xml": "system.xml", "pdb": "ala.pdb"}
    content["cvs"] = [{"type": "torsion", "name": "phi", "atoms": {"indices": PHI}},
                      {"type": "distance", "name": "d", "atoms": "resid 0 and name C or resid 2 and name N",
                       "lower": 0.1, "upper": "10 A"}]
    content["run"] = {"time": "0.6ps", "out": "xml_run"}
    assert main(["deepves", "--input", write(files, content, "xml.yaml"), "--no-progress"]) == 0
    assert (files / "xml_run" / "fes_bias.dat").exists() and (files / "xml_run" / "bias.pt").exists()
    assert list(read_colvar(str(files / "xml_run" / "colvar")))[1:3] == ["phi", "d"]


def test_selections_equal_indices(files):
    pdb = app.PDBFile(str(files / "ala.pdb"))
    by_selection = [{"type": "torsion", "name": "phi", "atoms": "(resid 0 and name C) or (resid 1 and name N CA C)",
                     "lower": None, "upper": None},
                    {"type": "torsion", "name": "psi", "atoms": {"psi": 1}, "lower": None, "upper": None},
                    {"type": "angle", "name": "a", "atoms": ["resid 1 and name C", "resid 1 and name CA",
                                                             "resid 1 and name N"], "lower": 0.0, "upper": 3.2}]
    by_index = [dict(by_selection[0], atoms={"indices": PHI}), dict(by_selection[1], atoms={"indices": PSI}),
                dict(by_selection[2], atoms={"indices": [14, 8, 6]})]  # a list of selections keeps its order
    a, b = build_cvs(by_selection, pdb.topology, 22), build_cvs(by_index, pdb.topology, 22)
    assert [s.atoms.tolist() for s in a.sources] == [s.atoms.tolist() for s in b.sources]
    assert a.sources[0].atoms.tolist() == [PHI] and a.names == ["phi", "psi", "a"]


def test_flags_override_the_file(files):
    path = write(files, BASE, "override.yaml")
    args = _parser().parse_args(["deepves", "--input", path, "--temperature", "310", "--timestep", "1",
                                 "--bins", "16", "--hidden", "4,4", "--learning-rate", "0.01", "--time", "1ps",
                                 "--out", str(files / "elsewhere"), "--fes-interval", "3",
                                 "--output-learning-rate-scale", "10"])
    spec, steps = _deepves_input(args, _flag_values(args))
    assert steps == 1000 and spec.out == str(files / "elsewhere")
    assert spec.deepves["bins"] == 16 and spec.deepves["hidden"] == [4, 4] and spec.deepves["fesInterval"] == 3
    sim, updater, dt = build_input_deepves(spec, out=None)
    assert sim.integrator.getTemperature().value_in_unit(unit.kelvin) == pytest.approx(310)
    assert dt == pytest.approx(0.001) and list(updater.bias.hidden) == [4, 4]
    assert updater.optimizer.outputLearningRateScale == 10.0
    assert [g.get("lrScale", 1.0) for g in updater.optimizer.adam.param_groups] == [1.0, 10.0]


def test_embedded_system_takes_the_same_flags(tmp_path):
    out = tmp_path / "wq"
    assert main(["deepves", "--system", "wolfe-quapp", "--steps", "1000", "--out", str(out), "--no-progress",
                 "--temperature", "100", "--timestep", "4", "--bins", "30", "--hidden", "8,4",
                 "--learning-rate", "0.01", "--fes-interval", "1", "--checkpoint-interval", "1"]) == 0
    _, fes, names = read_grid_file(str(out / "fes_bias.dat"))
    assert names == ["x"] and fes.size == 30
    assert read_colvar(str(out / "colvar"))["time"][0] == pytest.approx(0.04)  # 10 samples x 4 fs


def _set(content, path, value):
    """``content`` with ``path`` ("a.b" or "cvs.0.atoms") set to ``value`` (``...``: removed)."""
    content = copy.deepcopy(content)
    *head, last = path.split(".")
    node = content
    for key in head:
        node = node[int(key)] if key.isdigit() else node[key]
    last = int(last) if last.isdigit() else last
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return content


@pytest.mark.parametrize("path, value, message", [
    ("sytem", {}, "unknown key 'sytem' (did you mean 'system'?"),
    ("state.temprature", 300, "unknown key 'state.temprature' (did you mean 'temperature'?"),
    ("cvs.0.lowr", 0.0, "unknown key 'cvs[0].lowr'"),
    ("deepves.stride", "500", "deepves.stride must be an integer, got str '500'"),
    ("deepves.stride", None, "deepves.stride must not be null"),
    ("state.temperature", [300], "state.temperature must be a number in K or a string such as '1 K', got list"),
    ("state.temperature", -300, "state.temperature must be a finite number > 0 K, got -300"),
    ("state.temperature", "300 C", "cannot read state.temperature '300 C'"),
    ("state.timestep", 0, "state.timestep must be a finite number > 0 fs, got 0"),
    ("system.pdb", "missing.pdb", "system.pdb: file 'missing.pdb' not found"),
    ("system.forcefield", ["no-such-ff.xml"], "system.forcefield: cannot read no-such-ff.xml"),
    ("system.xml", "system.xml", "the system section needs exactly one of 'xml'"),
    ("cvs.1.atoms", "resid 1 and name CA", "cvs[1].atoms: a torsion needs 4 atoms, got 1 ([8])"),
    ("cvs.1.atoms", "resid 1 and", "cvs[1].atoms: bad mdtraj selection 'resid 1 and'"),
    ("cvs.1.atoms", {"indices": [4, 6, 8]}, "cvs[1].atoms: a torsion needs 4 atoms, got 3"),
    ("cvs.1.atoms", {"indices": [4, 6, 8, 99]}, "cvs[1].atoms: atom index 99 but the system has 22 atoms"),
    ("cvs.1.atoms", [4, 6, 8, 14], "cvs[1].atoms as a list takes one selection string per atom"),
    ("cvs.1.name", "phi", "cvs: names must be unique, 'phi' is used twice"),
    ("cvs.1", {"type": "distance", "name": "d", "atoms": {"indices": [0, 1]}}, "cvs[1] (distance) needs lower and upper"),
    ("cvs.1.type", "dihedral", "cvs[1].type must be one of ['torsion', 'distance', 'angle', 'position', "
                               "'radius_of_gyration', 'rmsd', 'number_of_contacts', 'centroid_distance', "
                               "'helix_torsion_content', 'path', 'force']"),
    ("run.steps", ..., "run needs exactly one of 'time'"),
    ("run.steps", 0, "run.steps must be >= 1, got 0"),
    ("run", {"time": "10 parsecs", "out": "run"}, "cannot read run.time '10 parsecs'"),
    ("run.out", ..., "run.out (the output folder) is missing"),
    ("deepves.target", "flat", "deepves.target must be one of ['well-tempered', 'uniform', 'monte-carlo']"),
    ("deepves.hidden", [8, 0], "deepves.hidden entries must be >= 1"),
    ("deepves.biasFactor", 0.5, "deepves.biasFactor must be > 1"),
    ("state.pressure", 1.0, "state.pressure needs a periodic System"),
    ("system", {"xml": "barostat.xml", "pdb": "ala.pdb"}, None),  # state.pressure set below: conflict
    ("system", {"prmtop": "ala.prmtop"}, "system.prmtop needs system.inpcrd (positions)"),
    ("system", {"prmtop": "ala.prmtop", "inpcrd": "ala.inpcrd"}, "system.prmtop: file 'ala.prmtop' not found"),
    ("system", {"xml": "system.xml", "pdb": "ala.pdb", "cutoff": 1.0}, "system.cutoff does not apply to a system given by 'xml'"),
])
def test_each_bad_key_is_one_clear_error(files, capsys, path, value, message):
    content = _set(BASE, path, value)
    content["run"] = dict(content.get("run", {}), **({"out": "never"} if "out" in content.get("run", {}) else {}))
    if message is None:
        content["state"]["pressure"] = 1.0
        message = "state.pressure is 1 bar but " + str(files / "barostat.xml") + " already has a MonteCarloBarostat at 1 bar"
    assert main(["deepves", "--input", write(files, content, "bad.yaml"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (files / "never").exists()


def test_bad_flags_and_files(files, capsys, tmp_path):
    path = write(files, _set(BASE, "run.out", "never"), "flags.yaml")
    for args, message in [(["--temperature", "-5"], "--temperature must be a finite number > 0 K, got -5"),
                          (["--hidden", "8,x"], "--hidden takes comma-separated integers"),
                          (["--stride", "0"], "--stride must be >= 1, got 0"),
                          (["--mc-points", "100"], "--mc-points applies to --system alanine-tetrapeptide only"),
                          (["--restart"], "--restart: checkpoint"),
                          (["--input", str(tmp_path / "nothing.yaml")], "--input file")]:
        assert main(["deepves", "--input", path, "--no-progress"] + args) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    (tmp_path / "broken.yaml").write_text("system: [unclosed\n")
    assert main(["deepves", "--input", str(tmp_path / "broken.yaml")]) == 2
    assert "not valid YAML at line" in capsys.readouterr().err
    assert main(["deepves", "--steps", "10", "--out", str(tmp_path / "x")]) == 2
    assert "deepves needs --system NAME or --input FILE" in capsys.readouterr().err
    assert not (files / "never").exists() and not (tmp_path / "x").exists()


def test_state_file_and_system_loading(files, tmp_path):
    """system.xml + a serialized State (no PDB): positions from the State, CVs by indices only."""
    pdb = app.PDBFile(str(files / "ala.pdb"))
    system = mm.XmlSerializer.deserialize((files / "system.xml").read_text())
    context = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    context.setPositions(pdb.positions)
    context.setVelocitiesToTemperature(300)
    (tmp_path / "state.xml").write_text(mm.XmlSerializer.serialize(context.getState(getPositions=True, getVelocities=True)))
    loaded = load_system({"form": "xml", "xml": str(files / "system.xml"), "pdb": None, "state": str(tmp_path / "state.xml")})
    assert loaded.topology is None and len(loaded.positions) == 22 and loaded.velocities is not None
    content = _set(BASE, "system", {"xml": str(files / "system.xml"), "state": "state.xml"})
    spec = read_input(write(tmp_path, content))
    with pytest.raises(ValueError, match=r"cvs\[0\].atoms: a selection needs a topology"):
        build_input_deepves(spec)


def test_version_and_help_show_units(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and "openmm-nnbias 0.1.0" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["deepves", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for part in ("temperature in K (default 300 K", "MD time step in fs (default 2 fs", "--input",
                 "in iterations (default", "(default 0.001)", "MD steps per iteration (default 500; alanine-dipeptide 100"):
        assert part in text, part


def test_readme_example_is_valid(files, tmp_path):
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    block = readme.split("A worked example")[1].split("```yaml")[1].split("```")[0]
    (tmp_path / "ala.pdb").write_text((files / "ala.pdb").read_text())
    (tmp_path / "run.yaml").write_text(block)
    spec = read_input(str(tmp_path / "run.yaml"))
    assert spec.steps == 10_000_000 and spec.deepves["backend"] == "torch" and spec.out == str(tmp_path / "run")
    loaded = load_system(spec.system)
    cvs = build_cvs(spec.cvs, loaded.topology, loaded.system.getNumParticles())
    assert cvs.names == ["phi", "psi", "d"] and [s.atoms.tolist() for s in cvs.sources][:2] == [[PHI], [PSI]]


def test_pressure_and_barostat_rules():
    from openmm_nnbias.runners.userinput import check_barostat

    def periodic(barostat=False):
        system = mm.System()
        system.addParticle(1.0)
        system.setDefaultPeriodicBoxVectors(mm.Vec3(3, 0, 0), mm.Vec3(0, 3, 0), mm.Vec3(0, 0, 3))
        nb = mm.NonbondedForce()
        nb.setNonbondedMethod(mm.NonbondedForce.PME)
        nb.addParticle(0.0, 0.3, 0.5)
        system.addForce(nb)
        if barostat:
            system.addForce(mm.MonteCarloBarostat(2 * unit.bar, 300 * unit.kelvin))
        return system

    state = {"temperature": 300.0, "pressure": 1.0, "pressure_given": True}
    system = periodic()
    check_barostat(system, state)  # NPT: a barostat at 1 bar is added
    assert system.getForce(1).getDefaultPressure().value_in_unit(unit.bar) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"state.pressure is null \(NVT\) but s.xml already has a MonteCarloBarostat at 2 bar"):
        check_barostat(periodic(True), dict(state, pressure=None), "s.xml")
    system = periodic(True)
    check_barostat(system, dict(state, pressure=None, pressure_given=False))  # no key: the System's barostat stays
    assert system.getNumForces() == 2


def test_amber_prmtop_inpcrd_runs_and_has_the_force_fields_energy(files):
    parmed = pytest.importorskip("parmed", reason="ParmEd (test extra) writes the prmtop/inpcrd of this test")
    pdb = app.PDBFile(str(files / "ala.pdb"))
    ff_system = app.ForceField("amber99sbildn.xml").createSystem(pdb.topology, constraints=None)
    structure = parmed.openmm.load_topology(pdb.topology, ff_system, xyz=pdb.positions)
    structure.save(str(files / "ala.prmtop"), overwrite=True)
    structure.save(str(files / "ala.inpcrd"), overwrite=True)
    content = copy.deepcopy(BASE)
    content["system"] = {"prmtop": "ala.prmtop", "inpcrd": "ala.inpcrd", "constraints": "HBonds"}
    content["run"] = {"steps": 200, "out": "prmtop_run"}
    path = write(files, content, "prmtop.yaml")
    spec = read_input(path).system
    loaded = load_system(spec)
    assert loaded.system.getNumConstraints() == 12 and loaded.system.getNumParticles() == 22

    def energy(system):
        ctx = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
        ctx.setPositions(pdb.positions)
        return ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)

    unconstrained = load_system({**spec, "constraints": None}).system
    assert energy(unconstrained) == pytest.approx(energy(ff_system), rel=1e-4, abs=1e-2)
    assert main(["deepves", "--input", path, "--no-progress"]) == 0
    assert list(read_colvar(str(files / "prmtop_run" / "colvar")))[:3] == ["time", "phi", "psi"]
