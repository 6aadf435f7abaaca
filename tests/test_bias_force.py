"""NeuralBiasForce against the network, finite differences, live updates, serialization."""

import copy
import math

import numpy as np
import openmm as mm
import pytest
import torch
from openmm import app, unit

from openmm_nnbias.bias import NeuralBias, NeuralBiasForce, load_bias
from openmm_nnbias.cvs import CVSet, Distance, Torsion
from openmm_nnbias.platforms import get_platform

from _devices import DEFAULT_PLATFORM, DEVICES, PLATFORMS, make_context, platform_properties, require_torch_force


def _phipsi(pep):
    return CVSet([Torsion(pep.torsions["phi"], "phi"), Torsion(pep.torsions["psi"], "psi")])


def _scaled_bias(cvs, activation="relu", span=40.0, seed=3):
    """A random network whose values span ``span`` kJ/mol over the CV domain."""
    bias = NeuralBias.from_cvs(cvs, seed=seed, zero_output=False, activation=activation)
    s = torch.rand(4000, cvs.n_cvs, dtype=torch.float64) * 2 * math.pi - math.pi
    with torch.no_grad():
        v = bias(s)
        bias.layers[-1].weight.mul_(span / float(v.max() - v.min()))
    return bias


def _bias_only_system(pep):
    system = mm.System()
    for i in range(pep.system.getNumParticles()):
        system.addParticle(pep.system.getParticleMass(i))
    return system


def _energy_forces(ctx, positions, group):
    ctx.setPositions(positions)
    st = ctx.getState(getEnergy=True, getForces=True, groups={group})
    return st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole), st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)


def _network_energy_forces(cvs, bias, frames):
    x = torch.tensor(np.asarray(frames), dtype=torch.float64).requires_grad_(True)
    e = bias(cvs(x))
    (g,) = torch.autograd.grad(e.sum(), x)
    return e.detach().numpy(), -g.numpy()


