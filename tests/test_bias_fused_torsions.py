"""FusedLiveBiasEnergy (the all-torsion bias in one C++ operator) equals the TorchScript LiveBiasEnergy."""

import copy
import logging

import numpy as np
import pytest
import torch

import openmm as mm
from openmm import unit

from openmm_nnbias import _ext
from openmm_nnbias.bias import NeuralBias, NeuralBiasForce, SharedWeights
from openmm_nnbias.bias import fused_torsions
from openmm_nnbias.bias.modules import LiveBiasEnergy
from openmm_nnbias.cvs import CVSet, Distance, Torsion
from openmm_nnbias.systems import alanine_tetrapeptide

NO_COMPILER = _ext.compiler_missing()
needs_compiler = pytest.mark.skipif(NO_COMPILER is not None, reason=f"fused kernels cannot be compiled: {NO_COMPILER}")
F64 = torch.float64
RTOL = 1e-10
NAMES = ("phi1", "psi1", "phi2", "psi2", "phi3", "psi3")


@pytest.fixture(scope="module")
def peptide():
    return alanine_tetrapeptide()


def _cvs(pep) -> CVSet:
    return CVSet([Torsion(pep.torsions[n], n) for n in NAMES])


def _bias(cvs, activation="relu", hidden=(96, 48, 24), seed=1) -> NeuralBias:
    """A random network with a non-zero output layer (energies of a few to tens of kJ/mol)."""
    bias = NeuralBias.from_cvs(cvs, hidden=hidden, activation=activation, seed=seed, zero_output=False)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for q in bias.parameters():
            q.add_(0.3 * torch.randn(q.shape, generator=gen, dtype=q.dtype))
    return bias


def _frames(pep, n=6, seed=3) -> list:
    """The minimized tetrapeptide and ``n`` frames with 0.02-0.08 nm Gaussian noise (nm, float64)."""
    x0 = torch.tensor(pep.positions.value_in_unit(unit.nanometer), dtype=F64)
    gen = torch.Generator().manual_seed(seed)
    return [x0] + [x0 + (0.02 + 0.012 * i) * torch.randn(x0.shape, generator=gen, dtype=F64) for i in range(n)]


def _modules(cvs, bias):
    weights = SharedWeights(bias.n_parameters)
    weights.write_parameters(bias)
    ref = torch.jit.script(LiveBiasEnergy(cvs, bias, weights.path, weights.header))
    fused = torch.jit.script(fused_torsions.FusedLiveBiasEnergy(cvs, bias, weights.path, weights.header))
    return weights, ref, fused


def _close(a, b, rtol=RTOL) -> None:
    """Energies to ``rtol`` relative; forces to ``rtol`` relative to their largest entry."""
    (e1, f1), (e2, f2) = a, b
    assert f1.shape == f2.shape and f1.dtype == f2.dtype
    assert abs(float(e1) - float(e2)) <= rtol * max(abs(float(e2)), 1e-300)
    assert float((f1 - f2).abs().max()) <= rtol * float(f2.abs().max())


@needs_compiler
@pytest.mark.parametrize("activation", ["relu", "elu", "tanh", "softplus", "silu"])
def test_fused_equals_torchscript(peptide, activation):
    cvs = _cvs(peptide)
    _, ref, fused = _modules(cvs, _bias(cvs, activation))
    assert fused.original_name == "FusedLiveBiasEnergy"
    for x in _frames(peptide):
        _close(fused.energy_and_forces(x), ref.energy_and_forces(x))
        _close(fused(x), ref(x))  # forward: openmm-torch's entry point
        _close(fused.energy_and_forces(x), fused.torchscript_energy_and_forces(x))
    # openmm-torch hands positions that require grad: no graph, the same numbers
    x = _frames(peptide)[1].requires_grad_(True)
    e, f = fused(x)
    assert not e.requires_grad and not f.requires_grad
    _close((e, f), ref(x))
    # float32 positions (a mixed-precision platform): float64 inside, forces back in float32
    x = _frames(peptide)[1]
    e1, f1 = fused(x.float())
    e2, f2 = ref(x.float())
    assert f1.dtype == torch.float32 and f2.dtype == torch.float32
    assert abs(float(e1) - float(e2)) <= RTOL * abs(float(e2))
    assert float((f1 - f2).abs().max()) <= 1e-6 * float(f2.abs().max())


