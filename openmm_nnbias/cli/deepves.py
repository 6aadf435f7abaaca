"""``openmm-nnbias deepves``: its options and how they become a run (:mod:`openmm_nnbias.runners.deepves_run`)."""

from .._units import parse_time
from ..recipes import DEEPVES_RECIPES, system_names
from ._args import steps_of

__all__ = ["add_parser", "run"]


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


def add_parser(sub) -> None:
    """The ``deepves`` subcommand on the subparsers ``sub``."""
    d = sub.add_parser("deepves", help="learn a Deep-VES bias on an embedded system or your own (--input)",
                       description="Flags given on the command line override the input file.")
    _add_run_options(d)
    _add_deepves_options(d)
    d.set_defaults(func=run)


def _add_run_options(d) -> None:
    """System or input file, length, output, state and platform."""
    src = d.add_mutually_exclusive_group()
    src.add_argument("--system", choices=system_names("deepves"), help="an embedded system (or --input)")
    src.add_argument("--input", help="YAML input file of your own system, CVs, state and Deep-VES settings "
                                     "(README: 'Your own system: the input file')")
    g = d.add_mutually_exclusive_group()
    g.add_argument("--time", help="simulated time with its unit, e.g. 20ns, 500ps (--input: or run.time)")
    g.add_argument("--steps", type=int, help="number of MD steps (--input: or run.steps)")
    d.add_argument("--out", help="output folder (--input: or run.out)")
    d.add_argument("--restart", action="store_true", help="continue from OUT/checkpoint.pt")
    d.add_argument("--temperature", type=float, help=f"temperature in K (default {_recipe_defaults('temperature', 'K')})")
    d.add_argument("--timestep", type=float,
                   help=f"MD time step in fs (default {_recipe_defaults('timestep', 'fs', 1000)}); with --mts K the inner step")
    d.add_argument("--backend", default=None, choices=_backend_names(),
                   help="bias force backend (default: the system's recipe; table: fastest MD on the CPU platform "
                        "for up to 3 torsions/distances/angles/positions; torch: any TorchScript CVs, any number "
                        "(alanine-tetrapeptide, silicon, villin); cvforce: OpenMM Force CVs of an input file)")
    d.add_argument("--platform", default=None,
                   help="OpenMM platform (default CPU; Reference for wolfe-quapp; --input: the fastest here)")
    d.add_argument("--threads", type=int, default=None, help="CPU platform threads (default 1)")
    d.add_argument("--seed", type=int, default=None, help="seed of the network, the MD and the Monte Carlo target (default 1)")


