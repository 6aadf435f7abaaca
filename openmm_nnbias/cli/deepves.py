"""``openmm-nnbias deepves``: its options and how they become a run (:mod:`openmm_nnbias.runners.deepves_run`).

Each option's ``dest`` is the name it has in the library: the keyword of
:func:`~openmm_nnbias.runners.build_deepves` or of its ``overrides``, and the input-file key in the
section recorded with the option (``state``, ``run``, ``deepves``; None: not an input-file key).
"""

from .._units import parse_time
from ..recipes import DEEPVES_RECIPES, system_names
from ..runners.deepves import updater_default
from ._args import Options, steps_of

__all__ = ["add_parser", "run"]

#: the deepves options as added (dest -> Action)
OPTIONS = Options()
#: the input-file section of each option that is an input-file key (dest -> section)
SECTIONS = {}


def _option(parser, section, flag: str, **kwargs):
    """Add the option ``flag`` to ``parser`` (a parser or a group) and record it with its input-file ``section``."""
    action = OPTIONS.add(parser, flag, **kwargs)
    if section is not None:
        SECTIONS[action.dest] = section
    return action


def _recipe_defaults(key: str, unit: str = "", factor: float = 1.0, default=None) -> str:
    """``"300 K (wolfe-quapp 120.3 K)"``: the value of ``key`` in most recipes, then the exceptions."""
    def value(r):
        v = getattr(r, key, None) if hasattr(r, key) else r.options.get(key, default)
        v = ",".join(map(str, v)) if isinstance(v, (tuple, list)) else f"{v * factor:.6g}"
        return f"{v} {unit}".strip()

    values = {n: value(r) for n, r in sorted(DEEPVES_RECIPES.items())}
    common = max(set(values.values()), key=list(values.values()).count)
    others = [f"{n} {v}" for n, v in values.items() if v != common]
    return common + (f"; {', '.join(others)}" if others else "")


def _library_default(name: str):
    """The default of the keyword ``name`` of :func:`~openmm_nnbias.runners.build_deepves`."""
    import inspect

    from ..runners.deepves import build_deepves

    return inspect.signature(build_deepves).parameters[name].default


def add_parser(sub) -> None:
    """The ``deepves`` subcommand on the subparsers ``sub``."""
    d = sub.add_parser("deepves", help="learn a Deep-VES bias on an embedded system or your own (--input)",
                       description="Flags given on the command line override the input file.")
    _add_run_options(d)
    _add_deepves_options(d)
    _add_execution_options(d)
    d.set_defaults(func=run, options=OPTIONS)


def _add_run_options(d) -> None:
    """System or input file, length, output, state and platform."""
    src = d.add_mutually_exclusive_group()
    _option(src, None, "--system", choices=system_names("deepves"), help="an embedded system (or --input)")
    _option(src, None, "--input", help="YAML input file of your own system, CVs, state and Deep-VES settings "
                                       "(README: 'Your own system: the input file')")
    g = d.add_mutually_exclusive_group()
    _option(g, "run", "--time", help="simulated time with its unit, e.g. 20ns, 500ps (--input: or run.time)")
    _option(g, "run", "--steps", type=int, help="number of MD steps (--input: or run.steps)")
    _option(d, "run", "--out", help="output folder (--input: or run.out)")
    _option(d, None, "--restart", action="store_true", help="continue from OUT/checkpoint.pt")
    _option(d, "state", "--temperature", type=float,
            help=f"temperature in K (default {_recipe_defaults('temperature', 'K')})")
    _option(d, "state", "--timestep", type=float,
            help=f"MD time step in fs (default {_recipe_defaults('timestep', 'fs', 1000)}); "
                 "with --mts K the inner step")
    _option(d, "deepves", "--backend", choices=_backend_names(),
            help="bias force backend (default: the system's recipe; table: fastest MD on the CPU platform "
                 "for up to 3 torsions/distances/angles/positions; torch: any TorchScript CVs, any number "
                 "(alanine-tetrapeptide, silicon, villin); cvforce: OpenMM Force CVs of an input file)")
    _option(d, "state", "--platform",
            help="OpenMM platform (default CPU; Reference for wolfe-quapp; --input: the fastest here)")
    _option(d, "run", "--threads", type=int, help=f"CPU platform threads (default {_library_default('threads')})")
    _option(d, "run", "--seed", type=int,
            help=f"seed of the network, the MD and the Monte Carlo target (default {_library_default('seed')})")


