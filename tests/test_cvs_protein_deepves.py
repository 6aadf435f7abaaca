"""Deep-VES over protein CVs (RMSD, radius of gyration) with the torch backend: a short learning run."""

import openmm as mm
import torch
from openmm import app, unit

from openmm_nnbias.cvs import RMSD, CVSet, RadiusOfGyration


def test_deepves_short_run_with_rmsd(tmp_path):
    from openmm_nnbias.bias import NeuralBias, NeuralBiasForce
    from openmm_nnbias.systems import alanine_dipeptide
    from openmm_nnbias.ves import DeepVESUpdater, ScheduleOptions, OutputOptions, WellTempered

    from _devices import DEFAULT_PLATFORM, platform_properties

    pep = alanine_dipeptide()
    heavy = [a.index for a in pep.topology.atoms() if a.element.symbol != "H"]
    x0 = pep.positions.value_in_unit(unit.nanometer)
    cvs = CVSet([RMSD(heavy, x0, upper=0.4), RadiusOfGyration(heavy, upper=0.5)])
    bias = NeuralBias.from_cvs(cvs, seed=0, hidden=(8, 4))
    force = NeuralBiasForce(cvs, bias, backend="torch")
    force.addToSystem(pep.system)
    integ = mm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 2 * unit.femtosecond)
    integ.setRandomNumberSeed(1)
    sim = app.Simulation(pep.topology, pep.system, integ, mm.Platform.getPlatformByName(DEFAULT_PLATFORM),
                         platform_properties(DEFAULT_PLATFORM, threads=1))
    sim.context.setPositions(pep.positions)
    before = [p.detach().clone() for p in bias.parameters()]
    updater = DeepVESUpdater(force, 300 * unit.kelvin, target=WellTempered(5.0, bins=20), stride=40, sampleStride=4,
                             schedule=ScheduleOptions(tauKL=5, tauDecay=5), outputs=OutputOptions(str(tmp_path / "run")))
    sim.reporters.append(updater)
    sim.step(40 * 6)
    updater.finish()
    assert len(updater.history) >= 5
    assert any(not torch.equal(a, b) for a, b in zip(before, bias.parameters()))  # it learned
    # the bias energy in the Context is the network at the CVs of the current positions
    x = torch.as_tensor(sim.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    expected = float(bias(cvs(x).unsqueeze(0)).detach())
    assert abs(force.getBiasEnergy(sim).value_in_unit(unit.kilojoule_per_mole) - expected) < 1e-3
    assert open(tmp_path / "run" / "colvar").readline().split()[2:5] == ["time", "rmsd", "radius_of_gyration"]
