"""Train a barrier-crossing bias by differentiable simulation on an embedded system, with restart
(the library side of ``openmm-nnbias diffsim``).

Writes into ``OUT``:

* ``checkpoint.pt`` after every epoch (atomic; ``--restart`` continues from it exactly:
  network, Adam state, random-generator states and history are restored),
* ``diffsim.log``: one line per epoch ``epoch loss success_fraction wall_time_s n_active n_pairs``,
* ``bias.pt`` at the end: the TorchScript bias (positions → kJ/mol, the same kind of file
  Deep-VES writes), attachable with :func:`openmm_nnbias.bias.load_bias`.

The systems and their setups are those of :data:`~openmm_nnbias.recipes.registry.DIFFSIM_SETUPS`; the
azobenzene run's settings per ``--potential`` are :data:`~openmm_nnbias.recipes.diffsim.azobenzene.AZOBENZENE_DEFAULTS`.
"""

from __future__ import annotations

import inspect
import logging
import os
import time

from ..recipes.diffsim.azobenzene import (AZOBENZENE_CLI, AZOBENZENE_DEFAULT_POTENTIAL, AZOBENZENE_DEFAULTS,
                                         AZOBENZENE_LEGACY_POTENTIAL, AZOBENZENE_STAGES)
from ..recipes.registry import DIFFSIM_SETUPS, get_diffsim_setup

logger = logging.getLogger(__name__)

__all__ = ["SYSTEMS", "LOG_HEADER", "LOG_HEADER_STAGES", "build_diffsim", "run_diffsim"]

#: The systems of ``openmm-nnbias diffsim`` (:data:`~openmm_nnbias.recipes.registry.DIFFSIM_SETUPS`).
SYSTEMS = tuple(DIFFSIM_SETUPS)
LOG_HEADER = "# epoch loss success_fraction wall_time_s n_active n_pairs"
#: Log columns of a staged run (``stages``): the stage index, its temperature (K) and learning rate follow.
LOG_HEADER_STAGES = LOG_HEADER + " stage temperature_K lr"


def build_diffsim(system: str, replicas: int = None, steps: int = None, seed: int = 0, **kwargs):
    """Build the :class:`~openmm_nnbias.diffsim.setup.DiffSimSetup` of an embedded system (the system choice of ``openmm-nnbias diffsim``).

    Parameters
    ----------
    system : str
        ``"mueller-brown"``, ``"alanine-dipeptide"``, ``"azobenzene"`` (needs ``sevenn``) or
        ``"mueller-brown-authors"`` (the authors' 2-D setting, both directions; ``replicas`` is then per direction).
    replicas, steps : int, optional
        Replicas per epoch and trajectory length in steps (default: the setup's defaults).
    seed : int, optional
        Seed of the setup and the trainer.
    **kwargs
        Further keyword arguments of the setup function (ignored if it does not take them).

    Returns
    -------
    DiffSimSetup or object with a ``trainer`` attribute

    Raises
    ------
    ValueError
        Unknown system, or ``replicas``/``steps`` < 1.

    Examples
    --------
    >>> from openmm_nnbias.runners.diffsim import build_diffsim
    >>> build_diffsim("argon")
    Traceback (most recent call last):
    ...
    ValueError: system must be one of mueller-brown, alanine-dipeptide, azobenzene, mueller-brown-authors; got 'argon'
    """
    if system not in SYSTEMS:
        raise ValueError(f"system must be one of {', '.join(SYSTEMS)}; got {system!r}")
    for name, v in (("replicas", replicas), ("steps", steps)):
        if v is not None and int(v) < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    fn = get_diffsim_setup(system)
    args = dict(kwargs, seed=int(seed))
    if replicas is not None:
        args["n_replicas"] = int(replicas)
    if steps is not None:
        args["n_steps"] = int(steps)
    params = inspect.signature(fn).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        args = {k: v for k, v in args.items() if k in params}
    return fn(**args)


def _trainer(setup):
    return setup.trainer if hasattr(setup, "trainer") else setup


def _save_checkpoint(path: str, trainer, meta: dict) -> None:
    import torch

    from .._io import atomic_write

    state = trainer.state_dict()
    state["cli"] = dict(meta)
    atomic_write(path, lambda tmp: torch.save(state, tmp), suffix=".pt")