def _add_deepves_options(d) -> None:
    """Deep-VES settings and the alanine-tetrapeptide target."""
    _option(d, None, "--preset", choices=sorted({p for r in DEEPVES_RECIPES.values() for p in r.presets}),
            help="--system: a named set of the recipe's settings in place of its defaults (paper: the paper's "
                 "settings where the defaults differ; the other flags still win)")
    _option(d, "deepves", "--bias-factor", type=float,
            help=f"well-tempered bias factor gamma, dimensionless (default {_recipe_defaults('biasFactor')})")
    _option(d, "deepves", "--bins", type=int, help=f"target grid bins per CV (default {_recipe_defaults('bins')})")
    _option(d, "deepves", "--hidden", help=f"hidden-layer widths of the bias network, e.g. 48,24,12 (default "
                                           f"{_recipe_defaults('hidden')})")
    _option(d, "deepves", "--learning-rate", type=float, help="Adam learning rate, dimensionless (default 0.001)")
    _option(d, "deepves", "--output-learning-rate-scale", type=float,
            help="the output layer's learning rate as a multiple of --learning-rate (default "
                 f"{_recipe_defaults('outputLearningRateScale', default=1.0)})")
    _option(d, "deepves", "--stride", type=int, help=f"MD steps per iteration (default {_recipe_defaults('stride')})")
    _option(d, "deepves", "--sample-stride", type=int, help="MD steps between CV samples (default "
            f"{_recipe_defaults('sampleStride', default=updater_default('sampleStride'))})")
    _option(d, "deepves", "--tau-kl", dest="tauKL", type=float,
            help=f"KL time constant in iterations (default {_recipe_defaults('tauKL')})")
    _option(d, "deepves", "--tau-decay", type=float,
            help=f"learning-rate decay time in iterations (default {_recipe_defaults('tauDecay')})")
    _option(d, "deepves", "--kl-threshold", type=float,
            help=f"KL threshold epsilon, dimensionless (default {_recipe_defaults('klThreshold', default=0.5)})")
    _option(d, "deepves", "--fes-interval", type=int, help="iterations between FES files and bias.pt (default 100)")
    _option(d, "deepves", "--checkpoint-interval", type=int, help="iterations between checkpoints (default 100)")
    _option(d, "deepves", "--activation", choices=["relu", "elu", "tanh", "softplus", "silu"],
            help="hidden-layer activation of the bias network (default relu, as in the paper)")  # = network.ACTIVATIONS
    _option(d, "deepves", "--precision", choices=["mixed", "double"],
            help="optimizer network passes in float32 with float64 weights (mixed, default) or float64")
    _option(d, None, "--mc-points", type=int,
            help="alanine-tetrapeptide: Monte Carlo target points per iteration (default 10000)")
    _option(d, None, "--recrossings", type=int,
            help="alanine-tetrapeptide: decay after this many transitions of each phi (default 4; "
                 "0: marginal-KL threshold)")
    _option(d, "deepves", "--decay-after",
            help="alanine-tetrapeptide and --input: keep the learning rate constant for at least this "
                 "simulated time, e.g. 10ns (default 10ns for alanine-tetrapeptide, the paper's Ala4 schedule, "
                 "0 = recrossings only; --input: 0 ps)")


def _add_execution_options(d) -> None:
    """Execution: async learning, walkers, MTS, progress."""
    _option(d, "deepves", "--async", dest="mode", nargs="?", const="thread", choices=["thread", "process"],
            help="overlap each optimizer step with the next iteration's MD (one-iteration lag), "
                 "in a worker thread (--async) or a learner process (--async process, no GIL contention); "
                 "default: off (sync)")
    _option(d, "deepves", "--push-interval", type=int,
            help="iterations between pushes of the network into the Context (default "
                 f"{_recipe_defaults('pushInterval', default=1)})")
    _option(d, "deepves", "--learner-cpus", dest="learnerCPUs",
            help="--async process: pin the learner to these CPUs, e.g. 1 or 2,3 (start the run itself "
                 "under taskset -c 0 so that MD and learner never share a CPU; default: not pinned)")
    _option(d, None, "--walkers", type=int, default=1,
            help="N walkers sharing one bias, one process each (torch.distributed, gloo); "
                 "under torchrun: one walker per process (default 1)")
    _option(d, None, "--mts", type=int,
            help=f"evaluate the bias every K inner steps (MTSLangevinIntegrator; one MD step = K time steps; "
                 f"default {_recipe_defaults('mts')})")
    _option(d, None, "--no-progress", action="store_true", help="no progress bar")


