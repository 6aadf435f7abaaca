"""``openmm-nnbias reference``: a WT-metadynamics reference FES (:mod:`openmm_nnbias.runners.reference`)."""

from ..recipes import system_names
from ._args import Options, steps_of

__all__ = ["add_parser", "run"]


def _default(name: str):
    """The default of the keyword ``name`` of :func:`~openmm_nnbias.runners.reference.run_reference`."""
    import inspect

    from ..runners.reference import run_reference

    return inspect.signature(run_reference).parameters[name].default


def add_parser(sub) -> None:
    """The ``reference`` subcommand on the subparsers ``sub``."""
    r = sub.add_parser("reference", help="reference FES with OpenMM WT-metadynamics (Ala2: phi/psi; "
                                         "Ala4: phi1, phi2, phi3)")
    options = Options()
    options.add(r, "--system", help=f"an embedded system (default {_default('system')})", choices=system_names("metad"))
    options.add(r, "--steps", type=int, help="MD steps (instead of --time)")
    options.add(r, "--restart", action="store_true",
                help="alanine-tetrapeptide, alanine-dipeptide-solvated(-hmr): continue OUT/checkpoint.pt")
    options.add(r, "--no-progress", action="store_true")
    options.add(r, "--time", help=f"simulated time with its unit, e.g. 20ns (default {_default('timeNs'):g}ns)")
    options.add(r, "--out", required=True)
    options.add(r, "--platform", help=f"OpenMM platform (default {_default('platform')})")
    options.add(r, "--threads", type=int, help=f"CPU platform threads (default {_default('threads')})")
    r.set_defaults(func=run, options=options)


def run(args) -> None:
    """Run ``openmm-nnbias reference`` with the parsed ``args``."""
    from ..recipes import get_recipe
    from ..runners.reference import run_reference

    given = {k: getattr(args, k) for k in ("system", "platform", "threads")}
    kwargs = {k: v for k, v in given.items() if v is not None}
    if args.time is not None or args.steps is not None:
        dt = get_recipe(kwargs.get("system", _default("system")), "metad").timestep
        kwargs["timeNs"] = steps_of(args, dt) * dt / 1000
    path = run_reference(args.out, restart=args.restart, progress=not args.noProgress, **kwargs)
    print(f"wrote {path}")