def _log_lines(path: str, max_epoch: int) -> list:
    """Data lines of an existing log with epoch ≤ ``max_epoch`` (for an exact restart)."""
    if not os.path.exists(path):
        return []
    keep = []
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        if int(line.split()[0]) <= max_epoch:
            keep.append(line if line.endswith("\n") else line + "\n")
    return keep


def _system_kwargs(system: str, kwargs: dict, replicas, steps, spec=None):
    """Setup keyword arguments and (replicas, steps) with the system's CLI defaults filled in."""
    import torch

    kw = dict(kwargs)
    if system == "azobenzene":
        # a potential module passed in (tests, scripts): the reduced sizes, as for SevenNet
        settings = AZOBENZENE_DEFAULTS[spec["name"]]["settings"] if spec is not None else AZOBENZENE_CLI
        for k, v in settings.items():
            kw.setdefault(k, v)
        default_replicas, default_steps = kw.pop("n_replicas"), kw.pop("n_steps")
        replicas = default_replicas if replicas is None else replicas
        steps = default_steps if steps is None else steps
    if isinstance(kw.get("dtype"), str):
        kw["dtype"] = {"float32": torch.float32, "float64": torch.float64}[kw["dtype"]]
    return kw, replicas, steps


def _potential(system: str, potential, kwargs: dict):
    """(record or None, kwargs): a ``--potential`` value checked; a module stays a setup keyword."""
    import torch

    from ..systems.azobenzene.potential import potential_spec

    if potential is None and "potential" in kwargs:
        potential = kwargs.pop("potential")
    if isinstance(potential, torch.nn.Module):
        return None, dict(kwargs, potential=potential)
    if system != "azobenzene":
        if potential is not None:
            raise ValueError(f"potential is only for the azobenzene system, not {system!r}")
        return None, kwargs
    return potential_spec(AZOBENZENE_DEFAULT_POTENTIAL if potential is None else potential), kwargs


def _check_restart_potential(old: dict, meta: dict) -> None:
    """Refuse a restart on another ``--potential`` (checkpoints before the option: SevenNet-0)."""
    from ..systems.azobenzene.potential import potential_label

    if meta.get("system") != "azobenzene" or "potential" not in meta:
        return
    was = old.get("potential")
    if was is None and "potential" not in old.get("setup_kwargs", {}):
        was = {"name": AZOBENZENE_LEGACY_POTENTIAL}
    if was != meta["potential"]:
        what = potential_label(was) if isinstance(was, dict) else \
            f"a potential object {old.get('setup_kwargs', {}).get('potential')}"
        raise ValueError(f"restart: the checkpoint was trained with potential {what}, "
                         f"not {potential_label(meta['potential'])}")
    old["potential"] = was


