"""``openmm-nnbias diffsim``: train a DiffSim bias on an embedded system (:mod:`openmm_nnbias.runners.diffsim`)."""

import functools

from ..recipes import system_names
from ._args import Options

__all__ = ["add_parser", "run"]


def _default(name: str):
    """The default of the keyword ``name`` of :func:`~openmm_nnbias.runners.diffsim.run_diffsim`."""
    import inspect

    from ..runners.diffsim import run_diffsim

    return inspect.signature(run_diffsim).parameters[name].default


def add_parser(sub) -> None:
    """The ``diffsim`` subcommand on the subparsers ``sub``."""
    from ..recipes.diffsim.azobenzene import azobenzene_defaults_help

    ds = sub.add_parser("diffsim", help="train a barrier-crossing bias by differentiable simulation")
    options = Options()
    add = functools.partial(options.add, ds)
    add("--system", required=True, choices=system_names("diffsim"))
    add("--epochs", type=int, help="total number of training epochs (default: the total of --stages)")
    add("--stages", help="training stages TEMPERATURE_K:LR:EPOCHS[,...], e.g. 300:1e-2:4,1000:1e-3:2 "
                         "(default: azobenzene the schedule of its --potential, the others one stage at the "
                         "system's T and rate)")
    add("--eval-replicas", type=int,
        help=f"success fraction of this many replicas at the system's T, unbiased and after each "
             f"stage (default {_default('evalReplicas')}: none)")
    add("--potential", help="azobenzene only: energy gfn1-mlp (default: the shipped GFN1-xTB-fitted AzobenzeneMLP), "
                            "7net-0 or 7net-l3i5 (SevenNet, needs sevenn) or PATH of an "
                            "AzobenzeneMLP.save .pt file; recorded in the checkpoint (--restart must match). "
                            "Defaults per potential: " + azobenzene_defaults_help().replace("%", "%%"))
    add("--replicas", type=int, help="replicas per epoch (default: the system's)")
    add("--steps", type=int, help="Langevin steps per trajectory (default: the system's)")
    add("--out", required=True, help="output folder")
    add("--restart", action="store_true", help="continue from OUT/checkpoint.pt")
    add("--seed", type=int, help=f"seed of the setup and the training (default {_default('seed')})")
    add("--threads", type=int, help="torch CPU threads (default: torch's)")
    add("--device", help=f"torch device (default {_default('device')})")
    add("--no-progress", action="store_true")
    ds.set_defaults(func=run, options=options)


def run(args) -> None:
    """Run ``openmm-nnbias diffsim`` with the parsed ``args``."""
    from ..runners.diffsim import run_diffsim

    given = {k: getattr(args, k) for k in ("epochs", "replicas", "steps", "seed", "threads", "device", "stages",
                                           "evalReplicas", "potential")}
    run_diffsim(args.system, args.out, restart=args.restart, progress=not args.noProgress,
                **{k: v for k, v in given.items() if v is not None})
    print(f"wrote {args.out}/bias.pt, checkpoint.pt, diffsim.log")
