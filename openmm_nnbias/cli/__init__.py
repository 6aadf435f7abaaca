"""Command line: ``openmm-nnbias deepves | reference | compare | reweight | diffsim | plot``."""

import argparse
import functools
import os
import sys

from .. import __version__
from .._units import KB, parse_time
from ..recipes import DEEPVES_RECIPES, METAD_RECIPES

__all__ = ["main"]


class _Help(argparse.HelpFormatter):
    """Help that shows a default when the text does not already state it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"

    def _format_action(self, action):
        if not action.help and action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            action.help = "default: %(default)s"  # argparse shows no default for an option without help
        return super()._format_action(action)


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


def _parser():
    p = argparse.ArgumentParser(prog="openmm-nnbias", description=__doc__, formatter_class=_Help)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser = functools.partial(sub.add_parser, formatter_class=_Help)
    d = sub.add_parser("deepves", help="learn a Deep-VES bias on an embedded system or your own (--input)",
                       formatter_class=_Help, description="Flags given on the command line override the input file.")
    src = d.add_mutually_exclusive_group()
    src.add_argument("--system", choices=sorted(DEEPVES_RECIPES), help="an embedded system (or --input)")
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
    r = sub.add_parser("reference", help="reference FES with OpenMM WT-metadynamics (Ala2: phi/psi; "
                                         "Ala4: phi1, phi2, phi3)")
    r.add_argument("--system", default="alanine-dipeptide", choices=sorted(METAD_RECIPES))
    r.add_argument("--steps", type=int, default=None, help="MD steps (instead of --time)")
    r.add_argument("--restart", action="store_true", help="alanine-tetrapeptide, alanine-dipeptide-solvated(-hmr): continue OUT/checkpoint.pkl")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--time", default="50ns")
    r.add_argument("--out", required=True)
    r.add_argument("--platform", default="CPU")
    r.add_argument("--threads", type=int, default=1)
    c = sub.add_parser("compare", help="RMSE of a FES file against a reference over F < cutoff")
    c.add_argument("fes")
    c.add_argument("reference")
    c.add_argument("--cutoff", type=float, default=20.0, help="kJ/mol (default 20)")
    rw = sub.add_parser("reweight", help="reweighted FES from a run's colvar (weights exp(rbias/kT))")
    rw.add_argument("run")
    rw.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    rw.add_argument("--from", dest="t_min", default="0ps", help="start time, e.g. 12ns")
    rw.add_argument("--to", dest="t_max", default=None, help="end time")
    rw.add_argument("--column", default="rbias", choices=["rbias", "bias"])
    rw.add_argument("--bins", type=int, default=50)
    rw.add_argument("--output", default=None, help="default RUN/fes_colvar_reweighted.dat")
    ds = sub.add_parser("diffsim", help="train a barrier-crossing bias by differentiable simulation")
    ds.add_argument("--system", required=True, choices=["mueller-brown", "alanine-dipeptide", "azobenzene",
                                                          "mueller-brown-authors"])
    ds.add_argument("--epochs", type=int, default=None,
                    help="total number of training epochs (default: the total of --stages)")
    ds.add_argument("--stages", default=None,
                    help="training stages TEMPERATURE_K:LR:EPOCHS[,...], e.g. 300:1e-2:4,1000:1e-3:2 "
                         "(default: azobenzene the schedule of its --potential, the others one stage at the system's T and rate)")
    ds.add_argument("--eval-replicas", type=int, default=0,
                    help="success fraction of this many replicas at the system's T, unbiased and after each "
                         "stage (default 0: none)")
    from ..recipes.diffsim.azobenzene import azobenzene_defaults_help

    ds.add_argument("--potential", default=None,
                    help="azobenzene only: energy gfn1-mlp (default: the shipped GFN1-xTB-fitted AzobenzeneMLP), "
                         "7net-0 or 7net-l3i5 (SevenNet, needs sevenn) or PATH of an "
                         "AzobenzeneMLP.save .pt file; recorded in the checkpoint (--restart must match). "
                         "Defaults per potential: " + azobenzene_defaults_help().replace("%", "%%"))
    ds.add_argument("--replicas", type=int, help="replicas per epoch (default: the system's)")
    ds.add_argument("--steps", type=int, help="Langevin steps per trajectory (default: the system's)")
    ds.add_argument("--out", required=True, help="output folder")
    ds.add_argument("--restart", action="store_true", help="continue from OUT/checkpoint.pt")
    ds.add_argument("--seed", type=int, default=0)
    ds.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ds.add_argument("--device", default="cpu", help="torch device (default cpu)")
    ds.add_argument("--no-progress", action="store_true")
    pl = sub.add_parser("plot", help="PNG plots of a run folder",
                        description="Write PNG plots into a run folder, one per file found: fes_bias.png and "
                                    "fes_reweighted.png (1D or 2D free energies), colvar.png (the CVs and V - c over "
                                    "time), ves.png (KL and learning rate per iteration), diffsim.png (DiffSim runs).")
    pl.add_argument("run", metavar="RUN", help="run folder (the --out of openmm-nnbias deepves or diffsim) "
                                                "holding colvar, ves.log, fes_*.dat or diffsim.log")
    return p


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


def _steps(args, timestep_ps: float) -> int:
    """MD steps of ``--steps`` or ``--time`` (ValueError naming the option when not >= 1 step)."""
    if args.steps is not None:
        if args.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {args.steps}")
        return args.steps
    t = parse_time(args.time, "--time")
    steps = int(round(t / timestep_ps))
    if steps < 1:
        raise ValueError(f"--time {args.time} is shorter than one MD step ({timestep_ps:g} ps)")
    return steps


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


def _deepves(args) -> None:
    import os

    import torch

    from ..runners.deepves_run import run_deepves_walkers
    from ..recipes import get_recipe

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
        steps, system, out, threads = _steps(args, dt * args.mts), args.system, args.out, 1 if args.threads is None else args.threads
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


def _reweight(args) -> str:
    import os

    from ..analysis import reweight_colvar
    from ..io import read_colvar, read_grid_domain, write_grid_file

    t_min = parse_time(args.t_min, "--from")
    t_max = parse_time(args.t_max, "--to") if args.t_max else float("inf")
    names = [k for k in read_colvar(os.path.join(args.run, "colvar")) if k not in ("time", "bias", "rbias")]
    dom = read_grid_domain(os.path.join(args.run, "fes_bias.dat"))
    periodic = [dom[n]["periodic"] for n in names]
    lower, upper = [dom[n]["min"] for n in names], [dom[n]["max"] for n in names]
    axes, fes = reweight_colvar(os.path.join(args.run, "colvar"), KB * args.temperature, bins=args.bins,
                                column=args.column, t_min=t_min, t_max=t_max,
                                periodic=periodic, lower=lower, upper=upper)
    path = args.output or os.path.join(args.run, "fes_colvar_reweighted.dat")
    write_grid_file(path, names, axes, fes, periodic, lower=lower, upper=upper)
    return path


def _backend_names() -> list:
    """The force backends' names, from the one registry (:data:`openmm_nnbias.bias.registry.BACKENDS`)."""
    from ..bias.registry import BACKENDS

    return sorted(BACKENDS)


