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
    rw.add_argument("--cvs", default=None,
                    help="comma-separated CVs to reweight over (at most 3; default: every CV of the colvar, or, for a "
                         "run with more than 3, each CV's 1-D marginal in RUN/fes_colvar_reweighted_<cv>.dat)")
    rw.add_argument("--output", default=None,
                    help="default RUN/fes_colvar_reweighted.dat (RUN/fes_colvar_reweighted_<cvs>.dat with --cvs)")
    rw.set_defaults(func=run)


def run(args) -> None:
    """Run ``openmm-nnbias reweight`` with the parsed ``args``."""
    import os

    from ..analysis.reweight import MAX_REWEIGHT_CVS, reweight_marginals_run, reweight_run
    from ..io import read_fields

    t_min = parse_time(args.t_min, "--from")
    t_max = parse_time(args.t_max, "--to") if args.t_max else float("inf")
    cvs = [c.strip() for c in args.cvs.split(",")] if args.cvs else None
    if cvs is not None and len(cvs) > MAX_REWEIGHT_CVS:
        raise ValueError(f"--cvs: a reweighted FES is made over at most {MAX_REWEIGHT_CVS} CVs, got {len(cvs)} "
                         f"({args.cvs})")
    kw = dict(bins=args.bins, column=args.column, t_min=t_min, t_max=t_max)
    if cvs is None:
        fields = read_fields(os.path.join(args.run, "colvar"))  # the header only; the frames are read once below
        n_cvs = len([k for k in fields if k not in ("time", "bias", "rbias")])
        if n_cvs > MAX_REWEIGHT_CVS:  # each 1-D marginal
            if args.output:
                raise ValueError(f"--output names one file, but a run with {n_cvs} CVs writes one marginal "
                                 "per CV: give --cvs (at most 3) with --output")
            for path in reweight_marginals_run(args.run, KB * args.temperature, **kw):
                print(f"wrote {path}")
            return
    print(f"wrote {reweight_run(args.run, KB * args.temperature, output=args.output, cvs=cvs, **kw)}")