@pytest.mark.parametrize("platform", PLATFORMS)
def test_torch_backend_matches_network_and_finite_differences(dipeptide, dipeptide_frames, platform):
    require_torch_force(platform)
    cvs = _phipsi(dipeptide)
    bias = _scaled_bias(cvs)
    system = _bias_only_system(dipeptide)
    nnforce = NeuralBiasForce(cvs, bias, backend="torch")
    nnforce.addToSystem(system)
    ctx = make_context(system, mm.VerletIntegrator(0.001), platform)
    e_ref, f_ref = _network_energy_forces(cvs, bias, dipeptide_frames[:5])
    for frame, e0, f0 in zip(dipeptide_frames[:5], e_ref, f_ref):
        e, f = _energy_forces(ctx, frame, nnforce.forceGroup)
        assert abs(e - e0) < 1e-9
        np.testing.assert_allclose(f, f0, rtol=1e-8, atol=1e-8)
    # forces are minus finite differences of the OpenMM energy (float64)
    frame = dipeptide_frames[2]
    _, f = _energy_forces(ctx, frame, nnforce.forceGroup)
    h = 1e-5
    for atom in dipeptide.torsions["phi"] + dipeptide.torsions["psi"][-1:]:
        for k in range(3):
            xp, xm = frame.copy(), frame.copy()
            xp[atom, k] += h
            xm[atom, k] -= h
            fd = -(_energy_forces(ctx, xp, nnforce.forceGroup)[0] - _energy_forces(ctx, xm, nnforce.forceGroup)[0]) / (2 * h)
            assert abs(fd - f[atom, k]) < 1e-4 * max(1.0, abs(fd))
    # openmm-torch passes positions with requires_grad=True: the module must not build a graph
    # (TorchScript plans for autograd otherwise, ~1.7x slower in OpenMM; benchmarks/RESULTS.md)
    x = torch.tensor(frame, dtype=torch.float64, requires_grad=True)
    energy, forces = nnforce.backend.module(x)
    assert not energy.requires_grad and not forces.requires_grad
    assert "no_grad" in nnforce.backend.module.code  # the guard is compiled into forward
    np.testing.assert_allclose(forces.numpy(), f, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_table_backend_matches_network(dipeptide, dipeptide_frames, platform):
    """Stated tolerance (128² grid, smooth 40 kJ/mol-span network): |ΔE| < 0.02 kJ/mol,
    force RMS error < 2 % of the force RMS."""
    cvs = _phipsi(dipeptide)
    bias = _scaled_bias(cvs, activation="softplus")
    system = _bias_only_system(dipeptide)
    nnforce = NeuralBiasForce(cvs, bias, backend="table", gridBins=128)
    nnforce.addToSystem(system)
    ctx = make_context(system, mm.VerletIntegrator(0.001), platform)
    e_ref, f_ref = _network_energy_forces(cvs, bias, dipeptide_frames)
    es, fs = zip(*[_energy_forces(ctx, x, nnforce.forceGroup) for x in dipeptide_frames])
    assert np.abs(np.array(es) - e_ref).max() < 0.02
    rel = np.sqrt(((np.array(fs) - f_ref) ** 2).mean() / (f_ref ** 2).mean())
    assert rel < 0.02


@pytest.mark.parametrize("platform", PLATFORMS)
def test_table_backend_nonperiodic_distance(dipeptide, dipeptide_frames, platform):
    cvs = CVSet([Distance([1, 18], 0.2, 0.8, names="d")])
    bias = NeuralBias.from_cvs(cvs, seed=5, zero_output=False, activation="tanh")
    system = _bias_only_system(dipeptide)
    nnforce = NeuralBiasForce(cvs, bias, backend="table", gridBins=400)
    nnforce.addToSystem(system)
    ctx = make_context(system, mm.VerletIntegrator(0.001), platform)
    e_ref, _ = _network_energy_forces(cvs, bias, dipeptide_frames)
    es = [_energy_forces(ctx, x, nnforce.forceGroup)[0] for x in dipeptide_frames]
    assert np.abs(np.array(es) - e_ref).max() < 1e-3


@pytest.mark.parametrize("platform", PLATFORMS)
def test_cmap_backend_matches_network(dipeptide, dipeptide_frames, platform):
    """Stated tolerance (64² CMAP, smooth 40 kJ/mol-span network): |ΔE| < 0.05 kJ/mol,
    force RMS error < 3 % of the force RMS."""
    cvs = _phipsi(dipeptide)
    bias = _scaled_bias(cvs, activation="softplus")
    system = _bias_only_system(dipeptide)
    nnforce = NeuralBiasForce(cvs, bias, backend="cmap")
    nnforce.addToSystem(system)
    ctx = make_context(system, mm.VerletIntegrator(0.001), platform)
    e_ref, f_ref = _network_energy_forces(cvs, bias, dipeptide_frames)
    es, fs = zip(*[_energy_forces(ctx, x, nnforce.forceGroup) for x in dipeptide_frames])
    assert np.abs(np.array(es) - e_ref).max() < 0.05
    assert np.sqrt(((np.array(fs) - f_ref) ** 2).mean() / (f_ref ** 2).mean()) < 0.03


@pytest.mark.parametrize("backend", ["torch", "table", "cmap"])
@pytest.mark.parametrize("platform", PLATFORMS)
def test_live_update_reaches_running_simulation(dipeptide, backend, platform):
    """Change the weights from Python; the very next force evaluation uses them."""
    if backend == "torch":
        require_torch_force(platform)
    cvs = _phipsi(dipeptide)
    bias = _scaled_bias(cvs, activation="softplus")
    system = copy.deepcopy(dipeptide.system)
    nnforce = NeuralBiasForce(cvs, bias, backend=backend)
    nnforce.addToSystem(system)
    integ = mm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.002 * unit.picosecond)
    sim = app.Simulation(dipeptide.topology, system, integ, get_platform(platform), platform_properties(platform))
    sim.context.setPositions(dipeptide.positions)
    sim.step(10)
    before = nnforce.getBiasEnergy(sim).value_in_unit(unit.kilojoule_per_mole)
    f_before = sim.context.getState(getForces=True, groups={nnforce.forceGroup}).getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    with torch.no_grad():
        bias.layers[-1].bias.add_(2.5)
        bias.layers[-1].weight.mul_(2.0)
    nnforce.updateWeights(sim)
    after = nnforce.getBiasEnergy(sim).value_in_unit(unit.kilojoule_per_mole)
    f_after = sim.context.getState(getForces=True, groups={nnforce.forceGroup}).getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    pos = sim.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    expected = float(bias(cvs(torch.tensor(pos))).detach())
    tol = 1e-8 if backend == "torch" else 0.1
    assert abs(after - expected) < tol and abs(after - before) > 1.0
    np.testing.assert_allclose(f_after, 2 * f_before, rtol=1e-6 if backend == "torch" else 0.05, atol=1e-6)
    sim.step(10)  # and the simulation keeps running


