"""Argument helpers shared by the subcommands: the parser that shows defaults, ``--steps``/``--time``, the
options added (:class:`Options`) and library messages in terms of the options (:func:`flag_message`)."""

import argparse
import re

from .._units import parse_time

__all__ = ["Parser", "Options", "flag_message", "flag_words", "steps_of"]


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


class Options(dict):
    """The options of one subcommand as they are added: ``dest`` -> the ``Action`` of ``add_argument``.

    An option's ``dest`` is the name of the Python parameter it sets: ``dest=`` when given, else the
    camelCase of its long flag (``--sample-stride`` -> ``sampleStride``); its metavar in ``--help``
    stays the flag's (``SAMPLE_STRIDE``).
    """

    def add(self, container, *names, **kwargs):
        """``container.add_argument(*names, **kwargs)``, recorded; returns the Action."""
        if names[0].startswith("--"):
            kwargs.setdefault("dest", camel(names[0]))
            if not {"action", "choices", "metavar"} & set(kwargs):  # --sample-stride SAMPLE_STRIDE in --help
                kwargs["metavar"] = names[0].lstrip("-").replace("-", "_").upper()
        action = container.add_argument(*names, **kwargs)
        self[action.dest] = action
        return action

    def flags(self) -> dict:
        """``dest`` -> first long option string (``{"sampleStride": "--sample-stride"}``)."""
        return {dest: next(s for s in a.option_strings if s.startswith("--"))
                for dest, a in self.items() if any(s.startswith("--") for s in a.option_strings)}


def camel(flag: str) -> str:
    """``"--sample-stride"`` -> ``"sampleStride"``."""
    first, *rest = flag.lstrip("-").split("-")
    return first + "".join(w.capitalize() for w in rest)


#: what follows the parameters that a library message starts with: "mts must be", "a, b and c apply"
_CUE = r"(?::|\s+(?:must|takes|applies|apply|needs|need|is only|is required|cannot|does not)\b)"


def flag_message(text: str, flags: dict) -> str:
    """A library message with the Python parameters of ``flags`` (dest -> flag) replaced by their flags.

    Only a clause's subject is replaced (the start of the message or the part after ``"; "``): one
    name followed by a space, ``:``, ``=`` or ``,``, or a list of names (``a, b and c``) followed by
    ``must``, ``takes``, ``applies``, ``needs``, ``is only``, ``cannot``, ``:``. A name inside a
    sentence, in ``a.b``, a path or quotes stays.

    Examples
    --------
    >>> flags = {"mts": "--mts", "input": "--input", "decayAfter": "--decay-after", "recrossings": "--recrossings",
    ...          "backend": "--backend"}
    >>> flag_message("mts must be an integer >= 1, got 0", flags)
    '--mts must be an integer >= 1, got 0'
    >>> flag_message("decayAfter needs recrossings > 0", flags)
    '--decay-after needs recrossings > 0'
    >>> flag_message("recrossings and decayAfter apply to alanine-tetrapeptide only", flags)
    '--recrossings and --decay-after apply to alanine-tetrapeptide only'
    >>> flag_message("deepves.backend: the cvforce backend takes force CVs only", flags)
    'deepves.backend: the cvforce backend takes force CVs only'
    >>> flag_message("the input file: system.xml must exist", flags)
    'the input file: system.xml must exist'
    """
    if not flags:
        return text
    names = "|".join(re.escape(n) for n in sorted(flags, key=len, reverse=True))
    word = rf"(?<![\w.\-/'\"=])(?:{names})(?![\w.\-/'\"])"
    clause = r"(?:\A|(?<=; ))"

    def one(match):
        return flags[match.group(0)]

    listed = re.compile(rf"{clause}{word}(?:(?:,\s*|\s+(?:and|or)\s+){word})+(?={_CUE})")
    text = listed.sub(lambda m: re.sub(word, one, m.group(0)), text)
    return re.sub(rf"{clause}{word}(?=[\s:=,]|\Z)", one, text)


def flag_words(text: str, flags: dict) -> str:
    """``text`` with every camelCase parameter of ``flags`` (one with a capital, e.g. ``learnerCPUs``) named by its flag.

    Such names are no English word, so they are replaced anywhere in a sentence, except as a key of an
    input-file section (``deepves.learnerCPUs``), in a path or in quotes.

    Examples
    --------
    >>> flag_words("give the learner another CPU with learnerCPUs", {"learnerCPUs": "--learner-cpus", "mts": "--mts"})
    'give the learner another CPU with --learner-cpus'
    >>> flag_words("deepves.learnerCPUs must be a list", {"learnerCPUs": "--learner-cpus"})
    'deepves.learnerCPUs must be a list'
    """
    camel = [n for n in flags if any(c.isupper() for c in n)]
    if not camel:
        return text
    names = "|".join(re.escape(n) for n in sorted(camel, key=len, reverse=True))
    return re.sub(rf"(?<![\w.\-/'\"=])(?:{names})(?![\w\-/'\"])", lambda m: flags[m.group(0)], text)


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