def run_diffsim(system: str, out: str, epochs: int = None, replicas: int = None, steps: int = None,
                restart: bool = False, seed: int = 0, threads: int = None, progress: bool = True,
                device: str = "cpu", stages=None, evalReplicas: int = 0, potential=None, **kwargs):
    """Train for ``epochs`` epochs in total (continuing ``OUT/checkpoint.pt`` with ``restart``).

    Parameters
    ----------
    system : str
        ``"mueller-brown"``, ``"alanine-dipeptide"`` or ``"azobenzene"``.
    out : str
        Output folder (created).
    epochs : int, optional
        Total number of epochs (a restart trains ``epochs`` minus those already done);
        default: the total of ``stages``.
    replicas, steps : int, optional
        Replicas per epoch and steps per trajectory (default: the setup's; for azobenzene
        those of :data:`~openmm_nnbias.recipes.diffsim.azobenzene.AZOBENZENE_DEFAULTS` for the potential).
    restart : bool, optional
        Continue from ``OUT/checkpoint.pt``; the run settings must match it, except that
        ``stages`` may extend or append stages after the epochs already done.
    seed : int, optional
    threads : int, optional
        ``torch.set_num_threads`` (default: leave torch's setting).
    progress : bool, optional
        tqdm bar over epochs with loss, success fraction and stage.
    device : str, optional
        Torch device of the simulation (default ``"cpu"``).
    stages : StageSchedule or str, optional
        Temperature/learning-rate schedule (:class:`~openmm_nnbias.diffsim.stages.StageSchedule`,
        ``"300:1e-2:4,1000:1e-3:2"``); default one stage at the setup's temperature and rate
        (for azobenzene :data:`~openmm_nnbias.recipes.diffsim.azobenzene.AZOBENZENE_STAGES`). A restart may cross a stage boundary.
    evalReplicas : int, optional
        With ``R > 0``: success fraction of R replicas at the setup's temperature unbiased
        (before training) and after every stage, see :mod:`.diffsim_eval` (default 0: none).
    potential : str or torch.nn.Module, optional
        Azobenzene only: ``"gfn1-mlp"`` (default), ``"7net-0"``, ``"7net-l3i5"`` or the path of an
        ``AzobenzeneMLP.save`` file (see :mod:`openmm_nnbias.systems.azobenzene.potential`; recorded in the checkpoint,
        a file with its sha256); its defaults are :data:`~openmm_nnbias.recipes.diffsim.azobenzene.AZOBENZENE_DEFAULTS`. A module is passed
        to the setup as is (SevenNet's defaults; for tests with stand-in energies).
    **kwargs
        Setup keyword arguments.

    Returns
    -------
    setup
        The :class:`~openmm_nnbias.diffsim.setup.DiffSimSetup` after training.

    Examples
    --------
    >>> from openmm_nnbias.runners.diffsim import run_diffsim
    >>> run_diffsim("mueller-brown", "/tmp/diffsim_doctest", epochs=-1)
    Traceback (most recent call last):
    ...
    ValueError: epochs must be >= 0, got -1
    >>> run_diffsim("azobenzene", "/tmp/diffsim_doctest", potential="no-such.pt")
    Traceback (most recent call last):
    ...
    ValueError: potential must be one of 7net-0, 7net-l3i5, gfn1-mlp or an AzobenzeneMLP .pt file; no file 'no-such.pt'
    """
    from tqdm import tqdm

    from .diffsim_eval import evaluate_point, pending_evaluations

    if epochs is not None and int(epochs) < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if int(evalReplicas) < 0:
        raise ValueError(f"evalReplicas must be >= 0, got {evalReplicas}")
    spec, kwargs = _potential(system, potential, kwargs)
    schedule, epochs = _schedule(system, stages, spec, epochs)
    _set_threads(threads)
    checkpoint = os.path.join(out, "checkpoint.pt")
    state = _load_checkpoint(checkpoint, system, spec) if restart else None
    setup, meta = _setup_and_meta(system, kwargs, replicas, steps, spec, seed, device, schedule)
    trainer = _trainer(setup)
    os.makedirs(out, exist_ok=True)
    log = os.path.join(out, "diffsim.log")
    lines = _restore(trainer, state, meta, schedule, log) if restart else []
    with open(log, "w") as fh:
        fh.write((LOG_HEADER if schedule is None else LOG_HEADER_STAGES) + "\n" + "".join(lines))
    say = tqdm.write if progress else (lambda msg: None)
    if evalReplicas and trainer.epoch == 0:
        r = evaluate_point(setup, out, "unbiased", int(evalReplicas), seed)
        say(f"unbiased: {r['crossed']}/{r['n']} crossed ({r['fraction']:.3f} ± {r['se']:.3f})")
    evaluate = (lambda: None) if schedule is None else \
        (lambda: pending_evaluations(setup, out, schedule, int(evalReplicas), seed, say))
    evaluate()
    t_start = time.perf_counter()
    _train(trainer, int(epochs), schedule, checkpoint, meta, log, progress, evaluate)
    if trainer.epoch == 0 or not os.path.exists(checkpoint):
        _save_checkpoint(checkpoint, trainer, meta)
    trainer.export(os.path.join(out, "bias.pt"))
    if progress:
        logger.info("%d epochs, %.1f s this run", trainer.epoch, time.perf_counter() - t_start)
    return setup


def _schedule(system: str, stages, spec, epochs) -> tuple:
    """``(StageSchedule or None, epochs)``: azobenzene's stages by default, ``epochs`` their total by default."""
    from ..diffsim.stages import StageSchedule

    if stages is None and system == "azobenzene":
        stages = AZOBENZENE_DEFAULTS[spec["name"]]["stages"] if spec else AZOBENZENE_STAGES
    schedule = StageSchedule.parse(stages) if isinstance(stages, str) else stages
    if schedule is not None and not isinstance(schedule, StageSchedule):
        raise TypeError(f"stages must be a StageSchedule or a string, got {type(stages).__name__}")
    if epochs is None:
        if schedule is None:
            raise ValueError("epochs is required without stages")
        epochs = schedule.total_epochs
    return schedule, epochs