@needs_compiler
def test_other_networks_and_cv_orders(peptide):
    """The dipeptide-sized [48, 24, 12] net over 2 torsions, a one-layer net, and torsions given in
    several Torsion objects (merged by the CVSet) with atoms in another order."""
    x = _frames(peptide)[2]
    t = peptide.torsions
    two = CVSet([Torsion(t["phi2"], "phi"), Torsion(t["psi2"], "psi")])
    _, ref, fused = _modules(two, _bias(two, hidden=(48, 24, 12)))
    _close(fused.energy_and_forces(x), ref.energy_and_forces(x))
    many = CVSet([Torsion([t["psi3"], t["phi1"]], ["a", "b"]), Torsion(t["phi2"][::-1], "c")])
    _, ref, fused = _modules(many, _bias(many, hidden=(7,), activation="tanh"))
    _close(fused.energy_and_forces(x), ref.energy_and_forces(x))


@needs_compiler
def test_weight_push_is_read_at_the_next_call(peptide):
    cvs = _cvs(peptide)
    bias = _bias(cvs)
    weights, ref, fused = _modules(cvs, bias)
    x = _frames(peptide)[3]
    before = fused.energy_and_forces(x)
    _close(before, ref.energy_and_forces(x))
    with torch.no_grad():
        for q in bias.parameters():
            q.mul_(1.5).add_(0.05)
    weights.write_parameters(bias)  # what TorchBackend.apply does
    after = fused.energy_and_forces(x)
    assert abs(float(after[0]) - float(before[0])) > 1e-3
    _close(after, ref.energy_and_forces(x))
    fresh = _modules(cvs, bias)[1]  # a module built from the new weights
    _close(after, fresh.energy_and_forces(x))


@needs_compiler
def test_periodic_box_uses_the_minimum_image(peptide):
    """Atoms shifted by box vectors (a triclinic box in OpenMM's reduced form): the same as the TorchScript
    torsions under the minimum image, and the same as the unshifted molecule in vacuum."""
    cvs = _cvs(peptide)
    _, ref, fused = _modules(cvs, _bias(cvs))
    box = torch.tensor([[2.5, 0.0, 0.0], [0.6, 2.4, 0.0], [-0.7, 0.5, 2.6]], dtype=F64)
    gen = torch.Generator().manual_seed(7)
    for x in _frames(peptide, n=3):
        shifts = torch.randint(-2, 3, (x.shape[0], 3), generator=gen).to(F64)
        y = x + shifts @ box
        out = fused.energy_and_forces(y, box)
        _close(out, ref.energy_and_forces(y, box))
        _close(out, ref.energy_and_forces(x))
        _close(fused(y, box), ref(y, box))


@needs_compiler
def test_inside_an_openmm_context_through_neural_bias_force(peptide):
    """NeuralBiasForce(backend='torch') selects the fused module; the Context's bias energy and forces
    equal the TorchScript module's, before and after updateWeights."""
    cvs = _cvs(peptide)
    bias = _bias(cvs)
    nbf = NeuralBiasForce(cvs, bias, backend="torch")
    assert nbf.backend.module.original_name == "FusedLiveBiasEnergy"
    system = copy.deepcopy(peptide.system)
    nbf.addToSystem(system)
    group = nbf.forceGroup
    context = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    weights = nbf.backend.weights
    ref = torch.jit.script(LiveBiasEnergy(cvs, bias, weights.path, weights.header))

    def check(x):
        context.setPositions(x.numpy())
        state = context.getState(getEnergy=True, getForces=True, groups={group})
        e = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        f = torch.as_tensor(state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))
        _close((torch.tensor(e, dtype=F64), f), ref.energy_and_forces(x))
        return e

    frames = _frames(peptide, n=2)
    e0 = [check(x) for x in frames]
    with torch.no_grad():
        for q in bias.parameters():
            q.mul_(-0.8)
    nbf.updateWeights(context)
    e1 = [check(x) for x in frames]
    assert all(abs(a - b) > 1e-3 for a, b in zip(e0, e1))
    # a Context that steps: a few MD steps with the fused bias
    integrator = mm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.001 * unit.picoseconds)
    sim_context = mm.Context(system, integrator, mm.Platform.getPlatformByName("Reference"))
    sim_context.setPositions(peptide.positions)
    integrator.step(20)
    x = sim_context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    assert np.isfinite(x).all()


