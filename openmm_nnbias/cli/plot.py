"""``openmm-nnbias plot``: PNG plots of a run folder (:func:`openmm_nnbias.analysis.plot_run`)."""

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    """The ``plot`` subcommand on the subparsers ``sub``."""
    pl = sub.add_parser("plot", help="PNG plots of a run folder",
                        description="Write PNG plots into a run folder, one per file found: fes_bias.png and "
                                    "fes_reweighted.png (1D or 2D free energies), colvar.png (the CVs and V - c over "
                                    "time), ves.png (KL and learning rate per iteration), diffsim.png (DiffSim runs).")
    pl.add_argument("run", metavar="RUN", help="run folder (the --out of openmm-nnbias deepves or diffsim) "
                                                "holding colvar, ves.log, fes_*.dat or diffsim.log")
    pl.set_defaults(func=run)


def run(args) -> None:
    """Run ``openmm-nnbias plot`` with the parsed ``args``."""
    from ..analysis.plots import plot_run

    for path in plot_run(args.run):
        print(f"wrote {path}")