def _set_threads(threads) -> None:
    """``torch.set_num_threads(threads)`` unless None (ValueError when < 1)."""
    import torch

    if threads is not None:
        if int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(int(threads))


def _load_checkpoint(checkpoint: str, system: str, spec) -> dict:
    """The state of ``checkpoint`` for a restart, its potential checked before the (expensive) setup."""
    import torch

    if not os.path.exists(checkpoint):
        raise ValueError(f"restart: no checkpoint {checkpoint!r}")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if spec is not None:
        _check_restart_potential({"setup_kwargs": {}, **state.get("cli", {})}, {"system": system, "potential": spec})
    return state


def _setup_and_meta(system: str, kwargs: dict, replicas, steps, spec, seed, device, schedule) -> tuple:
    """The setup and the settings recorded in (and checked against) the checkpoint."""
    setup_kwargs, replicas, steps = _system_kwargs(system, kwargs, replicas, steps, spec)
    extra = {}
    if spec is not None:
        from ..systems.azobenzene.potential import load_potential

        extra["potential"] = load_potential(spec, dtype=setup_kwargs.get("dtype"))
    setup = build_diffsim(system, replicas=replicas, steps=steps, seed=seed, device=device, **setup_kwargs, **extra)
    trainer = _trainer(setup)
    meta = {"system": system, "seed": int(seed), "n_replicas": trainer.n_replicas, "n_steps": trainer.n_steps,
            # with the system's CLI defaults filled in, so that a restart notices when those change
            "setup_kwargs": {k: repr(v) for k, v in sorted(setup_kwargs.items())}}
    if spec is not None:
        meta["potential"] = spec
    if schedule is not None:
        meta["stages"] = str(schedule)
    return setup, meta


def _restore(trainer, state: dict, meta: dict, schedule, log: str) -> list:
    """Load ``state`` into ``trainer`` when its settings match ``meta``; the log lines to keep."""
    from ..diffsim.stages import StageSchedule

    old = {"setup_kwargs": {}, **state.get("cli", {})}
    _check_restart_potential(old, meta)
    diff = {k: (old.get(k), v) for k, v in meta.items() if old.get(k) != v}
    if "stages" in diff and old.get("stages") and schedule is not None and \
            StageSchedule.parse(old["stages"]).agrees_up_to(schedule, int(state["epoch"])):
        del diff["stages"]  # the epochs done were trained on the same stages: extending is fine
    if diff:
        raise ValueError("restart: settings differ from the checkpoint (checkpoint, now): "
                         + ", ".join(f"{k} {a!r} vs {b!r}" for k, (a, b) in diff.items()))
    trainer.load_state_dict(state)
    return _log_lines(log, trainer.epoch)


def _train(trainer, epochs: int, schedule, checkpoint: str, meta: dict, log: str, progress: bool, evaluate) -> None:
    """Epochs up to ``epochs``: a checkpoint and a log line after each, ``evaluate()`` too when staged."""
    from tqdm import tqdm

    from ..diffsim.stages import apply_stage

    with tqdm(total=epochs, initial=min(trainer.epoch, epochs), unit="epoch",
              disable=not progress, dynamic_ncols=True) as bar:
        while trainer.epoch < epochs:
            extra = ""
            if schedule is not None:
                k = schedule.stage_index(trainer.epoch)
                apply_stage(trainer, schedule.stages[k])
                extra = f" {k + 1:d} {schedule.stages[k].temperature:g} {schedule.stages[k].lr:g}"
            r = trainer.train_epoch()
            _save_checkpoint(checkpoint, trainer, meta)
            with open(log, "a") as fh:
                fh.write(f"{r.epoch:d} {r.mean_loss:.6g} {r.success_fraction:.4f} {r.wall_time_s:.2f} "
                         f"{r.n_active:d} {r.n_pairs:d}{extra}\n")
            bar.update(1)
            post = dict(loss=f"{r.mean_loss:.4g}", success=f"{r.success_fraction:.2f}")
            if schedule is not None:
                post.update(stage=extra.split()[0], T=extra.split()[1])
            bar.set_postfix(**post)
            evaluate()
