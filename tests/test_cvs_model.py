"""ModelCV: a user's TorchScript model on CVs or positions, against autograd, finite differences,
OpenMM forces of the torch backend, and a Deep-VES run with a CV learned by mlcolvar."""

import copy
import io
import pickle

import numpy as np
import openmm as mm
import pytest
import torch
from openmm import app, unit

from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
from openmm_nnbias.bias.modules import BiasEnergy
from openmm_nnbias.cvs import CVSet, Distance, ModelCV, Torsion

F64 = torch.float64
PHI, PSI = (4, 6, 8, 14), (6, 8, 14, 16)
#: heavy-atom distances that tell C7eq from C7ax (the CB ones carry the signs of φ and ψ)
PAIRS = [(4, 14), (6, 16), (4, 10), (10, 16), (5, 16), (1, 8)]


def _mlp(n_in: int, n_out: int, dtype=F64, seed: int = 0) -> torch.jit.ScriptModule:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(n_in, 8), torch.nn.Tanh(), torch.nn.Linear(8, n_out)).to(dtype)
    return torch.jit.trace(net, torch.zeros(1, n_in, dtype=dtype))


def _descriptors() -> CVSet:
    return CVSet([Torsion([PHI, PSI], ["phi", "psi"]), Distance([1, 18], 0.0, 2.0, "d_ends")])


def _model_cvs():
    """Two model CVs (on CVs, on positions) around an ordinary torsion: order and no fusion."""
    on_cvs = ModelCV(_mlp(3, 2), _descriptors(), -10.0, 10.0, names=["m0", "m1"])
    on_pos = ModelCV(_mlp(12, 1, seed=1), [8, 14, 15, 16], -10.0, 10.0, names="mx")
    return CVSet([on_cvs, Torsion(PHI, "phi"), on_pos])


def _reference(frames: torch.Tensor) -> torch.Tensor:
    """The same CVs composed by hand: the models called directly."""
    inner = _descriptors()(frames)
    local = frames[..., [8, 14, 15, 16], :].flatten(-2)
    return torch.cat([_mlp(3, 2)(inner.reshape(-1, 3)).reshape(*frames.shape[:-2], 2),
                      Torsion(PHI)(frames), _mlp(12, 1, seed=1)(local.reshape(-1, 12)).reshape(*frames.shape[:-2], 1)], -1)