def _int_list(text, flag: str = "--hidden", what: str = "integers, e.g. 48,24,12"):
    """"48,24,12" -> [48, 24, 12]; None -> None (ValueError naming ``flag`` otherwise)."""
    if text is None:
        return None
    try:
        return [int(c) for c in str(text).split(",") if c.strip()]
    except ValueError:
        raise ValueError(f"{flag} takes comma-separated {what}; got {text!r}") from None


def _backend_names() -> list:
    """The force backends' names, from the one registry (:data:`openmm_nnbias.bias.registry.BACKENDS`)."""
    from ..bias.registry import BACKENDS

    return sorted(BACKENDS)


def _flag_values(args) -> dict:
    """The values of the options with an input-file section, as the library takes them (None: not given)."""
    values = {dest: getattr(args, dest) for dest in SECTIONS}
    values.update(hidden=_int_list(args.hidden, OPTIONS.flags()["hidden"]),
                  learnerCPUs=_int_list(args.learnerCPUs, OPTIONS.flags()["learnerCPUs"], "CPU ids, e.g. 1 or 2,3"))
    return values


def _deepves_input(args, flags: dict):
    """``(spec, steps)`` of ``--input`` with the flags given on the command line overriding the file."""
    from ..runners.inputfile import read_input

    names = OPTIONS.flags()
    given = [names[k] for k in ("mcPoints", "recrossings") if getattr(args, k) is not None]
    if given:
        raise ValueError(f"{given[0]} applies to --system alanine-tetrapeptide only")
    if args.preset is not None:
        raise ValueError("--preset applies to --system runs (an input file states its own settings)")
    spec = read_input(args.input, {f"{SECTIONS[k]}.{k}": (flags[k], names[k]) for k in SECTIONS})
    return spec, spec.steps


def _system_run(args, flags: dict) -> tuple:
    """``(steps, keywords of build_deepves)`` of ``--system``: only what was given (the library has the defaults)."""
    import inspect

    from ..recipes import get_recipe
    from ..runners.deepves import build_deepves

    if args.out is None or (args.time is None and args.steps is None):
        raise ValueError("deepves --system needs --out and one of --time and --steps")
    recipe = get_recipe(args.system)
    mts = recipe.mts if args.mts is None else args.mts
    dt = args.timestep / 1000 if args.timestep is not None else recipe.timestep
    steps = steps_of(args, dt * max(1, mts))  # an mts < 1 is refused by build_deepves
    keywords = set(inspect.signature(build_deepves).parameters)
    values = dict(flags, timestep=None if args.timestep is None else args.timestep / 1000,
                  decayAfter=None if args.decayAfter is None else parse_time(args.decayAfter, "--decay-after"),
                  mcPoints=args.mcPoints, recrossings=args.recrossings, mts=args.mts, preset=args.preset)
    skip = {"time", "steps", "out"}
    kwargs = {k: v for k, v in values.items() if k in keywords and k not in skip and v is not None}
    kwargs["overrides"] = {k: v for k, v in values.items() if k not in keywords and k not in skip}
    return steps, kwargs


def run(args) -> None:
    """Run ``openmm-nnbias deepves`` with the parsed ``args``."""
    import os

    import torch

    from ..runners.deepves_run import run_deepves_walkers

    if args.timestep is not None and not args.timestep > 0:
        raise ValueError(f"--timestep must be > 0 fs, got {args.timestep:g}")
    flags = _flag_values(args)
    if args.input:
        spec, steps = _deepves_input(args, flags)
        system, out, threads = spec, spec.out, spec.threads
        kwargs = {} if args.mts is None else {"mts": args.mts}
    else:
        if args.system is None:
            raise ValueError("deepves needs --system NAME or --input FILE")
        steps, kwargs = _system_run(args, flags)
        system, out, threads = args.system, args.out, kwargs.get("threads", _library_default("threads"))
    torch.set_num_threads(max(1, threads))  # as each walker does; the TorchForce runs in torch's pool
    run_deepves_walkers(args.walkers, system, out, steps, restart=args.restart, progress=not args.noProgress,
                        **kwargs)
    many = max(args.walkers, int(os.environ.get("WORLD_SIZE", 1))) > 1
    if os.environ.get("RANK", "0") == "0":  # torchrun: walker 0 only
        names = [n for n in ("fes.dat", "fes_bias.dat", "fes_bias_avg.dat", "fes_reweighted.dat", "bias.pt", "colvar", "ves.log")
                 if os.path.exists(os.path.join(out, n))]
        print(f"wrote {', '.join(names)} in {out}/" + (" (colvar.k: walker k)" if many else ""))
