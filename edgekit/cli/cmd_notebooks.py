"""``edgekit notebooks DIR``: write the notebooks that ship with edgekit into a folder."""

from __future__ import annotations

import argparse

from edgekit.resources import write_notebooks


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "notebooks",
        help="write the six workshop notebooks (01-05, 99) into a folder for JupyterLab",
        description=(
            "Copy the notebooks installed with edgekit into DIR (created if needed). Files "
            "already there with the same content are left alone; changed ones are kept "
            "unless --force is given."
        ),
    )
    parser.add_argument("dir", metavar="DIR", help="folder to write the notebooks into")
    parser.add_argument(
        "--force", action="store_true", help="overwrite notebooks that differ (edited or executed)"
    )
    parser.set_defaults(handler=_notebooks)


def _notebooks(args: argparse.Namespace) -> int:
    written = write_notebooks(args.dir, force=args.force)
    for item in written:
        print(f"{item.status:9s} {item.path}")
    folder = written[0].path.parent if written else args.dir
    print(f"open them with: jupyter lab {folder}")
    return 0