def test_values_match_the_models_called_directly(dipeptide_frames):
    x = torch.tensor(dipeptide_frames, dtype=F64)
    cvs = _model_cvs()
    assert cvs.names == ["m0", "m1", "phi", "mx"] and len(cvs.groups) == 3
    assert cvs.groups[0].atoms.tolist() == [[1, 4, 6, 8, 14, 16, 18]] * 2  # gathered, one row per output
    torch.testing.assert_close(cvs(x), _reference(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(cvs(x[3]), _reference(x[3]), rtol=0, atol=1e-12)
    assert cvs(x.float()).dtype == torch.float32  # cast to the model's dtype and back


def _jacobian_dense(cvs, x: torch.Tensor) -> torch.Tensor:
    """(n_cvs, n_atoms, 3) from value_and_jacobians, scattered like apply_forces does."""
    rows = []
    for k in range(cvs.n_cvs):
        dvds = torch.zeros(cvs.n_cvs, dtype=F64)
        dvds[k] = -1.0  # apply_forces accumulates -dV/ds · ds/dx
        _, jac = cvs.value_and_jacobians(x)
        rows.append(cvs.apply_forces(dvds, jac, torch.zeros_like(x)))
    return torch.stack(rows)


def test_jacobians_match_autograd_and_finite_differences(dipeptide_frames):
    x = torch.tensor(dipeptide_frames[5], dtype=F64)
    cvs = _model_cvs()
    with torch.no_grad():  # as the bias force calls it
        values, _ = cvs.value_and_jacobians(x)
        dense = _jacobian_dense(cvs, x)
    assert torch.is_grad_enabled()  # the grad mode is restored
    torch.testing.assert_close(values, _reference(x), rtol=0, atol=1e-12)
    auto = torch.autograd.functional.jacobian(_reference, x)
    torch.testing.assert_close(dense, auto, rtol=0, atol=1e-10)
    h = 1e-6
    for atom, axis in [(8, 0), (14, 2), (16, 1), (18, 0)]:
        dx = torch.zeros_like(x)
        dx[atom, axis] = h
        fd = (_reference(x + dx) - _reference(x - dx)) / (2 * h)
        torch.testing.assert_close(dense[:, atom, axis], fd, rtol=0, atol=1e-6)


class _Refuses(torch.nn.Module):
    def forward(self, d: torch.Tensor) -> torch.Tensor:
        if bool((d.abs() > 1.0).any()):
            raise ValueError("descriptor out of range")
        return d.sum(-1, keepdim=True)


def test_grad_mode_restored_when_the_model_raises():
    cv = ModelCV(_Refuses(), [0], -1.0, 1.0)  # a plain module is scripted
    x = torch.full((1, 3), 0.5, dtype=F64)
    with torch.no_grad():
        value, jac = cv.value_and_jacobian(x)
        with pytest.raises(Exception, match="descriptor out of range"):
            cv.value_and_jacobian(4 * x)
        assert not torch.is_grad_enabled()
    assert float(value) == 1.5 and torch.equal(jac, torch.ones(1, 1, 3, dtype=F64))


def test_scripted_frozen_and_saved_equal_eager(dipeptide_frames, tmp_path):
    x = torch.tensor(dipeptide_frames, dtype=F64)
    cvs = _model_cvs()
    scripted = torch.jit.script(cvs)
    torch.testing.assert_close(scripted(x), cvs(x), rtol=0, atol=1e-14)
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    buf.seek(0)
    loaded = torch.jit.load(buf)
    torch.testing.assert_close(loaded(x), cvs(x), rtol=0, atol=1e-14)
    eager_v, eager_j = cvs.value_and_jacobians(x[2])
    frozen = torch.jit.freeze(torch.jit.script(BiasEnergy(cvs, NeuralBias.from_cvs(cvs))).eval(),
                              preserved_attrs=["cv_values"])
    torch.testing.assert_close(frozen.cv_values(x), cvs(x), rtol=0, atol=1e-14)
    for module in (scripted, loaded):
        with torch.no_grad():
            v, j = module.value_and_jacobians(x[2])
            assert not torch.is_grad_enabled()  # restored inside TorchScript too
        torch.testing.assert_close(v, eager_v, rtol=0, atol=1e-14)
        for a, b in zip(j, eager_j):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-14)
    # a model from a file, and the updater's remapping of the atom tables into a recorded subset
    path = tmp_path / "model.pt"
    torch.jit.save(_mlp(3, 2), str(path))
    assert torch.equal(ModelCV(str(path), _descriptors(), -10.0, 10.0)(x), cvs(x)[:, :2])
    atoms = sorted({a for g in cvs.groups for a in g.atoms.reshape(-1).tolist()})
    lookup = torch.full((max(atoms) + 1,), -1, dtype=torch.long)
    lookup[atoms] = torch.arange(len(atoms))
    sub = copy.deepcopy(cvs)
    for g in sub.groups:
        g.atoms = lookup[g.atoms]
    torch.testing.assert_close(sub(x[:, atoms]), cvs(x), rtol=0, atol=1e-14)


def test_pickle_and_deepcopy_round_trip(dipeptide_frames):
    """What the Deep-VES learner process and the walkers need: the model travels as its file."""
    x = torch.tensor(dipeptide_frames[:3], dtype=F64)
    cvs = _model_cvs()
    for copied in (pickle.loads(pickle.dumps(cvs)), copy.deepcopy(cvs)):
        assert torch.equal(copied(x), cvs(x))
        model = copied.groups[0].model
        assert not model.training and not any(p.requires_grad for p in model.parameters())
        for a, b in zip(copied.value_and_jacobians(x[0])[1], cvs.value_and_jacobians(x[0])[1]):
            assert torch.equal(a, b)


def test_torch_backend_forces_match_autograd(dipeptide, dipeptide_frames):
    cvs = _model_cvs()
    bias = NeuralBias.from_cvs(cvs, seed=2, zero_output=False)
    system = mm.System()
    for i in range(dipeptide.system.getNumParticles()):
        system.addParticle(1.0)
    nnforce = NeuralBiasForce(cvs, bias, backend="torch")
    nnforce.addToSystem(system)
    ctx = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("CPU"))
    x = torch.tensor(dipeptide_frames[:4], dtype=F64).requires_grad_(True)
    energy = bias(_reference(x))
    (grad,) = torch.autograd.grad(energy.sum(), x)
    for k in range(4):
        ctx.setPositions(dipeptide_frames[k])
        state = ctx.getState(getEnergy=True, getForces=True)
        assert state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) == pytest.approx(float(energy[k].detach()), abs=1e-5)
        np.testing.assert_allclose(state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer), -grad[k].numpy(), rtol=0, atol=1e-4)
    assert nnforce.getCollectiveVariables(ctx) == pytest.approx(_reference(x[3].detach()).tolist(), abs=1e-6)


