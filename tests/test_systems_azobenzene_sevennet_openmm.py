"""SevenNet-0 as an openmm-torch ``TorchForce`` vs :class:`SevenNetEnergy` (energy and forces, Reference platform),
and the exported azobenzene bias attached next to it."""

import importlib.util

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

from openmm_nnbias.systems.azobenzene.molecule import AZOBENZENE_MASSES, AZOBENZENE_NUMBERS, azobenzene_positions  # noqa: E402
from openmm_nnbias.systems.azobenzene.sevennet_openmm import script_sevennet  # noqa: E402

HAS_SEVENN = importlib.util.find_spec("sevenn") is not None
HAS_TORCHFORCE = importlib.util.find_spec("openmmtorch") is not None
needs = pytest.mark.skipif(not (HAS_SEVENN and HAS_TORCHFORCE),
                           reason="needs sevenn (pip install 'openmm_nnbias[sevenn]') and openmm-torch")


def test_script_sevennet_argument_errors():
    with pytest.raises(TypeError, match="atomic_numbers"):
        script_sevennet([6.0, 1.0])
    with pytest.raises(ValueError, match="atomic_numbers"):
        script_sevennet([])
    with pytest.raises(TypeError, match="model"):
        script_sevennet([6, 1], model=7)


def _openmm_state(system, x):
    import openmm
    from openmm import unit

    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(x.numpy())
    st = ctx.getState(getEnergy=True, getForces=True)
    return (st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            np.asarray(st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)))


@needs
def test_torchforce_matches_sevennet_energy_and_forces(tmp_path):
    import openmmtorch  # noqa: F401

    from openmm_nnbias.bias import NeuralBias, export_bias, load_bias
    from openmm_nnbias.systems.azobenzene.sevennet import SevenNetEnergy
    from openmm_nnbias.recipes.diffsim.azobenzene import azobenzene_cvs
    from openmm_nnbias.systems.azobenzene.sevennet_openmm import azobenzene_openmm_system

    system = azobenzene_openmm_system()
    assert system.getNumParticles() == 24 and system.getNumForces() == 1
    assert [system.getParticleMass(i)._value for i in range(3)] == pytest.approx(list(AZOBENZENE_MASSES[:3]))
    U = SevenNetEnergy(AZOBENZENE_NUMBERS, dtype=torch.float64)
    gen = torch.Generator().manual_seed(3)
    for isomer in ("cis", "trans"):
        x = azobenzene_positions(isomer, torch.float64) + 0.003 * torch.randn(24, 3, generator=gen, dtype=torch.float64)
        e_mm, f_mm = _openmm_state(system, x)
        xr = x.clone().requires_grad_(True)
        e = U(xr[None])[0]
        (g,) = torch.autograd.grad(e, xr)
        assert e_mm == pytest.approx(float(e.detach()), abs=0.05)  # kJ/mol of ~ -15 000 (the TorchForce runs in float32)
        assert np.linalg.norm(f_mm + g.numpy()) / np.linalg.norm(g.numpy()) < 1e-4
    # the exported bias (float32, as the azobenzene CLI trains it) attached next to the SevenNet force
    cvs = azobenzene_cvs()
    net = NeuralBias.from_cvs(cvs, hidden=(8,), seed=1, zero_output=False, dtype=torch.float32)
    export_bias(cvs, net, str(tmp_path / "bias.pt"))
    system.addForce(load_bias(str(tmp_path / "bias.pt")))
    e2, f2 = _openmm_state(system, x)
    xr = x.clone().requires_grad_(True)
    b = net(cvs(xr.float()[None]))[0].double()
    (gb,) = torch.autograd.grad(b, xr)
    assert e2 - e_mm == pytest.approx(float(b.detach()), abs=1e-3)
    assert np.abs((f2 - f_mm) + gb.numpy()).max() < 1e-2 * max(1.0, float(gb.abs().max()))