def test_fallback_when_the_kernels_do_not_load(peptide, monkeypatch, caplog):
    def unavailable():
        raise _ext.FusedKernelsUnavailable("openmm_nnbias: test: no kernels here")

    monkeypatch.setattr(fused_torsions, "load_ops", unavailable)
    monkeypatch.setattr(fused_torsions, "_WARNED", False)
    cvs = _cvs(peptide)
    with caplog.at_level(logging.WARNING, logger="openmm_nnbias.bias.fused_torsions"):
        nbf = NeuralBiasForce(cvs, _bias(cvs), backend="torch")
        again = NeuralBiasForce(cvs, _bias(cvs, seed=2), backend="torch")  # no second warning
    assert nbf.backend.module.original_name == "LiveBiasEnergy" == again.backend.module.original_name
    warnings = [r for r in caplog.records if r.name == "openmm_nnbias.bias.fused_torsions"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "TorchScript module" in warnings[0].getMessage() and "no kernels here" in warnings[0].getMessage()


def test_unsupported_biases_keep_the_torchscript_module(peptide, caplog):
    """A non-torsion CV or a float32 network: LiveBiasEnergy, no warning; the fused class itself refuses."""
    t = peptide.torsions
    mixed = CVSet([Torsion(t["phi1"], "phi"), Distance([0, 10], 0.1, 2.0, "d")])
    torsions = _cvs(peptide)
    cases = [(mixed, _bias(mixed, hidden=(8,))),
             (torsions, NeuralBias.from_cvs(torsions, hidden=(8,), dtype=torch.float32, seed=0))]
    for cvs, bias in cases:
        assert fused_torsions.fused_torsions_unsupported(cvs, bias) is not None
        with caplog.at_level(logging.WARNING):
            module = fused_torsions.live_bias_energy(cvs, bias, "/nonexistent", [0.0])
        assert type(module) is LiveBiasEnergy
        with pytest.raises(ValueError, match="FusedLiveBiasEnergy: cvs/bias not supported"):
            fused_torsions.FusedLiveBiasEnergy(cvs, bias, "/nonexistent", [0.0])
    assert not [r for r in caplog.records if r.name == "openmm_nnbias.bias.fused_torsions"]


@needs_compiler
def test_operator_rejects_wrong_inputs(peptide):
    _ext.load_ops()
    op = torch.ops.openmm_nnbias.bias_torsions
    x = _frames(peptide)[0]
    atoms = torch.tensor([[0, 1, 2, 3]])
    scale = torch.ones(1, dtype=F64)
    flat = torch.zeros(2 * 4 + 4 + 4 + 1, dtype=F64)  # widths (2, 4, 1)
    e, f = op(x, None, atoms, scale, flat, [2, 4, 1], "relu")
    assert float(e) == 0.0 and f.shape == x.shape
    with pytest.raises(ValueError, match="widths"):
        op(x, None, atoms, scale, flat, [3, 4, 1], "relu")
    with pytest.raises(ValueError, match="flat holds"):
        op(x, None, atoms, scale, flat[:-1], [2, 4, 1], "relu")
    with pytest.raises(ValueError, match="activation"):
        op(x, None, atoms, scale, flat, [2, 4, 1], "gelu")
    with pytest.raises(ValueError, match="atoms holds index"):
        op(x[:3], None, atoms, scale, flat, [2, 4, 1], "relu")
    with pytest.raises(ValueError, match="box"):
        op(x, torch.eye(2, dtype=F64), atoms, scale, flat, [2, 4, 1], "relu")
    with pytest.raises(ValueError, match="flat"):
        op(x, None, atoms, scale, flat.float(), [2, 4, 1], "relu")


def test_fused_activations_are_the_networks():
    """Every network activation has a kernel; a new one must be added to the C++ operator and FUSED_ACTIVATIONS."""
    from openmm_nnbias.bias.fused_torsions import FUSED_ACTIVATIONS
    from openmm_nnbias.bias.network import ACTIVATIONS

    assert set(FUSED_ACTIVATIONS) == set(ACTIVATIONS)
