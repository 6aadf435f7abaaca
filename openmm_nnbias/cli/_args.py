"""Argument helpers shared by the subcommands: the help formatter and ``--steps``/``--time``."""

import argparse

from .._units import parse_time

__all__ = ["Help", "steps_of"]


class Help(argparse.HelpFormatter):
    """Help that shows a default when the text does not already state it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"

    def _format_action(self, action):
        if not action.help and action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            action.help = "default: %(default)s"  # argparse shows no default for an option without help
        return super()._format_action(action)


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
