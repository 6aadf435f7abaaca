"""Argument helpers shared by the subcommands: the parser that shows defaults and ``--steps``/``--time``."""

import argparse

from .._units import parse_time

__all__ = ["Parser", "steps_of"]


def _help_with_default(kwargs: dict) -> dict:
    """``add_argument`` keywords whose help shows the default when the text does not already state it."""
    text, default = kwargs.get("help"), kwargs.get("default")
    if text is argparse.SUPPRESS or default in (None, False, argparse.SUPPRESS):
        return kwargs
    if not text:
        return dict(kwargs, help="default: %(default)s")  # argparse shows no default for an option without help
    return kwargs if "default" in text else dict(kwargs, help=f"{text} (default: %(default)s)")


def _adding_defaults(add_argument):
    def add(*flags, **kwargs):
        optional = bool(flags) and flags[0].startswith("-")
        return add_argument(*flags, **(_help_with_default(kwargs) if optional else kwargs))
    return add


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose options show their default in ``--help`` (its subparsers and groups too)."""

    def add_argument(self, *flags, **kwargs):
        return _adding_defaults(super().add_argument)(*flags, **kwargs)

    def add_argument_group(self, *args, **kwargs):
        group = super().add_argument_group(*args, **kwargs)
        group.add_argument = _adding_defaults(group.add_argument)
        return group

    def add_mutually_exclusive_group(self, **kwargs):
        group = super().add_mutually_exclusive_group(**kwargs)
        group.add_argument = _adding_defaults(group.add_argument)
        return group


def steps_of(args, timestep_ps: float) -> int:
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
