"""Command line: ``openmm-nnbias deepves | reference | compare | reweight | marginals | diffsim | plot``."""

# One module per subcommand (.deepves, .reference, .compare, .reweight, .marginals, .diffsim, .plot): each adds its parser
# with set_defaults(func=...) and, where it records its options (_args.Options), options=...; the systems
# offered come from openmm_nnbias.recipes.system_names. The work is done by openmm_nnbias.runners and
# openmm_nnbias.analysis, whose messages name Python parameters: _main names the flags instead.

import os
import sys

from .. import __version__
from . import compare, deepves, diffsim, marginals, plot, reference, reweight
from ._args import Parser, flag_message, flag_words

__all__ = ["main"]

#: the running subcommand's options, dest -> flag: warnings printed during the run name the flags
_FLAGS: dict = {}

#: The subcommands in the order of ``--help``.
SUBCOMMANDS = (deepves, reference, compare, reweight, marginals, diffsim, plot)


def _parser():
    p = Parser(prog="openmm-nnbias", description=__doc__)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for command in SUBCOMMANDS:
        command.add_parser(sub)
    return p


def _log_to_terminal() -> None:
    """The package's log records (INFO and above) reach a CLI user as plain lines on stderr."""
    import logging

    class _Stderr(logging.Handler):  # the sys.stderr of the moment (not the one at set-up)
        def emit(self, record):
            sys.stderr.write(self.format(record) + "\n")

    logger = logging.getLogger("openmm_nnbias")
    if not any(type(h).__name__ == "_Stderr" for h in logger.handlers):  # once per process
        logger.addHandler(_Stderr())
        logger.setLevel(logging.INFO)


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as one line ``openmm-nnbias: warning: ...`` (no source path, no code line).

    Installed as ``warnings.formatwarning``, not ``showwarning``: warnings that a caller records
    (``warnings.catch_warnings(record=True)``, ``pytest.warns``) are still recorded, not printed.
    """
    text = flag_words(flag_message(" ".join(str(message).split("\n")), _FLAGS), _FLAGS)
    return f"openmm-nnbias: warning: {text}\n"


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status (2: error).

    A bad argument or input (``ValueError``, ``TypeError``, ``FileNotFoundError``) is one line on
    stderr, the library's parameter names in it replaced by the subcommand's flags
    (:func:`~openmm_nnbias.cli._args.flag_message`); with the environment variable
    ``OPENMM_NNBIAS_TRACEBACK=1`` it is raised with its
    traceback instead (for a bug report). Warnings are one line each, ``openmm-nnbias: warning: ...``.
    """
    import warnings

    formatted, warnings.formatwarning = warnings.formatwarning, _format_warning
    try:
        return _main(argv)
    finally:
        warnings.formatwarning = formatted


def _main(argv) -> int:
    args = _parser().parse_args(argv)
    _log_to_terminal()
    options = getattr(args, "options", None)
    _FLAGS.clear()
    _FLAGS.update(options.flags() if options is not None else {})
    try:
        args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        if os.environ.get("OPENMM_NNBIAS_TRACEBACK", "") not in ("", "0"):
            raise
        text = flag_message(str(exc), _FLAGS)
        print(f"openmm-nnbias: error: {text}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
