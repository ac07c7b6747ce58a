"""``edgekit local up | down | status | env`` (and ``edgekit local device ...``).

The local endpoints run detached under one home folder (``--home``, else
``EDGEKIT_LOCAL_HOME``, else ~/.local/state/edgekit), so they outlive the shell
or notebook kernel that started them.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys

from edgekit.local.home import add_home_option

_PLAIN = re.compile(r"^[A-Za-z0-9_./:@%+,=-]*$")


def register(subparsers: argparse._SubParsersAction) -> None:
    local = subparsers.add_parser(
        "local",
        help="start, inspect and stop the local endpoints (moto, Greengrass, MQTT)",
        description=(
            "Run AWS (moto), the Greengrass v2 control plane and an MQTT broker on 127.0.0.1 "
            "so notebooks and tests use the same boto3 calls as on AWS."
        ),
    )
    add_home_option(local)
    local.set_defaults(handler=lambda args: _help(local))
    commands = local.add_subparsers(dest="local_command", metavar="COMMAND")

    up = commands.add_parser(
        "up",
        help="start the local endpoints (idempotent)",
        description="Start what is not running, keep what answers, print the endpoints.",
    )
    add_home_option(up)
    up.add_argument(
        "--region",
        help="AWS region (default: $EDGEKIT_REGION, else the running one, else us-east-1)",
    )
    up.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for each server (default 60)"
    )
    up.add_argument(
        "--fresh",
        action="store_true",
        help="start the emulated AWS services (moto) empty: the saved state "
        "(<home>/moto/state.pickle) is renamed to *.bak, never deleted",
    )
    up.set_defaults(handler=_up)

    down = commands.add_parser(
        "down",
        help="stop the local endpoints and every local device runtime (idempotent); moto "
        "saves its state first, and the next `up` restores it",
        description="Stop every local device runtime and the endpoints of the home. Moto saves "
        "its state first (<home>/moto/state.pickle); the next `edgekit local up` restores it.",
    )
    add_home_option(down)
    down.set_defaults(handler=_down)

    status = commands.add_parser(
        "status",
        help="show each process: pid, endpoint, alive, answering (exit 1 if one is down)",
        description="One row per local process of the home; exit 1 if one is not running or "
        "not answering.",
    )
    add_home_option(status)
    status.set_defaults(handler=_status)

    env = commands.add_parser(
        "env",
        help="print the environment that points boto3/AWS CLI at the local endpoints",
        description='Use it as: eval "$(edgekit local env)"',
    )
    add_home_option(env)
    env.add_argument(
        "--format",
        choices=("export", "dotenv", "json"),
        default="export",
        help="shell `export` lines (default), a .env file, or JSON",
    )
    env.set_defaults(handler=_env)

    # ``edgekit local device ...`` lives with the device runtime.
    from edgekit.local.device.cli import register as register_device

    register_device(commands)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _home(args: argparse.Namespace) -> str | None:
    return getattr(args, "home", None)


def _up(args: argparse.Namespace) -> int:
    from edgekit.local.endpoints import fresh_moto_state, up

    if args.fresh:
        aside = fresh_moto_state(_home(args))
        print(
            f"moto starts empty; its previous state is kept as {aside}"
            if aside
            else "moto starts empty (it had no saved state)"
        )
    endpoints = up(_home(args), region=args.region, timeout=args.timeout)
    print(f"home:       {endpoints.home}")
    print(f"region:     {endpoints.region}")
    print(f"moto:       {endpoints.moto_url}")
    print(f"greengrass: {endpoints.greengrass_url}")
    print(f"mqtt:       {endpoints.mqtt}")
    home_flag = f" --home {shlex.quote(str(endpoints.home))}" if _home(args) else ""
    print(f'use them in a shell with: eval "$(edgekit local env{home_flag})"')
    return 0


def _down(args: argparse.Namespace) -> int:
    from edgekit.local.endpoints import down

    stopped = down(_home(args))
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    return 0


def _status(args: argparse.Namespace) -> int:
    from edgekit.local.endpoints import status

    rows = status(_home(args))
    table = [("NAME", "PID", "ENDPOINT", "ALIVE", "ANSWERING")]
    for row in rows:
        table.append(
            (
                row.name,
                str(row.pid) if row.pid is not None else "-",
                row.endpoint,
                "yes" if row.alive else "no",
                "yes" if row.answering else "no",
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip())
    down = [row.name for row in rows if not row.ok]
    if down:
        print(f"not running or not answering: {', '.join(down)}", file=sys.stderr)
        return 1
    return 0


def _env(args: argparse.Namespace) -> int:
    from edgekit.local.endpoints import LocalEndpoints

    variables = LocalEndpoints.load(_home(args)).env()
    if args.format == "json":
        print(json.dumps(variables, indent=2, sort_keys=True))
    elif args.format == "dotenv":
        for key, value in variables.items():
            print(f"{key}={value if _PLAIN.match(value) else json.dumps(value)}")
    else:
        for key, value in variables.items():
            print(f"export {key}={shlex.quote(value)}")
    return 0
