"""``openmm-nnbias compare``: RMSE of a FES file against a reference (:func:`openmm_nnbias.analysis.compare_files`)."""

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    """The ``compare`` subcommand on the subparsers ``sub``."""
    c = sub.add_parser("compare", help="RMSE of a FES file against a reference over F < cutoff")
    c.add_argument("fes")
    c.add_argument("reference")
    c.add_argument("--cutoff", type=float, default=20.0, help="kJ/mol (default 20)")
    c.set_defaults(func=run)


def run(args) -> None:
    """Run ``openmm-nnbias compare`` with the parsed ``args``."""
    from ..analysis.compare import compare_files

    rmse, n = compare_files(args.fes, args.reference, args.cutoff)
    print(f"RMSE {rmse:.3f} kJ/mol over {n} grid points with F_ref < {args.cutoff} kJ/mol")
