"""Force CVs (ForceCV: cvpack CVs, any OpenMM force) and the cvforce backend (CustomCVForce + table)."""

import copy
import math

import numpy as np
import openmm as mm
import pytest
import torch
from openmm import app, unit

from openmm_nnbias.bias import NeuralBias, NeuralBiasForce, load_bias
from openmm_nnbias.cvs import CVSet, ForceCV, RadiusOfGyration, Torsion
from openmm_nnbias.ves import DeepVESUpdater, ExecutionOptions, ScheduleOptions, WellTempered

cvpack = pytest.importorskip("cvpack")

RG_RANGE = (0.15, 0.35)  # nm, alanine dipeptide's heavy atoms


def _heavy(pep):
    return [a.index for a in pep.topology.atoms() if a.element.symbol != "H"]


def _cvpack_rg(pep, name="rg"):
    return CVSet([ForceCV(cvpack.RadiusOfGyration(_heavy(pep)), *RG_RANGE, name=name)])


def _package_rg(pep, name="rg"):
    return CVSet([RadiusOfGyration(_heavy(pep), names=name, lower=RG_RANGE[0], upper=RG_RANGE[1])])


def _scaled_bias(cvs, span=30.0, seed=3):
    bias = NeuralBias.from_cvs(cvs, seed=seed, zero_output=False, activation="tanh")
    s = torch.linspace(RG_RANGE[0], RG_RANGE[1], 500, dtype=torch.float64).unsqueeze(-1)
    with torch.no_grad():
        v = bias(s)
        bias.layers[-1].weight.mul_(span / float(v.max() - v.min()))
    return bias


def _context(pep, nnforce, system=None):
    system = system or copy.deepcopy(pep.system)
    if nnforce is not None:
        nnforce.addToSystem(system)
    ctx = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    ctx.setPositions(pep.positions)
    return ctx


def _energy_forces(ctx, x, group):
    ctx.setPositions(x)
    st = ctx.getState(getEnergy=True, getForces=True, groups={group})
    return (st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))


def _frames(pep, n=4, seed=0):
    rng = np.random.default_rng(seed)
    x0 = np.asarray(pep.positions.value_in_unit(unit.nanometer))
    return [x0 + 0.02 * rng.standard_normal(x0.shape) for _ in range(n)]


def test_cvpack_rg_energies_forces_match_package_rg_and_finite_differences(dipeptide):
    """cvforce (cvpack RadiusOfGyration in a CustomCVForce, network tabulated) = torch backend (the package's
    RadiusOfGyration, exact network) within the table's interpolation error; forces = −∇E."""
    bias = _scaled_bias(_package_rg(dipeptide))
    exact = NeuralBiasForce(_package_rg(dipeptide), bias, backend="torch")
    tab = NeuralBiasForce(_cvpack_rg(dipeptide), copy.deepcopy(bias), gridBins=2048)
    assert tab.backend.name == "cvforce"  # chosen automatically for Force CVs
    ctx_exact, ctx_tab = _context(dipeptide, exact), _context(dipeptide, tab)
    for x in _frames(dipeptide):
        e0, f0 = _energy_forces(ctx_exact, x, exact.forceGroup)
        e1, f1 = _energy_forces(ctx_tab, x, tab.forceGroup)
        assert abs(e1 - e0) < 1e-4 and abs(e0) > 1e-2
        np.testing.assert_allclose(f1, f0, atol=2e-3 * np.abs(f0).max())
        assert tab.getCollectiveVariables(ctx_tab)[0] == pytest.approx(exact.getCollectiveVariables(ctx_exact)[0],
                                                                        abs=1e-6)
    x, h = _frames(dipeptide, 1, seed=5)[0], 1e-5  # central differences of E along every coordinate of 3 atoms
    _, f = _energy_forces(ctx_tab, x, tab.forceGroup)
    for atom in _heavy(dipeptide)[:3]:
        for k in range(3):
            xp, xm = x.copy(), x.copy()
            xp[atom, k] += h
            xm[atom, k] -= h
            de = (_energy_forces(ctx_tab, xp, tab.forceGroup)[0] - _energy_forces(ctx_tab, xm, tab.forceGroup)[0]) / (2 * h)
            assert -de == pytest.approx(f[atom, k], rel=1e-3, abs=1e-3)


def test_system_xml_round_trip_and_live_updates(dipeptide):
    cvs = _cvpack_rg(dipeptide)
    nnforce = NeuralBiasForce(cvs, _scaled_bias(cvs), gridBins=512)
    system = copy.deepcopy(dipeptide.system)
    nnforce.addToSystem(system)
    copy_ = mm.XmlSerializer.deserialize(mm.XmlSerializer.serialize(system))
    ctx, ctx_copy = _context(dipeptide, None, system), _context(dipeptide, None, copy_)
    x = _frames(dipeptide, 1)[0]
    e, f = _energy_forces(ctx, x, nnforce.forceGroup)
    e2, f2 = _energy_forces(ctx_copy, x, nnforce.forceGroup)
    assert e2 == pytest.approx(e, abs=1e-9) and abs(e) > 1e-2
    np.testing.assert_allclose(f2, f, atol=1e-9)
    with torch.no_grad():
        nnforce.bias.layers[-1].bias.add_(1.0)
    nnforce.updateWeights(ctx)  # the running Context sees the new network
    assert _energy_forces(ctx, x, nnforce.forceGroup)[0] == pytest.approx(e + 1.0, abs=1e-6)
    with pytest.raises(ValueError, match="not part of this Context"):
        nnforce.updateWeights(ctx_copy)  # another System's copy of the force