def test_table_and_cmap_backends_refuse_a_model_cv():
    cvs = CVSet([ModelCV(_mlp(2, 1), CVSet([Torsion(PHI, "phi"), Torsion(PSI, "psi")]), -5.0, 5.0, "m")])
    bias = NeuralBias.from_cvs(cvs)
    for backend in ("table", "cmap"):
        with pytest.raises(ValueError, match=r"cannot compute CV \['m'\] \(ModelCV.*use backend='torch'"):
            NeuralBiasForce(cvs, bias, backend=backend)


def test_argument_errors(tmp_path):
    model = _mlp(3, 2)
    with pytest.raises(TypeError, match="model must be a TorchScript module"):
        ModelCV(42, _descriptors(), -1.0, 1.0)
    with pytest.raises(ValueError, match="no TorchScript file"):
        ModelCV(str(tmp_path / "missing.pt"), _descriptors(), -1.0, 1.0)
    with pytest.raises(TypeError, match="inputs must be a CVSet"):
        ModelCV(model, "phi", -1.0, 1.0)
    with pytest.raises(ValueError, match="inputs: atom indices must be distinct"):
        ModelCV(_mlp(6, 1), [3, 3], -1.0, 1.0)
    with pytest.raises(ValueError, match=r"calling it on a \(1, 12\)"):
        ModelCV(model, [0, 1, 2, 3], -1.0, 1.0)
    with pytest.raises(ValueError, match="3 names for 2 CVs"):
        ModelCV(model, _descriptors(), -1.0, 1.0, names=["a", "b", "c"])
    with pytest.raises(ValueError, match="lower < upper"):
        ModelCV(model, _descriptors(), 1.0, -1.0)
    with pytest.raises(TypeError, match="lower must be a float"):
        ModelCV(model, _descriptors(), "0", 1.0)
    with pytest.raises(TypeError, match="periodic must be a bool"):
        ModelCV(model, _descriptors(), -1.0, 1.0, periodic=1)
    inner = ModelCV(_mlp(3, 1), _descriptors(), -1.0, 1.0, "inner")
    with pytest.raises(ValueError, match="cannot take other ModelCVs"):
        ModelCV(_mlp(1, 1), CVSet([inner]), -1.0, 1.0)
    with pytest.raises(ValueError, match="must give a \\(1, n_outputs\\) tensor"):
        ModelCV(torch.jit.script(torch.nn.Flatten(0)), [0, 1], -1.0, 1.0)


# --- the real thing: a Deep-LDA CV learned with mlcolvar, then biased with Deep-VES ----------

