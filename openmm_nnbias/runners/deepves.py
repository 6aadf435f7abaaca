"""Deep-VES on an embedded system with its recipe (:mod:`openmm_nnbias.recipes`): one call builds it all."""

from __future__ import annotations

from typing import Optional

__all__ = ["build_deepves", "assemble_deepves", "mts_strides", "updater_default"]

_TETRA = ("mcPoints", "recrossings", "decayAfter")  # overrides for tetrapeptide_options, not the updater


def updater_default(name: str):
    """The default of the keyword ``name`` of :class:`~openmm_nnbias.ves.DeepVESUpdater` (e.g. ``sampleStride``)."""
    import inspect

    from ..ves.updater import DeepVESUpdater

    return inspect.signature(DeepVESUpdater).parameters[name].default


def mts_strides(stride: int, sample_stride: int, mts: int) -> tuple:
    """Strides in outer steps for ``mts`` inner steps per outer step: the same simulated time per iteration.

    The iteration is ``round(stride / mts)`` outer steps (exactly ``stride`` inner steps when
    ``mts`` divides it, so τ_KL and τ_decay keep their meaning in ps); the sample stride is the
    divisor of it closest (in ratio) to ``sample_stride / mts``, as the updater needs whole
    samples per iteration.

    Examples
    --------
    >>> mts_strides(500, 10, 2), mts_strides(500, 10, 4), mts_strides(100, 10, 4)
    ((250, 5), (125, 5), (25, 5))
    """
    import math

    outer = max(1, int(round(stride / mts)))
    target = max(1.0, sample_stride / mts)
    divisors = [d for d in range(1, outer + 1) if outer % d == 0]
    return outer, min(divisors, key=lambda d: (abs(math.log(d / target)), d))


def build_deepves(system_name: str, out: Optional[str] = None, backend: Optional[str] = None,
                  platform: Optional[str] = None, threads: int = 1, seed: int = 1, biasFactor: Optional[float] = None,
                  sampleStride: Optional[int] = None, overrides: Optional[dict] = None, mode: str = "sync", group=None,
                  mts: Optional[int] = None, temperature: Optional[float] = None, timestep: Optional[float] = None,
                  preset: Optional[str] = None):
    """Build ``(simulation, updater, timestep_ps)`` for an embedded system with its recipe's settings.

    Parameters
    ----------
    system_name : str
        A key of :data:`~openmm_nnbias.recipes.DEEPVES_RECIPES`.
    out : str, optional
        Output folder of the updater (None: no files).
    backend, platform : str, optional
        Bias force backend and OpenMM platform (default: the recipe's).
    threads : int
        CPU platform threads.
    seed : int
        Seed of the network, the MD and the Monte Carlo target.
    biasFactor : float, optional
        Well-tempered target bias factor (default: the recipe's, 10 but silicon 100).
    sampleStride : int, optional
        MD steps between CV samples (default: the recipe's ``sampleStride`` option, else
        :class:`~openmm_nnbias.ves.DeepVESUpdater`'s).
    overrides : dict, optional
        Recipe options replacing the recipe's (None values ignored): updater keywords and ``bins``;
        for alanine-tetrapeptide also ``mcPoints``, ``recrossings``, ``decayAfter`` (ps).
    mode : str
        Execution mode of the updater: ``"sync"``, ``"thread"`` or ``"process"``
        (:class:`~openmm_nnbias.ves.options.ExecutionOptions`).
    group : WalkerGroup, optional
        With a :class:`~openmm_nnbias.ves.walkers.WalkerGroup`, walker k uses the MD seed
        ``seed + k``, starts from walker 0's network and shares the bias with the other walkers.
    mts : int, optional
        Default: the recipe's (1; silicon 2). K > 1: the bias is evaluated every K inner steps (``MTSLangevinIntegrator``,
        :mod:`openmm_nnbias.bias.mts`); one MD step is then K inner steps, ``timestep_ps`` the
        outer step, and stride/sampleStride are divided by K (rounded, ≈ the same simulated time).
    temperature, timestep : float, optional
        K and ps; default: the recipe's.
    preset : str, optional
        A named set of the recipe's options (:attr:`DeepVESRecipe.presets
        <openmm_nnbias.recipes.DeepVESRecipe.presets>`, e.g. ``"paper"``) in place of its defaults;
        ``overrides`` still win.

    Returns
    -------
    tuple
        ``(openmm.app.Simulation, DeepVESUpdater, float)``, the last the MD step in ps.

    Raises
    ------
    ValueError
        Unknown system or preset, ``mts`` < 1, or tetrapeptide options for another system.

    Examples
    --------
    >>> build_deepves("alanine-dipeptide", mts=0)
    Traceback (most recent call last):
    ...
    ValueError: mts must be an integer >= 1 (inner steps per bias evaluation), got 0
    """
    import torch

    from ..platforms import get_platform
    from ..recipes import get_recipe, get_system

    recipe = get_recipe(system_name)
    mts, temperature, timestep = _md_settings(recipe, mts, temperature, timestep)
    biasFactor = recipe.biasFactor if biasFactor is None else biasFactor
    overrides = {**(recipe.presetOptions(preset) if preset is not None else {}),
                 **{k: v for k, v in (overrides or {}).items() if v is not None}}
    opts = dict(recipe.options)
    opts.update({k: v for k, v in overrides.items() if v is not None and k not in _TETRA})
    recipe_sample = opts.pop("sampleStride", updater_default("sampleStride"))
    sampleStride = recipe_sample if sampleStride is None else sampleStride
    if mts > 1:  # strides in outer steps, ~ the same simulated time per iteration
        opts["stride"], sampleStride = mts_strides(opts["stride"], sampleStride, mts)
    tetra = {k: overrides.get(k) for k in _TETRA}
    if not recipe.tetrapeptide and any(v is not None for v in tetra.values()):
        raise ValueError("mcPoints, recrossings and decayAfter apply to alanine-tetrapeptide only, "
                         f"not {system_name!r}")
    plat = get_platform(platform or recipe.platform)
    torch.manual_seed(seed)
    built = get_system(system_name) if recipe.builder is None else recipe.builder(seed)
    cvs = recipe.buildCVs(built)
    target, decay = _target_and_decay(recipe, opts, tetra, seed, biasFactor, opts["stride"] * mts * timestep)
    return assemble_deepves(built.topology, built.system, built.positions, cvs, temperature=temperature,
                            timestep=timestep, friction=recipe.friction,
                            platform=plat, threads=threads, seed=seed, target=target, decay=decay,
                            sampleStride=sampleStride, options=opts, backend=backend or recipe.backend, out=out,
                            mode=mode, group=group, mts=mts)


