"""``openmm-nnbias deepves``: Deep-VES on an embedded default system, with a progress bar."""

import math
import os
import time

__all__ = ["build_deepves", "run_deepves", "run_deepves_walkers", "SYSTEM_DEFAULTS"]

# Paper settings (Bonati et al. 2019 and NOTES.md) per embedded system.
SYSTEM_DEFAULTS = {
    "alanine-dipeptide": dict(stride=500, tauKL=10000, tauDecay=1000, gridBins=50, hidden=(48, 24, 12)),
    # tauKL 5 000 rather than the paper's 5·10⁴: see benchmarks/RESULTS.md (Wolfe–Quapp); 100 bins as in the paper
    "wolfe-quapp": dict(stride=500, tauKL=5000, tauDecay=5000, gridBins=100, hidden=(48, 24, 12)),
    # 6 torsions: Monte Carlo target (paper 25 000 points; 10 000 here for the CPU), decay
    # (tauDecay 2 000 as in the paper) started after 10 ns of constant learning rate (paper) and
    # recrossings of the three φ (recrossings 0 and decayAfter 0: marginal KL); decayAfter in ps
    "alanine-tetrapeptide": dict(stride=500, tauKL=10000, tauDecay=2000, gridBins=50, hidden=(96, 48, 24),
                                 klThreshold=0.1, mcPoints=10000, recrossings=4, decayAfter=10000.0),
}


def build_deepves(system_name: str, out: str = None, backend: str = "table", platform: str = None,
                  threads: int = 1, seed: int = 1, biasFactor: float = 10.0, sampleStride: int = 10,
                  overrides: dict = None, asynchronous: bool = False, group=None, mts: int = 1):
    """Build (simulation, updater, timestep_ps) for an embedded system with the paper's settings.

    With a :class:`~openmm_nnbias.ves.walkers.WalkerGroup` ``group``, walker k uses the MD seed
    ``seed + k``, starts from walker 0's network and shares the bias with the other walkers.
    With ``mts`` K > 1 the bias is evaluated every K inner steps (``MTSLangevinIntegrator``,
    :mod:`openmm_nnbias.bias.mts`): one MD step is then K inner steps, ``timestep_ps`` the outer
    step, and stride/sampleStride are divided by K (rounded, ≈ the same simulated time).
    """
    import torch
    import openmm as mm
    from openmm import app, unit

    from ..bias import NeuralBias, NeuralBiasForce
    from ..cvs import CVSet, Position, Torsion
    from ..platforms import get_platform
    from ..systems import get_system
    from ..ves import DeepVESUpdater

    if system_name not in SYSTEM_DEFAULTS:
        raise ValueError(f"deepves supports --system {sorted(SYSTEM_DEFAULTS)}, got {system_name!r}")
    if isinstance(mts, bool) or not isinstance(mts, int) or mts < 1:
        raise ValueError(f"--mts must be an integer >= 1 (inner steps per bias evaluation), got {mts!r}")
    opts = dict(SYSTEM_DEFAULTS[system_name])
    opts.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if mts > 1:  # strides in outer steps, ~ the same simulated time per iteration
        sample_stride = max(1, round(sampleStride / mts))
        opts["stride"] = max(1, round(opts["stride"] / mts / sample_stride)) * sample_stride
        sampleStride = sample_stride
    n_tetra = (opts.pop("mcPoints", None), opts.pop("recrossings", None))
    decay_after = opts.pop("decayAfter", None)
    if n_tetra[1] == 0 and (overrides or {}).get("decayAfter") is None:
        decay_after = None  # --recrossings 0 alone: the marginal-KL threshold, no minimum time
    if system_name != "alanine-tetrapeptide" and (any(v is not None for v in n_tetra) or decay_after is not None):
        raise ValueError("--mc-points, --recrossings and --decay-after apply to alanine-tetrapeptide only")
    if platform is None:  # one particle: the Reference platform is ~100x faster than CPU
        platform = "Reference" if system_name == "wolfe-quapp" else "CPU"
    plat = get_platform(platform)
    torch.manual_seed(seed)
    built = get_system(system_name)
    if system_name == "wolfe-quapp":
        cvs = CVSet([Position(0, "x", -3.0, 3.0)])
        temperature, dt, friction = built.temperature, built.timestep, built.friction
    elif system_name == "alanine-tetrapeptide":
        from .reference_ala4 import tetrapeptide_options

        names = ["phi1", "psi1", "phi2", "psi2", "phi3", "psi3"]
        cvs = CVSet([Torsion(built.torsions[n], n) for n in names])
        temperature, dt, friction = 300 * unit.kelvin, 0.002 * unit.picosecond, 1 / unit.picosecond
        iteration_ps = opts["stride"] * mts * dt.value_in_unit(unit.picosecond)
        opts.update(tetrapeptide_options(*n_tetra, seed=seed, decayAfter=decay_after, iteration_ps=iteration_ps))
    else:
        cvs = CVSet([Torsion(built.torsions["phi"], "phi"), Torsion(built.torsions["psi"], "psi")])
        temperature, dt, friction = 300 * unit.kelvin, 0.002 * unit.picosecond, 1 / unit.picosecond
    bias = NeuralBias.from_cvs(cvs, hidden=opts.pop("hidden"), activation=opts.pop("activation", "relu"), seed=seed)
    if group is not None:  # identical initial network before the force is built; own MD seed
        group.broadcast_parameters(bias.parameters())
        seed = seed + group.rank
    force = NeuralBiasForce(cvs, bias, backend=backend)
    force.addToSystem(built.system)
    if mts > 1:
        from ..bias.mts import mts_langevin_integrator

        integ = mts_langevin_integrator(temperature, friction, dt, force, mts, built.system)
        dt = dt * mts
    else:
        integ = mm.LangevinMiddleIntegrator(temperature, friction, dt)
    integ.setRandomNumberSeed(seed)
    props = {"Threads": str(threads)} if plat.getName() == "CPU" else {}
    sim = app.Simulation(built.topology, built.system, integ, plat, props)
    sim.context.setPositions(built.positions)
    sim.context.setVelocitiesToTemperature(temperature, seed)
    if group is None:
        updater = DeepVESUpdater(force, temperature, biasFactor=biasFactor, sampleStride=sampleStride,
                                 out=out, asynchronous=asynchronous, **opts)
    else:
        from ..ves.walkers import WalkerDeepVESUpdater

        updater = WalkerDeepVESUpdater(force, temperature, group, biasFactor=biasFactor,
                                       sampleStride=sampleStride, out=out, asynchronous=asynchronous, **opts)
    sim.reporters.append(updater)
    return sim, updater, dt.value_in_unit(unit.picosecond)