def _add_deepves_options(d) -> None:
    """Deep-VES settings, execution (async, walkers, MTS) and the alanine-tetrapeptide target."""
    d.add_argument("--bias-factor", type=float, default=None,
                   help="well-tempered bias factor gamma, dimensionless (default 10; silicon, silicon-64: 100)")
    d.add_argument("--grid-bins", type=int, help=f"target grid bins per CV (default {_recipe_defaults('gridBins')})")
    d.add_argument("--hidden", help=f"hidden-layer widths of the bias network, e.g. 48,24,12 (default "
                                    f"{_recipe_defaults('hidden')})")
    d.add_argument("--learning-rate", type=float, help="Adam learning rate, dimensionless (default 0.001)")
    d.add_argument("--stride", type=int, help="MD steps per iteration (default 500)")
    d.add_argument("--sample-stride", type=int, default=None, help="MD steps between CV samples (default 10)")
    d.add_argument("--tau-kl", type=float, help=f"KL time constant in iterations (default {_recipe_defaults('tauKL')})")
    d.add_argument("--tau-decay", type=float,
                   help=f"learning-rate decay time in iterations (default {_recipe_defaults('tauDecay')})")
    d.add_argument("--kl-threshold", type=float,
                   help=f"KL threshold epsilon, dimensionless (default {_recipe_defaults('klThreshold', default=0.5)})")
    d.add_argument("--fes-interval", type=int, help="iterations between FES files and bias.pt (default 100)")
    d.add_argument("--checkpoint-interval", type=int, help="iterations between checkpoints (default 100)")
    d.add_argument("--async", dest="asynchronous", nargs="?", const="thread", default=False,
                   choices=["thread", "process"],
                   help="overlap each optimizer step with the next iteration's MD (one-iteration lag), "
                        "in a worker thread (--async) or a learner process (--async process, no GIL contention); "
                        "default: off (sync)")
    d.add_argument("--push-interval", type=int, default=None,
                   help="iterations between pushes of the network into the Context (default 1)")
    d.add_argument("--learner-cpus", default=None,
                   help="--async process: pin the learner to these CPUs, e.g. 1 or 2,3 (start the run itself "
                        "under taskset -c 0 so that MD and learner never share a CPU; default: not pinned)")
    d.add_argument("--activation", choices=["relu", "elu", "tanh", "softplus", "silu"], default=None,
                   help="hidden-layer activation of the bias network (default relu, as in the paper)")  # = bias.network.ACTIVATIONS
    d.add_argument("--precision", choices=["mixed", "double"], default=None,
                   help="optimizer network passes in float32 with float64 weights (mixed, default) or float64")
    d.add_argument("--walkers", type=int, default=1,
                   help="N walkers sharing one bias, one process each (torch.distributed, gloo); "
                        "under torchrun: one walker per process (default 1)")
    d.add_argument("--mts", type=int, default=None,
                   help="evaluate the bias every K inner steps (MTSLangevinIntegrator; one MD step = K time steps; "
                        "default 1; silicon, silicon-64: 2)")
    d.add_argument("--mc-points", type=int, default=None,
                   help="alanine-tetrapeptide: Monte Carlo target points per iteration (default 10000)")
    d.add_argument("--recrossings", type=int, default=None,
                   help="alanine-tetrapeptide: decay after this many transitions of each phi (default 4; "
                        "0: marginal-KL threshold)")
    d.add_argument("--decay-after", default=None,
                   help="alanine-tetrapeptide and --input: keep the learning rate constant for at least this "
                        "simulated time, e.g. 10ns (default 10ns for alanine-tetrapeptide, the paper's Ala4 schedule, "
                        "0 = recrossings only; --input: 0 ps)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")


def _int_list(text, flag: str = "--hidden", what: str = "integers, e.g. 48,24,12"):
    """"48,24,12" -> [48, 24, 12]; None -> None (ValueError naming ``flag`` otherwise)."""
    if text is None:
        return None
    try:
        return [int(c) for c in str(text).split(",") if c.strip()]
    except ValueError:
        raise ValueError(f"{flag} takes comma-separated {what}; got {text!r}") from None


def _cpu_list(text):
    """"1,3" -> [1, 3]; None -> None."""
    return _int_list(text, "--learner-cpus", "CPU ids, e.g. 1 or 2,3")


def _backend_names() -> list:
    """The force backends' names, from the one registry (:data:`openmm_nnbias.bias.registry.BACKENDS`)."""
    from ..bias.registry import BACKENDS

    return sorted(BACKENDS)


#: deepves flags that override an input-file key (dest -> key)
_INPUT_KEYS = {"temperature": "state.temperature", "timestep": "state.timestep", "platform": "state.platform",
               "threads": "run.threads", "seed": "run.seed", "time": "run.time", "steps": "run.steps",
               "out": "run.out", "backend": "deepves.backend", "bias_factor": "deepves.biasFactor",
               "stride": "deepves.stride", "sample_stride": "deepves.sampleStride", "tau_kl": "deepves.tauKL",
               "tau_decay": "deepves.tauDecay", "kl_threshold": "deepves.klThreshold",
               "learning_rate": "deepves.learningRate", "grid_bins": "deepves.bins", "hidden": "deepves.hidden",
               "activation": "deepves.activation", "precision": "deepves.precision",
               "push_interval": "deepves.pushInterval", "fes_interval": "deepves.fesInterval",
               "checkpoint_interval": "deepves.checkpointInterval", "learner_cpus": "deepves.learnerCPUs",
               "asynchronous": "deepves.mode", "decay_after": "deepves.decayAfter"}


