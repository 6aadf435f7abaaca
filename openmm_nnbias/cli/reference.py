"""``openmm-nnbias reference``: a WT-metadynamics reference FES (:mod:`openmm_nnbias.runners.reference`)."""

from ..recipes import system_names
from ._args import steps_of

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    """The ``reference`` subcommand on the subparsers ``sub``."""
    r = sub.add_parser("reference", help="reference FES with OpenMM WT-metadynamics (Ala2: phi/psi; "
                                         "Ala4: phi1, phi2, phi3)")
    r.add_argument("--system", default="alanine-dipeptide", choices=system_names("metad"))
    r.add_argument("--steps", type=int, default=None, help="MD steps (instead of --time)")
    r.add_argument("--restart", action="store_true", help="alanine-tetrapeptide, alanine-dipeptide-solvated(-hmr): continue OUT/checkpoint.pkl")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--time", default="50ns")
    r.add_argument("--out", required=True)
    r.add_argument("--platform", default="CPU")
    r.add_argument("--threads", type=int, default=1)
    r.set_defaults(func=run)


def run(args) -> None:
    """Run ``openmm-nnbias reference`` with the parsed ``args``."""
    from ..recipes import get_recipe
    from ..runners.reference import run_reference

    dt = get_recipe(args.system, "metad").timestep
    time_ns = steps_of(args, dt) * dt / 1000
    path = run_reference(args.out, time_ns, platform=args.platform, threads=args.threads,
                         system=args.system, restart=args.restart, progress=not args.no_progress)
    print(f"wrote {path}")