def _unbiased_frames(system, positions, seed: int, frames: int = 200, every: int = 10) -> np.ndarray:
    integ = mm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.002 * unit.picosecond)
    integ.setRandomNumberSeed(seed)
    ctx = mm.Context(system, integ, mm.Platform.getPlatformByName("CPU"))
    ctx.setPositions(positions)
    ctx.setVelocitiesToTemperature(300 * unit.kelvin, seed)
    out = []
    for _ in range(frames):
        integ.step(every)
        out.append(ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    return np.array(out)


def _train_deeplda(data: torch.Tensor, labels: torch.Tensor, path: str) -> None:
    lightning = pytest.importorskip("lightning", reason="mlcolvar trains with lightning")
    from mlcolvar.cvs import DeepLDA
    from mlcolvar.data import DictDataset, DictModule

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a few hundred samples: threads only add overhead
    try:
        torch.manual_seed(0)
        datamodule = DictModule(DictDataset({"data": data, "labels": labels}), lengths=[0.8, 0.2],
                                batch_size=len(data))
        model = DeepLDA(layers=[data.shape[1], 12, 4], n_states=2,
                        options={"nn": {"activation": "tanh"}, "optimizer": {"lr": 1e-2}})
        trainer = lightning.Trainer(max_epochs=80, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                                    enable_model_summary=False, accelerator="cpu", num_sanity_val_steps=0)
        trainer.fit(model, datamodule)
        model.to_torchscript(path, method="trace")
    finally:
        torch.set_num_threads(threads)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_deeplda_cv_from_mlcolvar_in_a_deep_ves_run(dipeptide, tmp_path):
    pytest.importorskip("mlcolvar", reason="the mlcolvar extra is not installed (pip install 'openmm_nnbias[mlcolvar]')")
    from openmm_nnbias.systems import alanine_peptide
    from openmm_nnbias.ves import DeepVESUpdater, ExecutionOptions, WellTempered

    c7ax = alanine_peptide(1, phi_psi=[(70.0, -70.0)])
    frames = [_unbiased_frames(dipeptide.system, dipeptide.positions, 1),
              _unbiased_frames(dipeptide.system, c7ax.positions, 2)]
    angles = CVSet([Torsion(PHI, "phi"), Torsion(PSI, "psi")])
    assert [float(angles(torch.tensor(f))[:, 0].mean()) for f in frames] == [
        pytest.approx(-1.4, abs=0.7), pytest.approx(1.2, abs=0.5)]  # C7eq, C7ax
    descriptors = CVSet([Distance(PAIRS, 0.0, 1.0, [f"d{i}_{j}" for i, j in PAIRS])])
    data = [descriptors(torch.tensor(f)).float() for f in frames]
    path = str(tmp_path / "deeplda.pt")
    _train_deeplda(torch.cat(data), torch.cat([torch.zeros(len(data[0])), torch.ones(len(data[1]))]), path)

    model = torch.jit.load(path)
    with torch.no_grad():
        lda = [model(d) for d in data]
    separation = abs(float(lda[1].mean() - lda[0].mean())) / float(lda[0].std() + lda[1].std())
    assert separation > 5  # the learned CV tells the two basins apart
    low, high = float(torch.cat(lda).min()), float(torch.cat(lda).max())
    span = high - low
    cv = ModelCV(path, descriptors, low - 2 * span, high + 2 * span, names="lda")
    cvs = CVSet([cv])
    bias = NeuralBias.from_cvs(cvs, seed=0)
    with pytest.raises(ValueError, match=r"cannot compute CV \['lda'\].*backend='torch'"):
        NeuralBiasForce(cvs, bias, backend="table")

    system = copy.deepcopy(dipeptide.system)
    nnforce = NeuralBiasForce(cvs, bias, backend="torch")
    nnforce.addToSystem(system)
    integ = mm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.002 * unit.picosecond)
    integ.setRandomNumberSeed(3)
    sim = app.Simulation(dipeptide.topology, system, integ, mm.Platform.getPlatformByName("CPU"))
    sim.context.setPositions(dipeptide.positions)
    sim.context.setVelocitiesToTemperature(300 * unit.kelvin, 3)
    updater = DeepVESUpdater(nnforce, 300 * unit.kelvin, target=WellTempered(biasFactor=10, bins=50), stride=100,
                             sampleStride=10, outputs=str(tmp_path / "ves"), execution=ExecutionOptions(mode="sync"))
    sim.reporters.append(updater)
    sim.step(500)
    updater.finish()
    assert len(updater.history) == 5 and (tmp_path / "ves" / "colvar").exists()

    # the CV and the bias force's forces against the exported model called directly
    state = sim.context.getState(getPositions=True, getForces=True, groups={nnforce.forceGroup})
    x = torch.tensor(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer), dtype=F64)
    reference = torch.jit.load(path)
    xg = x.clone().requires_grad_(True)
    s = reference(descriptors(xg).float().unsqueeze(0)).double().reshape(1)
    assert nnforce.getCollectiveVariables(sim) == pytest.approx([float(s)], abs=1e-5)
    (grad,) = torch.autograd.grad(bias(s).sum(), xg)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    assert np.abs(grad.numpy()).max() > 0
    np.testing.assert_allclose(forces, -grad.numpy(), rtol=0, atol=1e-4 * max(1.0, np.abs(forces).max()))
    exported = torch.jit.load(str(tmp_path / "ves" / "bias.pt"))  # the self-contained bias with the model CV
    assert float(exported(x)) == pytest.approx(float(bias(s.detach())), abs=1e-6)


@pytest.mark.parametrize("boxname", ["rectangular", "triclinic"])
def test_model_on_cvs_uses_the_minimum_image_in_a_box(dipeptide_frames, boxname):
    from test_cvs_periodic import BOXES, straddling_frames

    box = torch.tensor(BOXES[boxname], dtype=F64)
    whole, split = (torch.tensor(f, dtype=F64) for f in straddling_frames(dipeptide_frames, BOXES[boxname]))
    cv = ModelCV(_mlp(3, 2), _descriptors(), -10.0, 10.0, names=["m0", "m1"])
    torch.testing.assert_close(cv(split, box), cv(whole), rtol=0, atol=1e-10)  # split molecule = whole one
    value, jac = cv.value_and_jacobian(split[2], box)
    ref_value, ref_jac = cv.value_and_jacobian(whole[2])
    torch.testing.assert_close(value, ref_value, rtol=0, atol=1e-10)
    torch.testing.assert_close(jac, ref_jac, rtol=0, atol=1e-10)
    scripted = torch.jit.script(CVSet([cv]))
    torch.testing.assert_close(scripted(split, box), cv(whole), rtol=0, atol=1e-10)
