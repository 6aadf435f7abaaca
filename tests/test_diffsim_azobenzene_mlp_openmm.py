"""The AzobenzeneMLP in OpenMM (openmm-torch ``TorchForce`` vs the torch module, Reference and CPU, with and
without an exported bias) and ``openmm-nnbias diffsim --system azobenzene --potential``: smoke run, checkpoint
record, restart on another potential refused, bad values. No assertion depends on the shipped weights' values."""

import importlib.util
import os
import sys

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

from openmm_nnbias.cli import main  # noqa: E402
from openmm_nnbias.systems.azobenzene import AzobenzeneMLP  # noqa: E402
from openmm_nnbias.systems.azobenzene.molecule import AZOBENZENE_MASSES, azobenzene_positions  # noqa: E402
from openmm_nnbias.systems.azobenzene.potential import load_potential, potential_spec  # noqa: E402
from openmm_nnbias.runners.diffsim import run_diffsim  # noqa: E402

HAS_TORCHFORCE = importlib.util.find_spec("openmmtorch") is not None
needs_torchforce = pytest.mark.skipif(not HAS_TORCHFORCE, reason="needs openmm-torch")


@pytest.fixture(scope="module")
def mlp():
    return AzobenzeneMLP.pretrained()


def _perturbed(isomer, seed):
    gen = torch.Generator().manual_seed(seed)
    return azobenzene_positions(isomer, torch.float64) + 0.003 * torch.randn(24, 3, generator=gen, dtype=torch.float64)


def _energy_forces_torch(fn, x):
    xr = x.clone().requires_grad_(True)
    e = fn(xr).double()
    (g,) = torch.autograd.grad(e, xr)
    return float(e.detach()), -g.numpy()


def _openmm_state(system, x, platform):
    import openmm
    from openmm import unit

    props = {"Threads": "1"} if platform == "CPU" else {}
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName(platform), props)
    ctx.setPositions(x.numpy())
    st = ctx.getState(getEnergy=True, getForces=True)
    return (st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            np.asarray(st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)))


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@needs_torchforce
@pytest.mark.parametrize("platform", ["Reference", "CPU"])
def test_mlp_torchforce_matches_module_and_bias_adds(tmp_path, mlp, platform):
    """Both platforms hand openmm-torch float64 positions: energy and forces equal the module's to rounding;
    an exported bias (float32, as SevenNet runs train, and float64, as MLP runs) adds its energy and forces."""
    from openmm_nnbias.bias import NeuralBias, export_bias, load_bias
    from openmm_nnbias.systems.azobenzene.openmm_system import azobenzene_openmm_system
    from openmm_nnbias.recipes.diffsim.azobenzene import azobenzene_cvs

    system = azobenzene_openmm_system("gfn1-mlp")
    assert system.getNumParticles() == 24 and system.getNumForces() == 1 and system.getNumConstraints() == 0
    assert [system.getParticleMass(i)._value for i in range(24)] == pytest.approx(list(AZOBENZENE_MASSES))
    for k, isomer in enumerate(("cis", "trans")):
        x = _perturbed(isomer, k)
        e_mm, f_mm = _openmm_state(system, x, platform)
        e_t, f_t = _energy_forces_torch(mlp, x)
        assert e_mm == pytest.approx(e_t, rel=1e-10, abs=1e-6)
        assert _rel(f_mm, f_t) < 1e-9
    cvs = azobenzene_cvs()
    for dtype, tol in ((torch.float32, 1e-3), (torch.float64, 1e-8)):
        net = NeuralBias.from_cvs(cvs, hidden=(8,), seed=1, zero_output=False, dtype=dtype)
        path = str(tmp_path / f"bias_{platform}_{dtype}.pt".replace("torch.", ""))
        export_bias(cvs, net, path)
        biased = azobenzene_openmm_system("gfn1-mlp")
        biased.addForce(load_bias(path, forceGroup=1))
        e2, f2 = _openmm_state(biased, x, platform)
        e_b, f_b = _energy_forces_torch(lambda y: net(cvs(y.to(dtype)[None]))[0], x)
        assert e2 - e_mm == pytest.approx(e_b, abs=tol)
        assert np.abs((f2 - f_mm) - f_b).max() < 10 * tol * max(1.0, float(np.abs(f_b).max()))


