"""OpenMM platform selection with a clear error for unknown names."""

__all__ = ["available_platforms", "get_platform", "platform_failure", "working_platforms", "torch_force_failure"]


def available_platforms() -> list:
    """Names of the OpenMM platforms that can be used on this machine."""
    import openmm as mm

    return [mm.Platform.getPlatform(i).getName() for i in range(mm.Platform.getNumPlatforms())]


def get_platform(name: str = None):
    """Return ``openmm.Platform`` by name (``None``: the fastest available one).

    Examples
    --------
    >>> get_platform("Reference").getName()
    'Reference'
    """
    import openmm as mm

    names = available_platforms()
    if name is None:
        return max((mm.Platform.getPlatformByName(n) for n in names), key=lambda p: p.getSpeed())
    if name not in names:
        raise ValueError(f"unknown OpenMM platform {name!r}; available here: {names}")
    return mm.Platform.getPlatformByName(name)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def platform_failure(name: str, properties: dict = None):
    """Why a 2-particle Context does not run on platform ``name`` (None: it runs).

    A platform can load and still fail here (no device, driver or runtime library missing).
    """
    import openmm as mm

    try:
        system = mm.System()
        for _ in range(2):
            system.addParticle(1.0)
        bond = mm.HarmonicBondForce()
        bond.addBond(0, 1, 0.1, 100.0)
        system.addForce(bond)
        ctx = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName(name),
                         properties or {})
        ctx.setPositions([[0, 0, 0], [0.2, 0, 0]])
        energy = ctx.getState(getEnergy=True, getForces=True).getPotentialEnergy().value_in_unit(mm.unit.kilojoule_per_mole)
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable here"
        return _first_line(exc)
    return None if abs(energy - 0.5) < 1e-4 else f"wrong probe energy {energy} (expected 0.5)"


def working_platforms() -> tuple:
    """``(names, failures)``: the platforms whose Context runs here, in OpenMM's order, and
    ``{name: reason}`` for those that load but do not run.

    Examples
    --------
    >>> names, failures = working_platforms()
    >>> "Reference" in names
    True
    """
    names, failures = [], {}
    for name in available_platforms():
        why = platform_failure(name)
        if why is None:
            names.append(name)
        else:
            failures[name] = why
    return names, failures


def torch_force_failure(name: str, properties: dict = None, isolated: bool = False, timeout_s: float = 120.0):
    """Why openmm-torch's ``TorchForce`` does not run on platform ``name`` (None: it runs).

    ``isolated=True`` probes in a child process (an openmm-torch plugin built against another torch
    can crash the process, not only raise); a crash or a hang is then the reason returned.
    """
    if isolated:
        return _isolated_torch_force_failure(name, properties, timeout_s)
    import torch  # before openmm: openmm loads the openmm-torch plugins at import, and they need libtorch

    import openmm as mm

    try:
        from .bias.plugins import import_torch_force

        class Square(torch.nn.Module):
            def forward(self, positions):
                return (positions ** 2).sum()

        system = mm.System()
        system.addParticle(1.0)
        system.addForce(import_torch_force()(torch.jit.script(Square())))
        ctx = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName(name),
                         properties or {})
        ctx.setPositions([[0.1, 0.2, 0.3]])
        energy = ctx.getState(getEnergy=True, getForces=True).getPotentialEnergy().value_in_unit(mm.unit.kilojoule_per_mole)
    except Exception as exc:  # noqa: BLE001
        plugin = "OpenMMTorch" + ("Reference" if name in ("Reference", "CPU") else name)
        loads = [f for f in mm.Platform.getPluginLoadFailures() if plugin in f]
        return _first_line(exc) + (f" ({loads[0]})" if loads else "")
    return None if abs(energy - 0.14) < 1e-4 else f"wrong probe energy {energy} (expected 0.14)"


def _isolated_torch_force_failure(name: str, properties: dict, timeout_s: float):
    import json
    import subprocess
    import sys

    code = ("import json, sys, torch; from openmm_nnbias.platforms import torch_force_failure; "
            "print(json.dumps(torch_force_failure(sys.argv[1], json.loads(sys.argv[2]))))")
    try:
        proc = subprocess.run([sys.executable, "-c", code, name, json.dumps(properties or {})],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"the probe hung (> {timeout_s:.0f} s)"
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [""])[-1]
        return f"the probe process died (exit code {proc.returncode}) {tail}".strip()
    return json.loads(proc.stdout.strip().splitlines()[-1])
