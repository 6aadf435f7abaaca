"""Which OpenMM platforms and torch devices the tests run on (found once per session).

``PLATFORMS``: names of the OpenMM platforms that load *and* run a tiny Context here, in
OpenMM's order (Reference, CPU, then CUDA / OpenCL / HIP where present), so that on a GPU
machine the GPU cases of every parametrized test appear by themselves.
``DEVICES``: ``["cpu"]`` plus ``"cuda"`` when torch sees a GPU.
``DEFAULT_PLATFORM``: where the slow physics tests run (CPU where present).

Environment overrides (comma-separated names): ``OPENMM_NNBIAS_TEST_PLATFORMS`` restricts
``PLATFORMS``; ``OPENMM_NNBIAS_TEST_PLATFORM`` sets ``DEFAULT_PLATFORM``.
"""

import functools
import os

import pytest
import torch

GPU_PLATFORMS = ("CUDA", "OpenCL", "HIP", "Metal")


def _probe(platform) -> None:
    """Create a 2-particle Context on ``platform`` and evaluate it (raises if it can't run)."""
    import openmm as mm

    system = mm.System()
    system.addParticle(1.0)
    system.addParticle(1.0)
    bond = mm.HarmonicBondForce()
    bond.addBond(0, 1, 0.1, 100.0)
    system.addForce(bond)
    ctx = mm.Context(system, mm.VerletIntegrator(0.001), platform)
    ctx.setPositions([[0, 0, 0], [0.2, 0, 0]])
    energy = ctx.getState(getEnergy=True).getPotentialEnergy()._value
    del ctx
    if abs(energy - 0.5) > 1e-4:
        raise RuntimeError(f"probe energy {energy} != 0.5")


def _working_platforms():
    try:
        import openmm as mm
    except ImportError as exc:  # a torch-only machine: the OpenMM tests are not collected there
        return [], {"(openmm)": f"not importable: {exc}"}
    names, failures = [], {}
    for i in range(mm.Platform.getNumPlatforms()):
        platform = mm.Platform.getPlatform(i)
        try:
            _probe(platform)
            names.append(platform.getName())
        except Exception as exc:  # noqa: BLE001 - any failure means "not usable here"
            failures[platform.getName()] = str(exc).splitlines()[0] if str(exc) else repr(exc)
    wanted = os.environ.get("OPENMM_NNBIAS_TEST_PLATFORMS")
    if wanted:
        keep = [w.strip() for w in wanted.split(",") if w.strip()]
        names = [n for n in names if n in keep]
    return names, failures


PLATFORMS, PLATFORM_FAILURES = _working_platforms()
DEFAULT_PLATFORM = os.environ.get("OPENMM_NNBIAS_TEST_PLATFORM") or (
    "CPU" if "CPU" in PLATFORMS else (PLATFORMS[0] if PLATFORMS else "Reference"))
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def platform_properties(name: str, threads: int = None, precision: str = "double") -> dict:
    """Context properties for tests: GPU platforms in ``precision`` (double: the float64
    tolerances of the CPU platforms hold), the CPU platform with ``threads`` threads if given."""
    if name == "CPU":
        return {"Threads": str(threads)} if threads else {}
    if name in ("CUDA", "OpenCL", "HIP"):
        return {"Precision": precision}
    return {}


def make_context(system, integrator, platform: str, **properties):
    """``openmm.Context`` on the named platform with :func:`platform_properties`."""
    import openmm as mm

    from openmm_nnbias.platforms import get_platform

    return mm.Context(system, integrator, get_platform(platform), platform_properties(platform, **properties))


@functools.lru_cache(maxsize=None)
def torch_force_failure(platform: str):
    """Why openmm-torch's TorchForce can't run on ``platform`` here (None: it can)."""
    try:
        import openmm as mm

        from openmm_nnbias.bias.backends import import_torch_force

        class Zero(torch.nn.Module):
            def forward(self, positions):
                return (positions ** 2).sum()

        system = mm.System()
        system.addParticle(1.0)
        system.addForce(import_torch_force()(torch.jit.script(Zero())))
        ctx = make_context(system, mm.VerletIntegrator(0.001), platform)
        ctx.setPositions([[0.1, 0.2, 0.3]])
        energy = ctx.getState(getEnergy=True, getForces=True).getPotentialEnergy()._value
        if abs(energy - 0.14) > 1e-5:
            return f"probe energy {energy} != 0.14"
        return None
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def require_torch_force(platform: str) -> None:
    """Skip (with the reason) where openmm-torch does not run on ``platform``."""
    reason = torch_force_failure(platform)
    if reason is not None:
        pytest.skip(f"openmm-torch TorchForce does not run on {platform} here: {reason}")


def require_device(device: str) -> None:
    if device.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("needs CUDA")