def run_deepves(system_name: str, out: str, steps: int, restart: bool = False, progress: bool = True,
                **kwargs):
    """Run Deep-VES for ``steps`` MD steps in total (continuing a checkpoint with ``restart``)."""
    from tqdm import tqdm

    sim, updater, dt = build_deepves(system_name, out=out, **kwargs)
    checkpoint = os.path.join(out, "checkpoint.pt")
    if restart:
        updater.loadCheckpoint(checkpoint, sim)
    start = sim.currentStep
    if start >= steps:
        return sim, updater
    chunk = updater.stride * 10
    t0 = time.time()
    with tqdm(total=round(steps * dt, 3), initial=round(start * dt, 3), unit="ps", disable=not progress,
              dynamic_ncols=True) as bar:
        while sim.currentStep < steps:
            n = min(chunk, steps - sim.currentStep)
            sim.step(n)
            bar.update(n * dt)
            elapsed = time.time() - t0
            h = updater.history[-1] if updater.history else {}
            ns_day = (sim.currentStep - start) * dt * 1e-3 / (elapsed / 86400) if elapsed > 0 else math.nan
            bar.set_postfix(ns_day=f"{ns_day:.0f}", kl=f"{h.get('kl', math.nan):.3f}",
                            lr=f"{h.get('lr_next', math.nan):.2e}", phase=h.get("phase", "-"))
    updater.flush()
    updater.writeFes()
    updater.saveCheckpoint(checkpoint, sim) if sim.currentStep % updater.stride == 0 else None
    updater.close()
    return sim, updater


def run_deepves_walkers(walkers: int, system_name: str, out: str, steps: int, restart: bool = False,
                        progress: bool = True, **kwargs) -> None:
    """Run ``walkers`` Deep-VES walkers sharing one bias, ``steps`` MD steps each.

    Under ``torchrun`` (env ``RANK``/``WORLD_SIZE``) this process is one walker; otherwise
    ``walkers`` local processes are spawned (gloo). One walker without torchrun: plain
    :func:`run_deepves`. Walker 0 writes the usual files, walker k > 0 ``colvar.k`` and
    ``checkpoint.k.pt``.
    """
    from ..ves.walkers import WalkerGroup, spawn_walkers, torchrun_world_size

    walkers = int(walkers)
    world = torchrun_world_size()
    if walkers < 1:
        raise ValueError(f"--walkers must be >= 1, got {walkers}")
    if world and walkers not in (1, world):
        raise ValueError(f"--walkers {walkers} but torchrun started {world} processes")
    if (world or walkers > 1) and kwargs.get("asynchronous") == "process":
        raise ValueError("--async process cannot be combined with multiple walkers; use --async (a thread)")
    if world:
        group = WalkerGroup()
        try:
            _walker_main(group, system_name, out, steps, restart, progress, kwargs)
        finally:
            group.close()
    elif walkers == 1:
        run_deepves(system_name, out, steps, restart=restart, progress=progress, **kwargs)
    else:
        spawn_walkers(_walker_main, walkers, args=(system_name, out, steps, restart, progress, kwargs))


def _walker_main(group, system_name, out, steps, restart, progress, kwargs):
    import torch

    torch.set_num_threads(max(1, int(kwargs.get("threads", 1))))
    run_deepves(system_name, out, steps, restart=restart, progress=progress and group.rank == 0,
                group=group, **kwargs)
