"""Alanine-dipeptide DiffSim setup, its bias in OpenMM, and the windowed (length-independent) forward run."""

import copy
import math

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

import openmm  # noqa: E402
from openmm import unit  # noqa: E402

from openmm_nnbias.cvs import CVSet, Position  # noqa: E402
from openmm_nnbias.diffsim import (DiffSimTrainer, LangevinSimulator, Well,  # noqa: E402
                                   loss_position_gradient, make_force_fn, partial_adjoint)
from openmm_nnbias.systems import MuellerBrownEnergy  # noqa: E402
from openmm_nnbias.recipes.diffsim import ALA2_C5, ALA2_C7AX, alanine_dipeptide_setup  # noqa: E402
from openmm_nnbias.diffsim.streaming import forward_for_adjoint  # noqa: E402

from _devices import DEVICES, PLATFORMS, make_context, require_torch_force  # noqa: E402

F64 = torch.float64


@pytest.fixture(scope="module")
def ala2():
    return alanine_dipeptide_setup(n_replicas=2, n_steps=30, adjoint_steps=5, well_replicas=4, well_steps=150)


def test_setup_builds_without_constraints(ala2):
    from openmm_nnbias.recipes.diffsim import alanine_dipeptide_vacuum

    assert ala2.cvs.names == ["phi", "psi"] and ala2.cvs.period() == pytest.approx([2 * math.pi] * 2)
    assert ala2.start_positions.shape[1:] == (22, 3) and ala2.masses.shape == (22,)
    assert ala2.trainer.simulator.friction == 1.0 and ala2.trainer.simulator.timestep == 0.001
    assert ala2.trainer.n_steps == 30 and ala2.info["constraints"].startswith("none")
    c5, ax = ala2.info["c5_phi_psi"], ala2.info["c7ax_phi_psi"]
    assert c5[0] < -2.0 and c5[1] > 2.0 and 0.8 < ax[0] < 1.4 and -1.3 < ax[1] < -0.4
    pep = alanine_dipeptide_vacuum()
    system = pep.system  # the System OpenMM runs must use
    # Modeller.addHydrogens draws random directions: the seeded build is reproducible
    again = alanine_dipeptide_vacuum().positions.value_in_unit(unit.nanometer)
    assert np.array_equal(np.asarray(pep.positions.value_in_unit(unit.nanometer)), np.asarray(again))
    assert system.getNumConstraints() == 0
    assert not any(isinstance(f, openmm.CMMotionRemover) for f in system.getForces())
    with pytest.raises(ValueError, match="too long"):
        alanine_dipeptide_setup(timestep=0.002)


def test_wells_contain_own_centre_not_other_state(ala2):
    # the minimized states (the authors' nominal points lie further out than these tiny test runs reach)
    c5 = torch.tensor(ala2.info["c5_phi_psi"], dtype=F64)
    ax = torch.tensor(ala2.info["c7ax_phi_psi"], dtype=F64)
    assert float(torch.dist(c5, torch.tensor(ALA2_C5, dtype=F64))) < 0.5
    assert float(torch.dist(ax, torch.tensor(ALA2_C7AX, dtype=F64))) < 0.5
    r, p = ala2.reactant_well, ala2.product_well
    assert r.period == pytest.approx([2 * math.pi] * 2) and p.period == pytest.approx([2 * math.pi] * 2)
    assert bool(r.contains(r.mean)) and bool(p.contains(p.mean))
    assert bool(r.contains(c5)) and bool(p.contains(ax))
    assert not bool(r.contains(ax)) and not bool(p.contains(c5))
    # periodic-aware: the C5 point shifted by 2π is the same state
    assert bool(r.contains(c5 + torch.tensor([2 * math.pi, -2 * math.pi], dtype=F64)))