def _md_settings(recipe, mts, temperature, timestep) -> tuple:
    """``(mts, temperature, timestep)`` checked, the recipe's where None."""
    mts = recipe.mts if mts is None else mts
    if isinstance(mts, bool) or not isinstance(mts, int) or mts < 1:
        raise ValueError(f"mts must be an integer >= 1 (inner steps per bias evaluation), got {mts!r}")
    temperature = recipe.temperature if temperature is None else temperature
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"temperature must be > 0 K, got {temperature!r}")
    if timestep is not None and not (isinstance(timestep, (int, float)) and timestep > 0):
        raise ValueError(f"timestep must be > 0 ps, got {timestep!r}")
    return mts, temperature, recipe.timestep if timestep is None else timestep


def _target_and_decay(recipe, opts: dict, tetra: dict, seed: int, biasFactor: float, iteration_ps: float) -> tuple:
    """The target and decay trigger of a recipe; pops ``klThreshold`` and ``bins`` from ``opts``."""
    from ..recipes import tetrapeptide_options
    from ..ves import KLThreshold, WellTempered

    kl = opts.pop("klThreshold", 0.5)
    bins = opts.pop("bins", 50)
    if not recipe.tetrapeptide:
        return WellTempered(biasFactor, bins=bins), KLThreshold(kl)
    decay_after = tetra["decayAfter"]
    if decay_after is None and tetra["recrossings"] != 0:  # recrossings 0 alone: marginal KL, no minimum time
        decay_after = recipe.tetrapeptide["decayAfter"]
    choice = tetrapeptide_options(tetra["mcPoints"], tetra["recrossings"], seed=seed, decayAfter=decay_after,
                                  iteration_ps=iteration_ps, biasFactor=biasFactor, klThreshold=kl)
    return choice["target"], choice["decay"]