@pytest.mark.parametrize("backend", ["torch", "table", "cmap"])
def test_xml_roundtrip_and_checkpoints(dipeptide, backend, tmp_path):
    if backend == "torch":
        require_torch_force(DEFAULT_PLATFORM)
    cvs = _phipsi(dipeptide)
    bias = _scaled_bias(cvs, activation="softplus")
    system = copy.deepcopy(dipeptide.system)
    nnforce = NeuralBiasForce(cvs, bias, backend=backend)
    nnforce.addToSystem(system)
    xml = mm.XmlSerializer.serialize(system)
    system2 = mm.XmlSerializer.deserialize(xml)
    assert system2.getNumForces() == system.getNumForces()

    def new_sim(sys):
        integ = mm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.002 * unit.picosecond)
        integ.setRandomNumberSeed(3)
        # one thread: multi-threaded CPU force sums (seen with CMAP) are not bit-reproducible
        sim = app.Simulation(dipeptide.topology, sys, integ, get_platform(DEFAULT_PLATFORM),
                             platform_properties(DEFAULT_PLATFORM, threads=1))
        sim.context.setPositions(dipeptide.positions)
        return sim

    sim, sim2 = new_sim(system), new_sim(system2)
    e1 = sim.context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    e2 = sim2.context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    assert abs(e1 - e2) < 1e-6
    sim.step(20)
    sim.saveCheckpoint(str(tmp_path / "chk"))
    sim.saveState(str(tmp_path / "state.xml"))
    sim.step(20)
    after_40 = sim.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    sim.loadCheckpoint(str(tmp_path / "chk"))
    sim.step(20)
    np.testing.assert_allclose(sim.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer),
                               after_40, atol=1e-10)
    sim.loadState(str(tmp_path / "state.xml"))
    with torch.no_grad():
        bias.layers[-1].bias.add_(1.0)
    before = nnforce.getBiasEnergy(sim).value_in_unit(unit.kilojoule_per_mole)
    nnforce.updateWeights(sim)
    assert abs(nnforce.getBiasEnergy(sim).value_in_unit(unit.kilojoule_per_mole) - before - 1.0) < 1e-6  # still live after load


@pytest.mark.parametrize("platform", PLATFORMS)
def test_exported_bias_in_another_system(dipeptide, dipeptide_frames, tmp_path, platform):
    require_torch_force(platform)
    cvs = _phipsi(dipeptide)
    bias = _scaled_bias(cvs)
    nnforce = NeuralBiasForce(cvs, bias)
    path = str(tmp_path / "bias.pt")
    nnforce.exportBias(path)
    system = _bias_only_system(dipeptide)
    system.addForce(load_bias(path, forceGroup=5))
    ctx = make_context(system, mm.VerletIntegrator(0.001), platform)
    e_ref, _ = _network_energy_forces(cvs, bias, dipeptide_frames[:3])
    for x, e0 in zip(dipeptide_frames[:3], e_ref):
        assert abs(_energy_forces(ctx, x, 5)[0] - e0) < 1e-9