def _log_to_terminal() -> None:
    """The package's log records (INFO and above) reach a CLI user as plain lines on stderr."""
    import logging

    class _Stderr(logging.Handler):  # the sys.stderr of the moment (not the one at set-up)
        def emit(self, record):
            sys.stderr.write(self.format(record) + "\n")

    logger = logging.getLogger("openmm_nnbias")
    if not any(type(h).__name__ == "_Stderr" for h in logger.handlers):  # once per process
        logger.addHandler(_Stderr())
        logger.setLevel(logging.INFO)


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as one line ``openmm-nnbias: warning: ...`` (no source path, no code line).

    Installed as ``warnings.formatwarning``, not ``showwarning``: warnings that a caller records
    (``warnings.catch_warnings(record=True)``, ``pytest.warns``) are still recorded, not printed.
    """
    text = " ".join(str(message).split("\n"))
    return f"openmm-nnbias: warning: {text}\n"


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status (2: error).

    A bad argument or input (``ValueError``, ``TypeError``, ``FileNotFoundError``) is one line on
    stderr; with the environment variable ``OPENMM_NNBIAS_TRACEBACK=1`` it is raised with its
    traceback instead (for a bug report). Warnings are one line each, ``openmm-nnbias: warning: ...``.
    """
    import warnings

    formatted, warnings.formatwarning = warnings.formatwarning, _format_warning
    try:
        return _main(argv)
    finally:
        warnings.formatwarning = formatted


def _main(argv) -> int:
    args = _parser().parse_args(argv)
    _log_to_terminal()
    try:
        if args.command == "deepves":
            _deepves(args)
        elif args.command == "reference":
            from ..runners.reference import run_reference
            from ..recipes import get_recipe

            dt = get_recipe(args.system, "metad").timestep
            time_ns = _steps(args, dt) * dt / 1000
            path = run_reference(args.out, time_ns, platform=args.platform, threads=args.threads,
                                 system=args.system, restart=args.restart, progress=not args.no_progress)
            print(f"wrote {path}")
        elif args.command == "compare":
            from ..analysis.compare import compare_files

            rmse, n = compare_files(args.fes, args.reference, args.cutoff)
            print(f"RMSE {rmse:.3f} kJ/mol over {n} grid points with F_ref < {args.cutoff} kJ/mol")
        elif args.command == "reweight":
            print(f"wrote {_reweight(args)}")
        elif args.command == "diffsim":
            from ..runners.diffsim import run_diffsim

            run_diffsim(args.system, args.out, args.epochs, replicas=args.replicas, steps=args.steps,
                        restart=args.restart, seed=args.seed, threads=args.threads,
                        progress=not args.no_progress, device=args.device, stages=args.stages,
                        eval_replicas=args.eval_replicas, potential=args.potential)
            print(f"wrote {args.out}/bias.pt, checkpoint.pt, diffsim.log")
        elif args.command == "plot":
            from ..analysis.plots import plot_run

            for path in plot_run(args.run):
                print(f"wrote {path}")
    except (ValueError, TypeError, FileNotFoundError) as exc:
        if os.environ.get("OPENMM_NNBIAS_TRACEBACK", "") not in ("", "0"):
            raise
        print(f"openmm-nnbias: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
