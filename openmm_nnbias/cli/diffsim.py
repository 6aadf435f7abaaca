"""``openmm-nnbias diffsim``: train a DiffSim bias on an embedded system (:mod:`openmm_nnbias.runners.diffsim`)."""

from ..recipes import system_names

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    """The ``diffsim`` subcommand on the subparsers ``sub``."""
    from ..recipes.diffsim.azobenzene import azobenzene_defaults_help

    ds = sub.add_parser("diffsim", help="train a barrier-crossing bias by differentiable simulation")
    ds.add_argument("--system", required=True, choices=system_names("diffsim"))
    ds.add_argument("--epochs", type=int, default=None,
                    help="total number of training epochs (default: the total of --stages)")
    ds.add_argument("--stages", default=None,
                    help="training stages TEMPERATURE_K:LR:EPOCHS[,...], e.g. 300:1e-2:4,1000:1e-3:2 "
                         "(default: azobenzene the schedule of its --potential, the others one stage at the system's T and rate)")
    ds.add_argument("--eval-replicas", type=int, default=0,
                    help="success fraction of this many replicas at the system's T, unbiased and after each "
                         "stage (default 0: none)")
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
    ds.set_defaults(func=run)


def run(args) -> None:
    """Run ``openmm-nnbias diffsim`` with the parsed ``args``."""
    from ..runners.diffsim import run_diffsim

    run_diffsim(args.system, args.out, args.epochs, replicas=args.replicas, steps=args.steps,
                restart=args.restart, seed=args.seed, threads=args.threads,
                progress=not args.no_progress, device=args.device, stages=args.stages,
                eval_replicas=args.eval_replicas, potential=args.potential)
    print(f"wrote {args.out}/bias.pt, checkpoint.pt, diffsim.log")
