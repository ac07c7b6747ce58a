"""``edgekit local device add | restart | remove | list | status | logs | deploy``: local devices.

Mounted by ``edgekit/cli/cmd_local.py`` under ``edgekit local``. Like every command
module, it imports the device manager (boto3, the local endpoints) only when a device
command runs, so building the parser for ``edgekit --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from edgekit.errors import ConfigurationError
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
    _runtime_options(add)
    add.set_defaults(handler=_add)

    restart = commands.add_parser(
        "restart",
        help="stop a device runtime and start it again (works while the MQTT broker is down)",
        description="The runtime keeps IoT Core messages in its spool until the broker is back.",
    )
    _runtime_options(restart)
    restart.set_defaults(handler=_restart)

    remove = commands.add_parser(
        "remove",
        help="stop a device runtime (and its components)",
        description="Stop the device runtime of THING; --purge also deletes its root folder "
        "and its Greengrass core device.",
    )
    add_home_option(remove)
    remove.add_argument("thing", help="IoT thing name")
    remove.add_argument(
        "--purge", action="store_true", help="also delete its root and the core device"
    )
    remove.set_defaults(handler=_remove)

    lst = commands.add_parser(
        "list",
        help="list local devices",
        description="One row per local device of the home: thing, pid (or stopped) and its "
        "components.",
    )
    add_home_option(lst)
    lst.set_defaults(handler=_list)

    status = commands.add_parser(
        "status",
        help="a device's components and its IoT Core bridge (spool, drops), as it last wrote them",
        description="THING's components and states, and its IoT Core bridge counters (spool, "
        "drops), as the runtime last wrote them.",
    )
    add_home_option(status)
    status.add_argument("thing", help="IoT thing name")
    status.add_argument("--json", action="store_true", help="print the whole status document")
    status.set_defaults(handler=_status)

    logs = commands.add_parser(
        "logs",
        help="print a device's runtime log or a component's log",
        description="Print THING's runtime log, or COMPONENT's log on THING.",
    )
    add_home_option(logs)
    logs.add_argument("thing", help="IoT thing name")
    logs.add_argument("component", nargs="?", help="component name (default: the runtime log)")
    logs.add_argument("--tail", type=int, help="only the last N lines")
    logs.set_defaults(handler=_logs)

    deploy = commands.add_parser(
        "deploy",
        help="a local deployment from recipe and artifact folders (greengrass-cli deployment "
        "create), no publishing",
        description="Deploy components to THING from local folders, as `greengrass-cli "
        "deployment create` does on a real core device: recipes from --recipe-dir, artifacts "
        "from --artifact-dir/<name>/<version>/. The local deployment group (LOCAL_DEPLOYMENT) "
        "keeps its components between calls (--merge adds or updates, --remove takes out) and "
        "runs next to the cloud deployments. Waits and prints the outcome; exit code 1 if it "
        "failed (rolled back unless --failure-handling-policy DO_NOTHING).",
    )
    add_home_option(deploy)
    deploy.add_argument("thing", help="IoT thing name of the local device")
    deploy.add_argument("--recipe-dir", "-r", help="folder of component recipe files")
    deploy.add_argument(
        "--artifact-dir", "-a", help="folder of artifacts: <dir>/<component>/<version>/<files>"
    )
    deploy.add_argument(
        "--merge", "-m", action="append", metavar="NAME=VERSION", help="add or update a component"
    )
    deploy.add_argument(
        "--remove", action="append", metavar="NAME[,NAME]", help="remove components"
    )
    deploy.add_argument(
        "--update-config",
        "-c",
        metavar="JSON",
        help='configuration updates, JSON or a JSON file: {"NAME": {"MERGE": {...}, '
        '"RESET": ["/key"]}}',
    )
    deploy.add_argument(
        "--group-id", "-g", default="LOCAL_DEPLOYMENT", help="local deployment group"
    )
    deploy.add_argument(
        "--failure-handling-policy",
        default="ROLLBACK",
        choices=("ROLLBACK", "DO_NOTHING"),
        help="what a failure does (default ROLLBACK)",
    )
    deploy.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for the outcome"
    )
    deploy.set_defaults(handler=_deploy)


def _runtime_options(parser: argparse.ArgumentParser) -> None:
    """What starting a device runtime takes (`add` and `restart`)."""
    add_home_option(parser)
    parser.add_argument("thing", help="IoT thing name")
    parser.add_argument("--thing-group", help="thing group (default: Settings thing_group)")
    parser.add_argument("--poll", type=float, default=0.5, help="deployment poll interval (s)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for it")


def _home(args: argparse.Namespace) -> str | None:
    return getattr(args, "home", None)


def _add(args: argparse.Namespace) -> int:
    from edgekit.local.device.manager import add_device

    info = add_device(
        args.thing, args.thing_group, _home(args), poll=args.poll, timeout=args.timeout
    )
    print(f"device {info.thing} running (pid {info.pid}, root {info.root})")
    return 0


def _restart(args: argparse.Namespace) -> int:
    from edgekit.local.device.manager import add_device, remove_device

    remove_device(args.thing, _home(args))
    info = add_device(
        args.thing, args.thing_group, _home(args), poll=args.poll, timeout=args.timeout
    )
    print(f"device {info.thing} restarted (pid {info.pid}, root {info.root})")
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


# What `status` prints about the IoT Core bridge: (key, label), in order.
MQTT_COUNTERS = (
    ("refused_full", "publishes refused, spool full"),
    ("dropped_qos0", "QoS 0 dropped to make room"),
    ("lost_qos0", "QoS 0 lost with the connection"),
    ("dropped", "dropped after the broker refused them"),
    ("refusals", "connections the broker closed on a message"),
    ("corrupt", "damaged spool records ignored at start"),
)


def format_status(thing: str, pid: int | None, status: dict[str, Any] | None) -> str:
    """The text of ``edgekit local device status``."""
    state = f"running (pid {pid})" if pid else "stopped"
    lines = [f"device {thing}: {state}"]
    if status is None:
        lines.append("  no status written yet (has this device runtime ever run?)")
        return "\n".join(lines) + "\n"
    age = max(0.0, time.time() - float(status.get("writtenAt", 0.0)))
    lines.append(f"  health {status.get('status', '?')}, as of {age:.0f} s ago")
    if not status.get("controlPlaneReachable", True):
        lines.append("  the control plane (local endpoints) was unreachable")
    lines.append(f"  {'COMPONENT':<40} {'VERSION':<12} STATE")
    for row in status.get("components", []):
        lines.append(
            f"  {row.get('componentName', '?'):<40} {row.get('componentVersion', '?'):<12} "
            f"{row.get('lifecycleState', '?')}"
        )
    mqtt = status.get("mqtt") or {}
    if not mqtt:
        lines.append("  IoT Core bridge: none (no MQTT broker configured, or IPC is off)")
        return "\n".join(lines) + "\n"
    link = "connected" if mqtt.get("connected") else "NOT connected (spooling)"
    lines.append(
        f"  IoT Core bridge: {link}; connected {mqtt.get('reconnects', 0)} times since start"
    )
    lines.append(
        f"  spool ({mqtt.get('storage', '?')}): {mqtt.get('queued', 0)} messages, "
        f"{mqtt.get('queued_bytes', 0)} of {mqtt.get('max_bytes', 0)} bytes "
        "(mqtt.spooler.maxSizeInBytes); "
        f"{mqtt.get('replayed', 0)} read back at the last start"
    )
    lines.append("  drops and refusals:")
    lines.extend(f"    {label:<44} {mqtt.get(key, 0)}" for key, label in MQTT_COUNTERS)
    return "\n".join(lines) + "\n"


def _status(args: argparse.Namespace) -> int:
    from edgekit.local.device.manager import list_devices
    from edgekit.local.device.status import read_local_status

    device = next((d for d in list_devices(_home(args)) if d.thing == args.thing), None)
    if device is None:
        raise ConfigurationError(
            f"no local device {args.thing}; add one with `edgekit local device add THING`"
        )
    status = read_local_status(device.root)
    if args.json:
        print(json.dumps({"thing": device.thing, "pid": device.pid, "status": status}, indent=1))
    else:
        sys.stdout.write(format_status(device.thing, device.pid, status))
    return 0


def _logs(args: argparse.Namespace) -> int:
    from edgekit.local.device.manager import device_logs

    sys.stdout.write(device_logs(args.thing, args.component, _home(args), tail=args.tail))
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from edgekit.local.device.local_deployments import (
        format_result,
        parse_merge,
        parse_remove,
        parse_update_config,
        submit,
        wait_result,
    )
    from edgekit.local.home import HomeLayout

    root = HomeLayout.of(_home(args)).device_root(args.thing)
    merge = parse_merge(args.merge)
    remove = parse_remove(args.remove)
    if not (merge or remove or args.update_config):
        raise ConfigurationError(
            "nothing to deploy: give --merge NAME=VERSION (with --recipe-dir for components "
            "that are not published), --remove NAME or --update-config"
        )
    deployment_id = submit(
        root,
        recipe_dir=args.recipe_dir,
        artifact_dir=args.artifact_dir,
        merge=merge,
        remove=remove,
        update_config=parse_update_config(args.update_config),
        group=args.group_id,
        failure_policy=args.failure_handling_policy,
    )
    print(f"local deployment {deployment_id} queued on {args.thing}; waiting for it", flush=True)
    result = wait_result(root, deployment_id, timeout=args.timeout)
    sys.stdout.write(format_result(result))
    return 0 if result.get("executionStatus") == "SUCCEEDED" else 1