def _bias_forces_torch(setup, x):
    x = x.detach().clone().requires_grad_(True)
    e = setup.trainer.bias_energy(x[None])[0]
    (g,) = torch.autograd.grad(e, x)
    return float(e.detach()), -g.numpy()


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("attach", ["load_bias", "NeuralBiasForce"])
def test_exported_bias_in_openmm_matches_trainer(ala2, tmp_path, attach, platform):
    require_torch_force(platform)
    from openmm_nnbias.bias import NeuralBiasForce, load_bias
    from openmm_nnbias.recipes.diffsim import alanine_dipeptide_vacuum

    setup = copy.copy(ala2)
    setup.trainer = copy.deepcopy(ala2.trainer)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():  # a non-trivial bias (the untrained one is identically 0)
        for prm in setup.trainer.bias.parameters():
            prm.copy_(torch.randn(prm.shape, generator=g, dtype=F64))
    system = alanine_dipeptide_vacuum().system
    if attach == "load_bias":
        path = str(tmp_path / "bias.pt")
        setup.trainer.export(path)
        force = load_bias(path, forceGroup=5)
        system.addForce(force)
    else:
        NeuralBiasForce(setup.trainer.cvs, setup.trainer.bias, backend="torch", forceGroup=5).addToSystem(system)
    ctx = make_context(system, openmm.VerletIntegrator(0.001), platform)
    frames = torch.cat([setup.start_positions[:: max(1, setup.start_positions.shape[0] // 3)][:3],
                        torch.randn(1, 22, 3, generator=g, dtype=F64) * 0.3])
    for x in frames:
        ctx.setPositions(x.numpy() * unit.nanometer)
        st = ctx.getState(getEnergy=True, getForces=True, groups={5})
        e_mm = st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        f_mm = st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
        e_t, f_t = _bias_forces_torch(setup, x)
        assert abs(e_t) > 1e-3
        assert e_mm == pytest.approx(e_t, rel=1e-6, abs=1e-6)
        np.testing.assert_allclose(f_mm, f_t, rtol=1e-5, atol=1e-5 * np.abs(f_t).max())


# ------------------------------------------------------------- windowed forward run == full storage

def _mb_problem(B):
    cvs = CVSet([Position([0, 0], ["x", "y"], -2.0, 2.0)])
    # a target well around the A minimum's rim: some replicas enter it, the others give pairs
    well = Well(torch.tensor([-0.50, 1.37], dtype=F64), 0.0004 * torch.eye(2, dtype=F64),
                [math.inf, math.inf], 0.1, 4.6)
    R0 = torch.tensor([[[-0.558, 1.442, 0.0]]], dtype=F64).repeat(B, 1, 1)
    tgt = well.mean + 0.01 * torch.randn(B, 2, generator=torch.Generator().manual_seed(3), dtype=F64)
    return cvs, well, R0, tgt


@pytest.mark.parametrize("chunk", [3, 5000])
def test_windowed_forward_equals_full_storage(chunk):
    B, K = 12, 10
    U, m = MuellerBrownEnergy(0.36), torch.ones(1, dtype=F64)
    cvs, well, R0, tgt = _mb_problem(B)
    out = {}
    for storage in ("full", "window"):
        sim = LangevinSimulator(U, m, 300.0, 0.001, 5.0, seed=1)
        run = forward_for_adjoint(sim, R0, torch.zeros_like(R0), 500, None, cvs, well, tgt, window=K,
                                  storage=storage, chunk=chunk)
        fr = run.local_frames
        grad = loss_position_gradient(cvs, run.positions[fr, torch.arange(B)], tgt, well.period)
        active = (~run.loss.entered) & (run.loss.loss_frame >= 1)
        pairs = partial_adjoint(run.positions, fr, grad, m, 0.001, 5.0, make_force_fn(U), K, active)
        out[storage] = (run, pairs, pairs.step + run.offset[pairs.replica])
    (rf, pf, sf), (rw, pw, sw) = out["full"], out["window"]
    assert 0 < int(rf.loss.entered.sum()) < B  # both kinds of replicas are exercised
    for name in ("loss", "loss_frame", "entered", "min_sqdist"):
        assert torch.equal(getattr(rw.loss, name), getattr(rf.loss, name)), name
    assert torch.equal(rw.final_positions, rf.final_positions)
    assert torch.equal(pw.positions, pf.positions) and torch.equal(pw.adjoints, pf.adjoints)
    assert torch.equal(sw, sf) and len(pf) > 0
    assert rw.positions.shape[0] == K + 2 and rf.positions.shape[0] == 501


def test_window_storage_is_independent_of_length_and_trainer_agrees():
    cvs, well, R0, tgt = _mb_problem(2)
    sim = LangevinSimulator(MuellerBrownEnergy(0.36), torch.ones(1, dtype=F64), 300.0, 0.001, 5.0, seed=0)
    peaks = [forward_for_adjoint(sim, R0, torch.zeros_like(R0), n, None, cvs, well, tgt, window=10,
                                 chunk=50).n_stored_frames for n in (150, 600)]
    assert peaks[0] == peaks[1] < 150
    from openmm_nnbias.bias import NeuralBias

    params = {}
    for storage in ("full", "window"):
        net = NeuralBias.from_cvs(cvs, hidden=(8,), activation="silu", seed=0, zero_output=False)
        tr = DiffSimTrainer(MuellerBrownEnergy(0.36), cvs, net, torch.ones(1, dtype=F64), well, R0[0],
                            temperature=300.0, friction=5.0, n_steps=300, n_replicas=6, adjoint_steps=20,
                            batch_size=16, storage=storage, seed=2)
        res = tr.train_epoch()
        params[storage] = (res, [p.detach().clone() for p in net.parameters()])
    assert params["full"][0].n_pairs == params["window"][0].n_pairs > 0
    for a, b in zip(params["full"][1], params["window"][1]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="storage"):
        DiffSimTrainer(MuellerBrownEnergy(0.36), cvs, net, torch.ones(1, dtype=F64), well, R0[0],
                       temperature=300.0, storage="ring")


@pytest.mark.parametrize("device", DEVICES)
def test_alanine_diffsim_on_device_matches_cpu_and_trains(ala2, device):
    """The Ala2 setup built on ``device``: a friction-free (deterministic) biased run from the same
    start equals the CPU run within float64 rounding, and a training epoch runs there."""
    setup = alanine_dipeptide_setup(n_replicas=2, n_steps=30, adjoint_steps=5, well_replicas=4, well_steps=150,
                                    device=device)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # the same non-trivial network on both devices
        for p, q in zip(ala2.trainer.bias.parameters(), setup.trainer.bias.parameters()):
            q.copy_(0.3 * torch.randn(p.shape, generator=g, dtype=F64))
    cpu_bias = copy.deepcopy(setup.trainer.bias).cpu()
    R0 = ala2.start_positions[:3].clone()
    V0 = 0.3 * torch.randn(R0.shape, generator=g, dtype=F64)
    finals = []
    for s, bias in ((ala2, cpu_bias), (setup, setup.trainer.bias)):
        dev = s.masses.device
        sim = LangevinSimulator(s.potential, s.masses, 300.0, 0.001, 0.0, seed=0)
        traj = sim.run(R0.to(dev), V0.to(dev), 20, record_every=20, bias=lambda x, b=bias, c=s.cvs: b(c(x)))
        assert traj.final_positions.device.type == torch.device(device if s is setup else "cpu").type
        finals.append(traj.final_positions.cpu())
    assert float((finals[0] - R0).abs().max()) > 1e-3
    torch.testing.assert_close(finals[1], finals[0], rtol=1e-9, atol=1e-10)
    before = [p.detach().clone() for p in setup.trainer.bias.parameters()]
    result = setup.trainer.train_epoch()
    assert math.isfinite(result.mean_loss) and result.n_steps == 30
    assert all(p.device.type == torch.device(device).type for p in setup.trainer.bias.parameters())
    changed = any(not torch.equal(a, b) for a, b in zip(before, setup.trainer.bias.parameters()))
    assert changed == (result.n_updates > 0)