def test_bad_input_errors(dipeptide):
    cvs = _phipsi(dipeptide)
    bias = NeuralBias.from_cvs(cvs)
    with pytest.raises(ValueError, match="unknown backend"):
        NeuralBiasForce(cvs, bias, backend="tables")
    one = CVSet([Torsion(dipeptide.torsions["phi"], "phi")])
    with pytest.raises(ValueError, match="has 1 CVs .* takes 2 inputs"):
        NeuralBiasForce(one, bias)
    mixed = NeuralBias([True, False], [-math.pi, -math.pi], [math.pi, math.pi])
    with pytest.raises(ValueError, match="periodicity mismatch for CV 'psi'"):
        NeuralBiasForce(cvs, mixed)
    far = CVSet([Torsion([4, 6, 8, 40], "phi"), Torsion(dipeptide.torsions["psi"], "psi")])
    with pytest.raises(ValueError, match="atom index 40 but the system has only 22 particles"):
        NeuralBiasForce(far, bias).addToSystem(_bias_only_system(dipeptide))
    six = CVSet([Torsion([i, i + 1, i + 2, i + 3], f"t{i}") for i in range(4)])
    with pytest.raises(ValueError, match="exactly two Torsion CVs"):
        NeuralBiasForce(one, NeuralBias.from_cvs(one), backend="cmap")
    with pytest.raises(ValueError, match="at most 3 CVs"):
        NeuralBiasForce(six, NeuralBias.from_cvs(six), backend="table")
    with pytest.raises(ValueError, match="unknown OpenMM platform 'GPU'"):
        get_platform("GPU")
    nnforce = NeuralBiasForce(cvs, bias)
    with torch.no_grad():
        bias.layers[1].weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match="non-finite"):
        nnforce.updateWeights()
    with pytest.raises(ValueError, match="does not exist"):
        load_bias("/nonexistent/bias.pt")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_torch_backend_mixed_cv_kinds(dipeptide, dipeptide_frames, platform):
    """Fused kernel with torsion, distance and angle CVs (mixed periodic/linear features)."""
    require_torch_force(platform)
    from openmm_nnbias.cvs import Angle

    cvs = CVSet([Distance([1, 18], 0.2, 0.9, names="d"), Torsion(dipeptide.torsions["phi"], "phi"),
                 Angle([4, 6, 8], 1.5, 2.5, names="a")])
    bias = NeuralBias.from_cvs(cvs, seed=9, zero_output=False, activation="elu")
    system = _bias_only_system(dipeptide)
    nnforce = NeuralBiasForce(cvs, bias)
    nnforce.addToSystem(system)
    ctx = make_context(system, mm.VerletIntegrator(0.001), platform)
    e_ref, f_ref = _network_energy_forces(cvs, bias, dipeptide_frames[:4])
    for x, e0, f0 in zip(dipeptide_frames[:4], e_ref, f_ref):
        e, f = _energy_forces(ctx, x, nnforce.forceGroup)
        assert abs(e - e0) < 1e-9
        np.testing.assert_allclose(f, f0, rtol=1e-8, atol=1e-8)


def test_get_collective_variables_and_range_error(dipeptide):
    import math as _m

    cvs = CVSet([Torsion(dipeptide.torsions["phi"], "phi"), Distance([1, 18], 0.0, 0.1, names="d")])
    bias = NeuralBias.from_cvs(cvs)
    nnforce = NeuralBiasForce(cvs, bias)
    system = _bias_only_system(dipeptide)
    nnforce.addToSystem(system)
    ctx = make_context(system, mm.VerletIntegrator(0.001), DEFAULT_PLATFORM)
    ctx.setPositions(dipeptide.positions)
    with pytest.raises(ValueError, match=r"CV 'd' = .* outside its declared range \[0.0, 0.1\]"):
        nnforce.getCollectiveVariables(ctx)
    ok = NeuralBiasForce(CVSet([Torsion(dipeptide.torsions["phi"], "phi")]),
                         NeuralBias([True], [-_m.pi], [_m.pi]))
    ok.addToSystem(_bias_only_system(dipeptide))
    phi = ok.getCollectiveVariables(ctx)[0]
    assert -_m.pi <= phi <= _m.pi


