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


def _platforms():
    try:
        from openmm_nnbias.platforms import working_platforms

        names, failures = working_platforms()
    except ImportError as exc:  # a torch-only machine: the OpenMM test files are not run there
        return [], {"(openmm)": f"not importable: {exc}"}
    wanted = [w.strip() for w in os.environ.get("OPENMM_NNBIAS_TEST_PLATFORMS", "").split(",") if w.strip()]
    return [n for n in names if not wanted or n in wanted], failures


PLATFORMS, PLATFORM_FAILURES = _platforms()
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
    from openmm_nnbias.platforms import torch_force_failure as failure

    # GPU plugins of an openmm-torch built for another torch may crash: probe those in a child process
    return failure(platform, platform_properties(platform), isolated=platform not in ("Reference", "CPU"))


def require_torch_force(platform: str) -> None:
    """Skip (with the reason) where openmm-torch does not run on ``platform``."""
    reason = torch_force_failure(platform)
    if reason is not None:
        pytest.skip(f"openmm-torch TorchForce does not run on {platform} here: {reason}")
