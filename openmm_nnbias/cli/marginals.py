"""``openmm-nnbias marginals``: the 1-D marginals of the FES a run's bias implies (Eq. 4), for any number of CVs
(:func:`openmm_nnbias.analysis.bias_fes.bias_marginals_run`)."""

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    """The ``marginals`` subcommand on the subparsers ``sub``."""
    m = sub.add_parser("marginals", help="each CV's free-energy marginal implied by the bias (Eq. 4), "
                                         "RUN/fes_bias_<cv>.dat; for runs with more than 3 CVs")
    m.add_argument("run")
    m.add_argument("--bins", type=int, default=50, help="bins per CV (default 50)")
    m.add_argument("--points", type=float, default=12e6,
                   help="uniform Monte Carlo points of the CV box (default 1.2e7; the printed effective sample "
                        "size says how many count)")
    m.add_argument("--window", type=float, default=0.0,
                   help="0 (default): the bias of RUN/bias.pt; a fraction, e.g. 0.25: the mean over the bias "
                        "snapshots RUN/bias_<iteration>.pt of that last part of the run (fes.dat's rule while the "
                        "bias learns)")
    m.add_argument("--seed", type=int, default=0)
    m.set_defaults(func=run)


def run(args) -> None:
    """Run ``openmm-nnbias marginals`` with the parsed ``args``."""
    from ..analysis.bias_fes import bias_marginals_run

    if args.points != int(args.points) or args.points < 1:
        raise ValueError(f"--points must be a whole number >= 1, got {args.points:g}")
    if args.bins < 1:
        raise ValueError(f"--bins must be >= 1, got {args.bins}")
    paths, ess = bias_marginals_run(args.run, bins=args.bins, points=int(args.points), seed=args.seed,
                                    window=args.window)
    for path in paths:
        print(f"wrote {path}")
    print(f"effective sample size of the {int(args.points)} points: {ess:.0f}")