def _deepves_colvar(pep, cvs, backend, out, mode="sync", bins=None):
    torch.manual_seed(0)
    nnforce = NeuralBiasForce(cvs, NeuralBias.from_cvs(cvs, seed=1), backend=backend, gridBins=bins)
    system = copy.deepcopy(pep.system)
    nnforce.addToSystem(system)
    integrator = mm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 2 * unit.femtosecond)
    integrator.setRandomNumberSeed(7)
    sim = app.Simulation(pep.topology, system, integrator, mm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    sim.context.setPositions(pep.positions)
    sim.context.setVelocitiesToTemperature(300 * unit.kelvin, 3)
    with DeepVESUpdater(nnforce, 300 * unit.kelvin, target=WellTempered(biasFactor=5, bins=20), stride=50,
                        sampleStride=10, schedule=ScheduleOptions(learningRate=0.05), outputs=str(out),
                        execution=ExecutionOptions(mode=mode)) as updater:
        sim.reporters.append(updater)
        sim.step(400)
    with open(out / "colvar") as fh:
        header = [line for line in fh if line.startswith("#!")]
    return np.loadtxt(out / "colvar"), header, updater


@pytest.mark.parametrize("mode", ["sync", "thread"])
def test_deepves_with_cvpack_rg_matches_package_rg(dipeptide, tmp_path, mode):
    """Acceptance: a short Deep-VES run biasing cvpack's RadiusOfGyration (cvforce backend, values read from
    the Context) writes the colvar (CVs, V, V − c) of the same run with the package's RadiusOfGyration."""
    ref, ref_header, _ = _deepves_colvar(dipeptide, _package_rg(dipeptide), "torch", tmp_path / "torch", mode)
    got, header, updater = _deepves_colvar(dipeptide, _cvpack_rg(dipeptide), None, tmp_path / "cvforce", mode, 2048)
    assert updater.force.backend.name == "cvforce" and header == ref_header
    assert "#! SET units_rg nm\n" in header
    assert got.shape == ref.shape == (40, 4)
    assert np.abs(ref[:, 3]).max() > 0.05  # the bias has grown: its forces steered both runs
    # time, Rg and V − c(t); V's own additive constant is a free direction of Ω, which Adam moves by float32
    # round-off (its steps are ~lr whatever the gradient's size), so it differs between the two runs (0.01-0.04 here)
    np.testing.assert_allclose(got[:, [0, 1, 3]], ref[:, [0, 1, 3]], atol=2e-5)
    assert updater.getFreeEnergyFromBias().shape == (20,)
    assert (tmp_path / "cvforce" / "bias.pt").exists()


def test_force_cv_bias_file_holds_v_of_s(dipeptide, tmp_path):
    cvs = _cvpack_rg(dipeptide)
    bias = _scaled_bias(cvs)
    NeuralBiasForce(cvs, bias).exportBias(str(tmp_path / "bias.pt"))
    module = torch.jit.load(str(tmp_path / "bias.pt"))
    s = torch.tensor([[0.2], [0.3]], dtype=torch.float64)
    np.testing.assert_allclose(module.bias_from_cvs(s).numpy(), bias(s).detach().numpy())
    assert module.cv_names == ["rg"]
    with pytest.raises(ValueError, match="holds V\\(s\\) of Force CVs"):
        load_bias(str(tmp_path / "bias.pt"))


def test_force_cv_errors(dipeptide):
    rg = cvpack.RadiusOfGyration(_heavy(dipeptide))
    with pytest.raises(TypeError, match="wrap it as openmm_nnbias.cvs.ForceCV"):
        CVSet([rg])  # before: ValueError "CVSet takes CollectiveVariable modules"
    with pytest.raises(ValueError, match="cannot mix Force CVs"):
        CVSet([ForceCV(rg, *RG_RANGE), Torsion(dipeptide.torsions["phi"], "phi")])
    with pytest.raises(TypeError, match="force must be an openmm.Force"):
        ForceCV("rg", 0.0, 1.0)
    with pytest.raises(ValueError, match="lower < upper"):
        ForceCV(rg, 1.0, 0.5)
    phi = ForceCV(cvpack.Torsion(*dipeptide.torsions["phi"]), -math.pi, math.pi, name="phi")
    assert phi.periodic and phi.unit == "rad" and ForceCV(rg, *RG_RANGE).names == ["radius_of_gyration"]
    four = CVSet([ForceCV(cvpack.RadiusOfGyration(_heavy(dipeptide)[i:]), *RG_RANGE, name=f"rg{i}") for i in range(4)])
    with pytest.raises(ValueError, match="at most 3 Force CVs"):
        NeuralBiasForce(four, NeuralBias.from_cvs(four))
    cvs = _cvpack_rg(dipeptide)
    for backend in ("torch", "table"):
        with pytest.raises(ValueError, match="backend='cvforce'"):
            NeuralBiasForce(cvs, NeuralBias.from_cvs(cvs), backend=backend)
    with pytest.raises(ValueError, match="all CVs periodic or all non-periodic"):
        mixed = CVSet([phi, ForceCV(rg, *RG_RANGE)])
        NeuralBiasForce(mixed, NeuralBias.from_cvs(mixed))
    with pytest.raises(ValueError, match="cvforce backend takes a CVSet of Force CVs"):
        own = _package_rg(dipeptide)
        NeuralBiasForce(own, NeuralBias.from_cvs(own), backend="cvforce")
    with pytest.raises(ValueError, match="read their values from a Context"):
        cvs(torch.zeros(22, 3, dtype=torch.float64))
    nnforce = NeuralBiasForce(cvs, NeuralBias.from_cvs(cvs))
    with pytest.raises(ValueError, match="execution mode 'process' does not take Force CVs"):
        DeepVESUpdater(nnforce, 300.0, stride=10, execution=ExecutionOptions(mode="process"))