def _flag_values(args) -> dict:
    """The deepves flags as the library takes them (None: not given)."""
    values = {k: getattr(args, k) for k in _INPUT_KEYS}
    values.update(hidden=_int_list(args.hidden, "--hidden"), learner_cpus=_cpu_list(args.learner_cpus),
                  asynchronous=args.asynchronous or None)
    return values


def _deepves_input(args, flags: dict):
    """``(spec, steps)`` of ``--input`` with the flags given on the command line overriding the file."""
    from ..runners.inputfile import read_input

    given = [f for f, v in (("--mc-points", args.mc_points), ("--recrossings", args.recrossings)) if v is not None]
    if given:
        raise ValueError(f"{given[0]} applies to --system alanine-tetrapeptide only")
    flag = {k: "--" + k.replace("_", "-") for k in _INPUT_KEYS}
    flag.update(asynchronous="--async")
    spec = read_input(args.input, {key: (flags[k], flag[k]) for k, key in _INPUT_KEYS.items()})
    return spec, spec.steps


def run(args) -> None:
    """Run ``openmm-nnbias deepves`` with the parsed ``args``."""
    import os

    import torch

    from ..recipes import get_recipe
    from ..runners.deepves_run import run_deepves_walkers

    if args.mts is None:
        args.mts = get_recipe(args.system).mts if args.system is not None else 1
    if args.mts < 1:
        raise ValueError(f"--mts must be an integer >= 1 (inner steps per bias evaluation), got {args.mts}")
    if args.timestep is not None and not args.timestep > 0:
        raise ValueError(f"--timestep must be > 0 fs, got {args.timestep:g}")
    flags = _flag_values(args)
    if args.input:
        spec, steps = _deepves_input(args, flags)
        system, out, threads = spec, spec.out, spec.threads
        kwargs = dict(threads=threads, asynchronous=spec.deepves["mode"], mts=args.mts)
    else:
        if args.system is None:
            raise ValueError("deepves needs --system NAME or --input FILE")
        if args.out is None or (args.time is None and args.steps is None):
            raise ValueError("deepves --system needs --out and one of --time and --steps")
        dt = args.timestep / 1000 if args.timestep is not None else get_recipe(args.system).timestep
        steps, system, out, threads = steps_of(args, dt * args.mts), args.system, args.out, 1 if args.threads is None else args.threads
        names = dict(stride="stride", tau_kl="tauKL", tau_decay="tauDecay", kl_threshold="klThreshold",
                     push_interval="pushInterval", precision="precision", activation="activation",
                     learner_cpus="learnerCPUs", learning_rate="learningRate", grid_bins="gridBins",
                     hidden="hidden", fes_interval="fesInterval", checkpoint_interval="checkpointInterval")
        overrides = {key: flags[k] for k, key in names.items()}
        overrides.update(mcPoints=args.mc_points, recrossings=args.recrossings,
                         decayAfter=None if args.decay_after is None else parse_time(args.decay_after, "--decay-after"))
        kwargs = dict(backend=args.backend, platform=args.platform, threads=threads,
                      seed=1 if args.seed is None else args.seed,
                      biasFactor=args.bias_factor,
                      sampleStride=10 if args.sample_stride is None else args.sample_stride, overrides=overrides,
                      asynchronous=args.asynchronous, mts=args.mts, temperature=args.temperature,
                      timestep=None if args.timestep is None else args.timestep / 1000)
    torch.set_num_threads(max(1, threads))  # as each walker does; the TorchForce runs in torch's pool
    run_deepves_walkers(args.walkers, system, out, steps, restart=args.restart, progress=not args.no_progress,
                        **kwargs)
    many = max(args.walkers, int(os.environ.get("WORLD_SIZE", 1))) > 1
    if os.environ.get("RANK", "0") == "0":  # torchrun: walker 0 only
        names = [n for n in ("fes.dat", "fes_bias.dat", "fes_bias_avg.dat", "fes_reweighted.dat", "bias.pt", "colvar", "ves.log")
                 if os.path.exists(os.path.join(out, n))]
        print(f"wrote {', '.join(names)} in {out}/" + (" (colvar.k: walker k)" if many else ""))