@pytest.mark.parametrize("backend", ["torch", "table", "cmap"])
def test_force_added_after_the_context_is_one_clear_error(dipeptide, backend):
    """The Context never applies a force added to its System later: pushing weights or reading the
    bias energy says so (before: torch learnt silently, table/cmap failed inside OpenMM)."""
    system = copy.deepcopy(dipeptide.system)
    cvs = _phipsi(dipeptide)
    nnforce = NeuralBiasForce(cvs, _scaled_bias(cvs), backend=backend)
    ctx = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(dipeptide.positions)
    with pytest.raises(ValueError, match="never added to a System"):
        nnforce.updateWeights(ctx)
    nnforce.addToSystem(system)
    with pytest.raises(ValueError, match=r"not part of this Context.*before the Context/Simulation is created"):
        nnforce.updateWeights(ctx)
    with pytest.raises(ValueError, match="not part of this Context"):
        nnforce.applyWeights(nnforce.prepareWeights(), ctx)
    with pytest.raises(ValueError, match="not part of this Context"):
        nnforce.getBiasEnergy(ctx)
    with pytest.raises(ValueError, match="not part of this Context"):
        nnforce.checkContext(ctx)
    ctx.reinitialize(preserveState=True)  # the remedy the message names
    nnforce.updateWeights(ctx)
    assert nnforce.getBiasEnergy(ctx).value_in_unit(unit.kilojoule_per_mole) != 0.0


def test_torch_backend_works_when_openmm_is_imported_first(tmp_path):
    """With the PyPI wheels ``import openmm`` before torch leaves openmm-torch's plugins unloaded;
    the torch backend loads them again (before: "No Platform supports all the requested kernels")."""
    import os
    import subprocess
    import sys

    import openmm_nnbias

    root = os.path.dirname(os.path.dirname(os.path.abspath(openmm_nnbias.__file__)))  # this checkout
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    script = tmp_path / "openmm_first.py"
    script.write_text(
        "import openmm as mm\n"
        "from openmm import unit\n"
        "from openmm_nnbias.bias import NeuralBias, NeuralBiasForce\n"
        "from openmm_nnbias.cvs import CVSet, Torsion\n"
        "from openmm_nnbias.systems import alanine_dipeptide\n"
        "pep = alanine_dipeptide()\n"
        "cvs = CVSet([Torsion(pep.torsions['phi'], 'phi'), Torsion(pep.torsions['psi'], 'psi')])\n"
        "force = NeuralBiasForce(cvs, NeuralBias.from_cvs(cvs, seed=1, zero_output=False), backend='torch')\n"
        "force.addToSystem(pep.system)\n"
        "ctx = mm.Context(pep.system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName('Reference'))\n"
        "ctx.setPositions(pep.positions)\n"
        "print('bias', force.getBiasEnergy(ctx).value_in_unit(unit.kilojoule_per_mole))\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert math.isfinite(float(out.stdout.split("bias")[-1]))


@pytest.mark.parametrize("device", DEVICES)
def test_live_weights_reach_module_on_device(dipeptide, dipeptide_frames, device):
    """The torch backend's module on ``device`` (positions there, as openmm-torch hands them on a
    GPU platform): the first call maps the shared weights and copies them to the device, and every
    later call re-copies them, so a push from Python is seen at the next call, with no Context."""
    cvs = _phipsi(dipeptide)
    bias = _scaled_bias(cvs, activation="softplus")
    nnforce = NeuralBiasForce(cvs, bias, backend="torch")
    module = nnforce.backend.module
    frames = dipeptide_frames[:3]

    def on_device():
        out = [module(torch.tensor(x, dtype=torch.float64, device=device)) for x in frames]
        assert all(e.device.type == torch.device(device).type for e, _ in out)
        return np.array([float(e) for e, _ in out]), np.array([f.cpu().numpy() for _, f in out])

    for _ in range(2):  # before a push, and after one
        e, f = on_device()
        e_ref, f_ref = _network_energy_forces(cvs, bias, frames)
        np.testing.assert_allclose(e, e_ref, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(f, f_ref, rtol=1e-8, atol=1e-8)
        with torch.no_grad():
            bias.layers[-1].bias.add_(2.5)
            bias.layers[-1].weight.mul_(-1.5)
        nnforce.updateWeights()
    assert module.device_flat.numel() == (0 if torch.device(device).type == "cpu" else nnforce.backend.weights.numel)
