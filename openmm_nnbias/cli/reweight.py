"""``openmm-nnbias reweight``: the reweighted FES of a run's colvar (:func:`openmm_nnbias.analysis.reweight_run`)."""

from .._units import KB, parse_time

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    """The ``reweight`` subcommand on the subparsers ``sub``."""
    rw = sub.add_parser("reweight", help="reweighted FES from a run's colvar (weights exp(rbias/kT))")
    rw.add_argument("run")
    rw.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    rw.add_argument("--from", dest="t_min", default="0ps", help="start time, e.g. 12ns")
    rw.add_argument("--to", dest="t_max", default=None, help="end time")
    rw.add_argument("--column", default="rbias", choices=["rbias", "bias"])
    rw.add_argument("--bins", type=int, default=50)
    rw.add_argument("--output", default=None, help="default RUN/fes_colvar_reweighted.dat")
    rw.set_defaults(func=run)


def run(args) -> None:
    """Run ``openmm-nnbias reweight`` with the parsed ``args``."""
    from ..analysis.reweight import reweight_run

    t_min = parse_time(args.t_min, "--from")
    t_max = parse_time(args.t_max, "--to") if args.t_max else float("inf")
    path = reweight_run(args.run, KB * args.temperature, bins=args.bins, column=args.column, t_min=t_min, t_max=t_max,
                        output=args.output)
    print(f"wrote {path}")