def assemble_deepves(topology, system, positions, cvs, *, temperature: float, timestep: float, friction: float,
                     platform, threads: int, seed: int, target, decay, sampleStride: int, options: dict,
                     backend: str = "table", out: Optional[str] = None, mode: str = "sync", group=None,
                     mts: int = 1, box=None, velocities=None):
    """Bias, force, integrator, ``Simulation`` and updater for a System and its CVs (shared by the builders).

    Parameters
    ----------
    topology, system : openmm.app.Topology, openmm.System
        The System gets the bias force (added last); a barostat in it is set to ``temperature``.
    positions : Quantity or array
        Positions (nm).
    cvs : CVSet
        The biased CVs.
    temperature, timestep, friction : float
        K, ps (the inner step with ``mts`` > 1) and 1/ps of the ``LangevinMiddleIntegrator``.
    platform : openmm.Platform
    threads, seed : int
        CPU platform threads; seed of the network and the MD (walker k: ``seed + k``).
    target, decay
        A target choice (:mod:`openmm_nnbias.ves.targets`) and a decay trigger.
    sampleStride : int
        MD steps between samples.
    options : dict
        ``stride``, ``hidden`` and optional ``activation``, schedule, output and execution keywords;
        ValueError for any other key.
    backend : str
    out : str, optional
        Output folder (created by the updater, i.e. last).
    mode : str
        Execution mode: ``"sync"``, ``"thread"`` or ``"process"``.
    group : WalkerGroup, optional
    mts : int
        Inner steps per bias evaluation (MTSLangevinIntegrator when > 1).
    box, velocities : optional
        Periodic box vectors (nm) and velocities (nm/ps) to start from (default: the System's box,
        velocities drawn at ``temperature``).

    Returns
    -------
    tuple
        ``(Simulation, DeepVESUpdater, timestep_ps)``, the last the MD step in ps (× ``mts``).
    """
    from openmm import unit

    from ..bias import NeuralBias, NeuralBiasForce

    opts = dict(options)
    bias = NeuralBias.from_cvs(cvs, hidden=opts.pop("hidden"), activation=opts.pop("activation", "relu"), seed=seed)
    if group is not None:  # identical initial network before the force is built; own MD seed
        group.broadcast_parameters(bias.parameters())
        seed = seed + group.rank
    force = NeuralBiasForce(cvs, bias, backend=backend)
    force.addToSystem(system)
    for f in system.getForces():
        if "Barostat" in type(f).__name__ and hasattr(f, "setDefaultTemperature"):
            f.setDefaultTemperature(temperature * unit.kelvin)
    sim, dt = _simulation(topology, system, force, temperature, timestep, friction, platform, threads, seed, mts)
    if box is not None:
        sim.context.setPeriodicBoxVectors(*box)
    sim.context.setPositions(positions)
    if velocities is None:
        sim.context.setVelocitiesToTemperature(temperature * unit.kelvin, seed)
    else:
        sim.context.setVelocities(velocities)
    updater = _updater(force, temperature, opts, target=target, decay=decay, sampleStride=sampleStride, out=out,
                       mode=mode, group=group)
    sim.reporters.append(updater)
    return sim, updater, dt


def _simulation(topology, system, force, temperature, timestep, friction, platform, threads, seed, mts) -> tuple:
    """``(Simulation, MD step in ps)``: Langevin middle, or MTS Langevin with the bias every ``mts`` steps."""
    import openmm as mm
    from openmm import app, unit

    kelvin = temperature * unit.kelvin
    dt, gamma = timestep * unit.picosecond, friction / unit.picosecond
    if mts > 1:
        from ..bias.mts import mts_langevin_integrator

        integ = mts_langevin_integrator(kelvin, gamma, dt, force, mts, system)
        dt = dt * mts
    else:
        integ = mm.LangevinMiddleIntegrator(kelvin, gamma, dt)
    integ.setRandomNumberSeed(seed)
    props = {"Threads": str(threads)} if platform.getName() == "CPU" else {}
    return app.Simulation(topology, system, integ, platform, props), dt.value_in_unit(unit.picosecond)


def _updater(force, temperature: float, opts: dict, *, target, decay, sampleStride: int, out, mode, group):
    """The (walker) Deep-VES updater of ``force`` with the options ``opts`` (ValueError for unknown ones)."""
    from openmm import unit

    from ..ves import DeepVESUpdater
    from ..ves.options import grouped_options

    opts = dict(opts)
    stride = opts.pop("stride")
    schedule, outputs, execution = grouped_options(opts, folder=out, decay=decay,
                                                   mode="sync" if mode is None else mode)
    if opts:
        raise ValueError(f"unknown Deep-VES option(s) {sorted(opts)}")
    grouped = dict(target=target, stride=stride, sampleStride=sampleStride, schedule=schedule, outputs=outputs,
                   execution=execution)
    if group is None:
        return DeepVESUpdater(force, temperature * unit.kelvin, **grouped)
    from ..ves.walkers import WalkerDeepVESUpdater

    return WalkerDeepVESUpdater(force, temperature * unit.kelvin, group, **grouped)
