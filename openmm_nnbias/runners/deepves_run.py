"""``openmm-nnbias deepves``: Deep-VES on an embedded system (:func:`openmm_nnbias.runners.build_deepves`)
or on your own from an input file (:func:`openmm_nnbias.runners.userinput.build_input_deepves`) with a progress bar, a final checkpoint and multiple walkers."""

import math
import os
import time

__all__ = ["run_deepves", "run_deepves_walkers"]


def run_deepves(system_name, out: str, steps: int, restart: bool = False, progress: bool = True,
                **kwargs):
    """Run Deep-VES for ``steps`` MD steps in total (continuing a checkpoint with ``restart``).

    ``system_name``: an embedded system (:func:`~openmm_nnbias.runners.build_deepves`) or a
    :class:`~openmm_nnbias.runners.inputfile.RunInput` (:func:`~openmm_nnbias.runners.userinput.build_input_deepves`);
    ``kwargs`` go to the builder.
    """
    from tqdm import tqdm

    from .deepves import build_deepves
    from .userinput import build_input_deepves

    build = build_deepves if isinstance(system_name, str) else build_input_deepves
    sim, updater, dt = build(system_name, out=out, **kwargs)
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
    partial = sim.currentStep % updater.stride
    if partial:  # say so: the samples of an unfinished iteration are neither written nor checkpointed
        import warnings

        warnings.warn(f"the run ended {partial} MD steps into an iteration of {updater.stride} steps: colvar "
                      f"ends at step {sim.currentStep - partial} ({(sim.currentStep - partial) * dt:g} ps) and no "
                      f"final checkpoint was written (a restart continues from the last interval checkpoint); "
                      f"choose a run length (steps) that is a multiple of {updater.stride * dt:g} ps", stacklevel=2)
    else:
        updater.saveCheckpoint(checkpoint, sim)
    updater.close()
    return sim, updater


def run_deepves_walkers(walkers: int, system_name, out: str, steps: int, restart: bool = False,
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
    checkpoint = os.path.join(out, "checkpoint.pt")
    if restart and not os.path.exists(checkpoint):  # before anything is created
        raise ValueError(f"restart: checkpoint {checkpoint!r} does not exist")
    if walkers < 1:
        raise ValueError(f"walkers must be >= 1, got {walkers}")
    if world and walkers not in (1, world):
        raise ValueError(f"walkers {walkers} but torchrun started {world} processes")
    if (world or walkers > 1) and kwargs.get("mode") == "process":
        raise ValueError("the 'process' mode cannot be combined with multiple walkers; use 'thread'")
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