@needs_torchforce
def test_mlp_forces_are_minus_gradient_of_openmm_energy():
    """Central differences of OpenMM's energy along a random direction equal −F·d (Reference, float64)."""
    from openmm_nnbias.systems.azobenzene.openmm_system import azobenzene_openmm_system

    system = azobenzene_openmm_system("gfn1-mlp")
    x = _perturbed("cis", 7)
    d = torch.randn(24, 3, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    d /= d.norm()
    h = 1e-5
    _, f = _openmm_state(system, x, "Reference")
    ep, _ = _openmm_state(system, x + h * d, "Reference")
    em, _ = _openmm_state(system, x - h * d, "Reference")
    assert (ep - em) / (2 * h) == pytest.approx(-float((torch.tensor(f) * d).sum()), rel=1e-5, abs=1e-2)


def test_scripted_mlp_float32_positions(mlp):
    """Single/mixed-precision platforms pass float32 positions: the energy stays float64 and the forces are the
    float64 model's at the rounded positions, returned in float32."""
    from openmm_nnbias.systems.azobenzene.openmm_system import MLPTorchForceModule, script_mlp

    module = script_mlp(mlp)
    x32 = _perturbed("trans", 3).float().requires_grad_(True)
    e = module(x32)
    assert e.dtype == torch.float64 and e.shape == ()
    (g32,) = torch.autograd.grad(e, x32)
    assert g32.dtype == torch.float32
    e_ref, f_ref = _energy_forces_torch(mlp, x32.detach().double())
    assert float(e.detach()) == pytest.approx(e_ref, rel=1e-12)
    assert _rel(-g32.double().numpy(), f_ref) < 1e-6
    with pytest.raises(TypeError, match="mlp"):
        MLPTorchForceModule(torch.nn.Linear(2, 2))


@needs_torchforce
def test_openmm_system_potential_kinds(tmp_path):
    """A saved AzobenzeneMLP file, its checkpoint record and the instance give the same force; bad values fail."""
    from openmm_nnbias.systems.azobenzene.openmm_system import azobenzene_openmm_system

    m = AzobenzeneMLP(hidden=(8,), seed=3)
    path = str(tmp_path / "m.pt")
    m.save(path)
    x = _perturbed("cis", 1)
    e_t, f_t = _energy_forces_torch(m, x)
    for p in (path, potential_spec(path), m):
        e, f = _openmm_state(azobenzene_openmm_system(p), x, "Reference")
        assert e == pytest.approx(e_t, rel=1e-10, abs=1e-8) and _rel(f, f_t) < 1e-9
    with pytest.raises(TypeError, match="^potential"):
        azobenzene_openmm_system(3)
    with pytest.raises(ValueError, match="^potential.*no file"):
        azobenzene_openmm_system(str(tmp_path / "missing.pt"))


def test_potential_spec_values(tmp_path):
    shipped = potential_spec("gfn1-mlp")
    assert shipped["name"] == "gfn1-mlp" and len(shipped["sha256"]) == 64
    assert potential_spec("7net-l3i5") == {"name": "7net-l3i5"}
    # a record of other shipped weights (an older package version) is refused, not silently swapped
    with pytest.raises(ValueError, match="shipped gfn1-mlp weights differ"):
        load_potential(dict(shipped, sha256="0" * 64))
    assert isinstance(load_potential({"name": "gfn1-mlp"}), AzobenzeneMLP)  # records written before the hash
    path = str(tmp_path / "m.pt")
    AzobenzeneMLP(hidden=(4,)).save(path)
    spec = potential_spec(path)
    assert spec["name"] == "mlp-file" and spec["path"] == os.path.abspath(path) and len(spec["sha256"]) == 64
    assert isinstance(load_potential(spec), AzobenzeneMLP)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    (tmp_path / "text.pt").write_text("not a model")
    AzobenzeneMLP(n_atoms=5, hidden=(4,)).save(str(tmp_path / "five.pt"))
    for name, match in (("missing.pt", "no file"), ("other.pt", "not an AzobenzeneMLP"),
                        ("text.pt", "not an AzobenzeneMLP"), ("five.pt", "5 atoms")):
        with pytest.raises(ValueError, match=f"^potential.*{match}"):
            potential_spec(str(tmp_path / name))
    AzobenzeneMLP(hidden=(8,)).save(path)  # the file changed after its record was made
    with pytest.raises(ValueError, match="^potential.*changed"):
        load_potential(spec)


#: The MLP run's defaults shrunk for the smoke tests (the setup's 4 x 600 well steps and 300 minimize steps).
SMALL = {"adjoint_steps": 5, "well_replicas": 2, "well_steps": 60, "minimize_steps": 30}


@pytest.fixture
def small_mlp_defaults(monkeypatch):
    import openmm_nnbias.recipes.diffsim.azobenzene as azo

    for k, v in SMALL.items():
        monkeypatch.setitem(azo.AZOBENZENE_MLP_CLI, k, v)


def _cli(out, *extra):
    return main(["diffsim", "--system", "azobenzene", "--replicas", "2", "--steps", "20", "--stages", "300:3e-3:1",
                 "--out", str(out), "--no-progress", *extra])


def test_cli_gfn1_mlp_smoke_and_restart_on_another_potential_refused(tmp_path, capsys, small_mlp_defaults):
    sevenn_before = "sevenn" in sys.modules
    out = tmp_path / "mlp"
    assert _cli(out, "--potential", "gfn1-mlp") == 0
    assert sevenn_before or "sevenn" not in sys.modules  # SevenNet is not imported for the MLP
    for name in ("bias.pt", "checkpoint.pt", "diffsim.log"):
        assert os.path.exists(out / name)
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    cli = state["cli"]
    assert cli["potential"] == potential_spec("gfn1-mlp") and cli["setup_kwargs"]["dtype"] == "torch.float64"
    assert cli["setup_kwargs"]["timestep"] == "0.0005" and state["config"]["n_replicas"] == 2
    assert len(open(out / "diffsim.log").read().splitlines()) == 2
    capsys.readouterr()
    assert _cli(out, "--restart", "--potential", "7net-0") == 2
    err = capsys.readouterr().err
    assert "--restart: the checkpoint was trained with potential 'gfn1-mlp' (weights sha256 " in err and "), not '7net-0'" in err
    path = str(tmp_path / "m.pt")
    AzobenzeneMLP(hidden=(4,)).save(path)
    assert _cli(out, "--restart", "--potential", path) == 2
    assert "--restart: the checkpoint was trained with potential 'gfn1-mlp' (weights sha256 " in capsys.readouterr().err
    # the same potential continues (one more epoch of an extended stage)
    assert main(["diffsim", "--system", "azobenzene", "--replicas", "2", "--steps", "20", "--stages", "300:3e-3:2",
                 "--out", str(out), "--no-progress", "--restart", "--potential", "gfn1-mlp"]) == 0
    assert len(open(out / "diffsim.log").read().splitlines()) == 3
    # a checkpoint written before --potential existed was trained on SevenNet-0
    del state["cli"]["potential"]
    torch.save(state, out / "checkpoint.pt")
    assert _cli(out, "--restart", "--potential", "gfn1-mlp") == 2
    assert "potential '7net-0', not 'gfn1-mlp'" in capsys.readouterr().err


def test_cli_mlp_file_potential_recorded(tmp_path, small_mlp_defaults):
    path = str(tmp_path / "m.pt")
    AzobenzeneMLP.pretrained().save(path)
    setup = run_diffsim("azobenzene", str(tmp_path / "f"), replicas=2, steps=20, stages="300:3e-3:1",
                        progress=False, potential=path)
    assert setup.info["potential"] == "AzobenzeneMLP" and setup.trainer.dtype == torch.float64
    rec = torch.load(tmp_path / "f" / "checkpoint.pt", weights_only=False)["cli"]["potential"]
    assert rec == potential_spec(path) and rec["path"] == os.path.abspath(path)
    AzobenzeneMLP(hidden=(4,)).save(path)  # another model under the same name: refused
    with pytest.raises(ValueError, match="^restart: the checkpoint was trained with potential .*m.pt"):
        run_diffsim("azobenzene", str(tmp_path / "f"), replicas=2, steps=20, stages="300:3e-3:1", restart=True,
                    progress=False, potential=path)


def test_cli_bad_potential_values(tmp_path, capsys):
    torch.save([1, 2], tmp_path / "list.pt")
    for value, match in ((str(tmp_path / "none.pt"), "no file"), (str(tmp_path / "list.pt"), "not an AzobenzeneMLP")):
        assert _cli(tmp_path / "o", "--potential", value) == 2
        err = capsys.readouterr().err
        assert "--potential" in err and match in err
        assert err.count("\n") == 1  # one message, no traceback
    assert main(["diffsim", "--system", "mueller-brown", "--epochs", "1", "--potential", "gfn1-mlp",
                 "--out", str(tmp_path / "o")]) == 2
    assert "--potential is only for the azobenzene system" in capsys.readouterr().err
    with pytest.raises(TypeError, match="^potential"):
        run_diffsim("azobenzene", str(tmp_path / "o"), potential=3)
    assert not os.path.exists(tmp_path / "o")


def test_per_potential_defaults_table():
    """The MLP defaults are azobenzene_setup's own; SevenNet keeps AZOBENZENE_CLI; --help lists them all."""
    import inspect

    import openmm_nnbias.recipes.diffsim.azobenzene as azo
    import openmm_nnbias.runners.diffsim as run
    from openmm_nnbias.recipes.diffsim.azobenzene import azobenzene_setup

    params = inspect.signature(azobenzene_setup).parameters
    for k, v in azo.AZOBENZENE_MLP_CLI.items():
        default = params[k].default
        assert (str(default).replace("torch.", "") if k == "dtype" else default) == v, k
    assert set(azo.AZOBENZENE_DEFAULTS) == {"7net-0", "7net-l3i5", "gfn1-mlp", "mlp-file"}
    assert azo.AZOBENZENE_DEFAULTS["7net-l3i5"]["settings"] is azo.AZOBENZENE_CLI
    kw, replicas, steps = run._system_kwargs("azobenzene", {}, None, None, {"name": "7net-l3i5"})
    assert (kw["dtype"], kw["timestep"], replicas, steps) == (torch.float32, 0.001, 2, 150)
    kw, replicas, steps = run._system_kwargs("azobenzene", {}, None, 7, {"name": "mlp-file"})
    assert (kw["dtype"], kw["adjoint_steps"], replicas, steps) == (torch.float64, 190, 16, 7)
    text = azo.azobenzene_defaults_help()
    for piece in ("7net-0/7net-l3i5: float32", "gfn1-mlp/PATH: float64", "16 replicas", "stages 300:3e-3:8,1000:3e-4:4"):
        assert piece in text


@pytest.mark.long  # scripts SevenNet-0 twice (~1 min of CPU)
@pytest.mark.skipif(importlib.util.find_spec("sevenn") is None or not HAS_TORCHFORCE,
                    reason="needs sevenn (pip install 'openmm_nnbias[sevenn]') and openmm-torch")
def test_openmm_system_7net_0_is_the_sevennet_system():
    from openmm_nnbias.systems.azobenzene import openmm_system as azobenzene_openmm, sevennet_openmm

    x = _perturbed("trans", 4)
    e_new, f_new = _openmm_state(azobenzene_openmm.azobenzene_openmm_system("7net-0"), x, "Reference")
    e_old, f_old = _openmm_state(sevennet_openmm.azobenzene_openmm_system(), x, "Reference")
    assert e_new == pytest.approx(e_old, abs=1e-6) and _rel(f_new, f_old) < 1e-7


def test_new_runs_default_to_the_shipped_mlp_old_checkpoints_to_sevennet():
    import openmm_nnbias.recipes.diffsim.azobenzene as azo
    import openmm_nnbias.runners.diffsim as run

    spec, _ = run._potential("azobenzene", None, {})
    assert spec["name"] == "gfn1-mlp" == azo.AZOBENZENE_DEFAULT_POTENTIAL
    assert azo.AZOBENZENE_LEGACY_POTENTIAL == "7net-0"
    with pytest.raises(ValueError, match="potential '7net-0', not 'gfn1-mlp'"):
        run._check_restart_potential({"setup_kwargs": {}}, {"system": "azobenzene", "potential": spec})
