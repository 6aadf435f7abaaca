import numpy as np
import pytest
import torch  # noqa: F401  (torch before openmmtorch)

from _devices import DEFAULT_PLATFORM, DEVICES, PLATFORM_FAILURES, PLATFORMS, make_context


def pytest_report_header(config):
    lines = [f"openmm_nnbias test platforms: {PLATFORMS} (slow tests on {DEFAULT_PLATFORM}); "
             f"torch devices: {DEVICES}"]
    lines += [f"  platform {name} loads but does not run: {why}" for name, why in PLATFORM_FAILURES.items()]
    return lines


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
    ctx = make_context(dipeptide.system, integ, DEFAULT_PLATFORM)
    ctx.setPositions(dipeptide.positions)
    ctx.setVelocitiesToTemperature(600 * unit.kelvin, 5)
    frames = []
    for _ in range(20):
        integ.step(100)
        frames.append(ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    return np.array(frames)



def pytest_collection_modifyitems(config, items):
    """Tests parametrized with the compiled route ``"fused"`` skip where no C++ compiler (or ninja) exists."""
    from openmm_nnbias._ext import compiler_missing

    why = compiler_missing()
    if why is None:
        return
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if any(isinstance(v, str) and v == "fused" for v in params.values()):
            item.add_marker(pytest.mark.skip(reason=f"the fused kernels cannot be compiled here: {why}"))
