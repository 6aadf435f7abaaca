"""Helpers of ``benchmarks/gpu_bench.py``: devices and platforms present, timing, per-part figure files."""

from __future__ import annotations

import json
import os
import statistics
import time

import torch

GPU_PLATFORMS = ("CUDA", "OpenCL", "HIP", "Metal")

def devices() -> list:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def not_run(reason: str) -> str:
    return f"not run: {reason}"


def openmm_platforms() -> tuple:
    """(names of the platforms that run a tiny Context, {name: why not}, plugin load failures)."""
    import openmm as mm

    from openmm_nnbias.platforms import working_platforms

    names, failures = working_platforms()
    return names, failures, list(mm.Platform.getPluginLoadFailures())


def md_platforms(quick: bool) -> tuple:
    """(platforms for the OpenMM parts, reason when none): the GPU ones; with --quick the CPU too."""
    try:
        names = openmm_platforms()[0]
    except ImportError as exc:
        return [], f"openmm not importable ({exc})"
    chosen = [n for n in names if n in GPU_PLATFORMS]
    if quick and "CPU" in names:
        chosen.append("CPU")
    return chosen, (None if chosen else "no OpenMM GPU platform runs here")


def platform_properties(name: str) -> dict:
    return {"Precision": "mixed"} if name in ("CUDA", "OpenCL", "HIP") else {}


_TORCH_FORCE = {}
RESULTS = {"dir": None, "part": None}


class LiveFigures(dict):
    """A part's figures, saved to its JSON at every new figure: a part stopped by its time limit
    keeps what it had measured."""

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        if RESULTS["dir"] and RESULTS["part"]:
            with open(os.path.join(RESULTS["dir"], f"{RESULTS['part']}.json"), "w") as fh:
                json.dump({"figures": dict(self), "notes": ["partial: the part stopped before its end"]}, fh,
                          indent=1)

    def update(self, other):
        for key, value in dict(other).items():
            self[key] = value


def torch_force_runs(platform: str):
    """None if openmm-torch's TorchForce runs on ``platform``, else the reason: probed once (GPU
    platforms in a child process, as a plugin built for another torch may crash rather than raise)
    and reused from the ``env`` part's JSON by the later parts."""
    from openmm_nnbias.platforms import torch_force_failure

    env = os.path.join(RESULTS["dir"] or "", "env.json")
    if platform not in _TORCH_FORCE and RESULTS["dir"] and os.path.exists(env):
        with open(env) as fh:
            seen = json.load(fh)["figures"].get(f"openmm-torch on {platform}")
        if seen is not None:
            _TORCH_FORCE[platform] = None if seen == "runs" else seen[len("not run: "):]
    if platform not in _TORCH_FORCE:
        _TORCH_FORCE[platform] = torch_force_failure(platform, platform_properties(platform),
                                                     isolated=platform not in ("Reference", "CPU"))
    return _TORCH_FORCE[platform]


def median_ms(fn, device: str, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)
