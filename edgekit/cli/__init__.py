"""The ``edgekit`` command.

Each ``edgekit/cli/cmd_*.py`` module contributes its sub-commands through a
``register(subparsers)`` function, so command groups stay independent. A
command handler returns an exit code; an :class:`~edgekit.errors.EdgekitError`
is printed as one line on stderr with exit code 1, never a traceback.

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
    return parser


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
        return int(handler(args) or 0)
    except EdgekitError as exc:
        print(f"edgekit {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"edgekit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
