import numpy as np
import pytest
import torch  # noqa: F401  (torch before openmmtorch)


@pytest.fixture(scope="session")
def dipeptide():
    from openmm_nnbias.systems import alanine_dipeptide

    return alanine_dipeptide()


@pytest.fixture(scope="session")
def dipeptide_frames(dipeptide):
    """20 thermally scrambled alanine-dipeptide frames (nm), from 600 K Langevin MD."""
    import openmm as mm
    from openmm import unit

    integ = mm.LangevinMiddleIntegrator(600 * unit.kelvin, 5 / unit.picosecond, 0.002 * unit.picosecond)
    integ.setRandomNumberSeed(11)
    ctx = mm.Context(dipeptide.system, integ, mm.Platform.getPlatformByName("CPU"))
    ctx.setPositions(dipeptide.positions)
    ctx.setVelocitiesToTemperature(600 * unit.kelvin, 5)
    frames = []
    for _ in range(20):
        integ.step(100)
        frames.append(ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    return np.array(frames)


def platforms():
    return ["Reference", "CPU"]
