"""``edgekit local device add | remove | list | logs``: local Greengrass core devices.

Mounted by ``edgekit/cli/cmd_local.py`` under ``edgekit local``. Like every command
module, it imports the device manager (boto3, the local endpoints) only when a device
command runs, so building the parser for ``edgekit --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from edgekit.local.home import add_home_option


def register(local_subparsers: argparse._SubParsersAction) -> None:
    device = local_subparsers.add_parser(
        "device",
        help="add, remove, list local Greengrass core devices and read their logs",
        description="Each local device is one detached runtime process per IoT thing.",
    )
    add_home_option(device)
    device.set_defaults(handler=lambda args: (device.print_help(), 2)[1])
    commands = device.add_subparsers(dest="device_command", metavar="COMMAND")

    add = commands.add_parser(
        "add",
        help="register a thing (and its group) and start its device runtime",
        description="Idempotent: a running device is left as it is.",
    )
    add_home_option(add)
    add.add_argument("thing", help="IoT thing name")
    add.add_argument("--thing-group", help="thing group (default: Settings thing_group)")
    add.add_argument("--poll", type=float, default=0.5, help="deployment poll interval (s)")
    add.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for it")
    add.set_defaults(handler=_add)

    remove = commands.add_parser("remove", help="stop a device runtime (and its components)")
    add_home_option(remove)
    remove.add_argument("thing")
    remove.add_argument(
        "--purge", action="store_true", help="also delete its root and the core device"
    )
    remove.set_defaults(handler=_remove)

    lst = commands.add_parser("list", help="list local devices")
    add_home_option(lst)
    lst.set_defaults(handler=_list)

    logs = commands.add_parser("logs", help="print a device's runtime log or a component's log")
    add_home_option(logs)
    logs.add_argument("thing")
    logs.add_argument("component", nargs="?", help="component name (default: the runtime log)")
    logs.add_argument("--tail", type=int, help="only the last N lines")
    logs.set_defaults(handler=_logs)


def _home(args: argparse.Namespace) -> str | None:
    return getattr(args, "home", None)


def _add(args: argparse.Namespace) -> int:
    from edgekit.local.device.manager import add_device

    info = add_device(
        args.thing, args.thing_group, _home(args), poll=args.poll, timeout=args.timeout
    )
    print(f"device {info.thing} running (pid {info.pid}, root {info.root})")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from edgekit.local.device.manager import remove_device

    stopped = remove_device(args.thing, _home(args), purge=args.purge)
    state = "stopped" if stopped else "was not running"
    print(f"device {args.thing} {state}" + ("; root and core device deleted" if args.purge else ""))
    return 0


def _list(args: argparse.Namespace) -> int:
    from edgekit.local.device.manager import list_devices

    devices = list_devices(_home(args))
    if not devices:
        print("no local devices; add one with `edgekit local device add THING`")
        return 0
    print(f"{'THING':<24} {'PID':>8}  COMPONENTS")
    for d in devices:
        comps = ", ".join(f"{n} {v}" for n, v in sorted(d.components.items())) or "-"
        print(f"{d.thing:<24} {d.pid if d.pid else 'stopped':>8}  {comps}")
    return 0


def _logs(args: argparse.Namespace) -> int:
    from edgekit.local.device.manager import device_logs

    sys.stdout.write(device_logs(args.thing, args.component, _home(args), tail=args.tail))
    return 0
