"""The ``edgekit`` command.

Each ``edgekit/cli/cmd_*.py`` module contributes its sub-commands through a
``register(subparsers)`` function, so command groups stay independent. A
command handler returns an exit code; an :class:`~edgekit.errors.EdgekitError`
is printed as one line on stderr with exit code 1, never a traceback.

Every sub-command has a one-line ``help`` and a ``description``. An argument's ``dest`` is
the name of the library parameter it sets (``--devices`` -> ``device_count``): a message
naming that parameter (:func:`edgekit.spelling.parameter_text`) then names the flag.

Owns: argument parsing and printing only; every command calls the library's public
functions (options such as ``--home`` become Settings fields). It sits on top of every
other package and nothing in edgekit imports it (so it must not be imported, and
must not import anything private of another package). A handler imports its subsystem when
it runs, so ``edgekit --help`` does not load boto3, ONNX Runtime or the local servers.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from edgekit.errors import EdgekitError
from edgekit.spelling import command_line_spelling


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgekit",
        description="Take a visual inspection model from a notebook to Greengrass devices.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            module = importlib.import_module(f"{__name__}.{info.name}")
            module.register(subparsers)
    _set_flags(parser)
    return parser


def _flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Parameter (an argument's ``dest``) -> its flag as typed: ``--force``, ``--devices {}``."""
    flags: dict[str, str] = {}
    for action in parser._actions:
        if not action.option_strings or action.dest in (argparse.SUPPRESS, "help"):
            continue
        names = [o for o in action.option_strings if o.startswith("--")] or action.option_strings
        flags[action.dest] = names[0] if action.nargs == 0 else f"{names[0]} {{}}"
    return flags


def _set_flags(parser: argparse.ArgumentParser) -> None:
    """Give every (sub-)parser its flags as a default: the one that parses last wins."""
    parser.set_defaults(_flags=_flags(parser))
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _set_flags(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from edgekit.version import __version__

        print(__version__)
        return 0
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        with command_line_spelling(getattr(args, "_flags", {})):
            return int(handler(args) or 0)
    except EdgekitError as exc:
        print(f"edgekit {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"edgekit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
