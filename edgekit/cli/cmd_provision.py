"""``edgekit provision`` and ``edgekit deprovision``: the device stack and its devices.

``provision`` deploys the Greengrass device stack (CloudFormation, on AWS or the local
moto) and brings up the devices: local device runtimes, or the stack's EC2 instance on
AWS. It is idempotent; ``--show`` only prints what exists. ``deprovision`` removes the
local devices and deletes the stack; ``--components`` also cancels the deployments to
the thing group and deletes every version of the components edgekit publishes.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    prov = subparsers.add_parser(
        "provision",
        help="create the Greengrass device stack and its core devices (idempotent)",
        description=(
            "Deploy the device stack (cloudformation/greengrass-device.yaml) and wait until "
            "every device is a HEALTHY core device in the thing group. Locally each thing is "
            "a device runtime on the local endpoints (started if needed); on AWS the stack's "
            "EC2 instance is the one device. Running it again creates only what is missing."
        ),
    )
    prov.add_argument(
        "--devices", dest="device_count", type=int, default=1, metavar="N", help="number of devices"
    )
    prov.add_argument("--thing-group", default=None, metavar="G", help="thing group name")
    prov.add_argument(
        "--stack-name", default=None, metavar="S", help="stack name (default: <project>-device)"
    )
    prov.add_argument(
        "--thing-prefix", default=None, metavar="P", help="things are P-1..P-N (<project>-core)"
    )
    prov.add_argument(
        "--show", action="store_true", help="only print what is provisioned; change nothing"
    )
    prov.add_argument("--json", action="store_true", help="print the result as JSON")
    prov.set_defaults(handler=_provision)

    deprov = subparsers.add_parser(
        "deprovision",
        help="remove the local devices and delete the device stack",
        description=(
            "Stop and forget the local device runtimes of the thing group (nothing to do on "
            "AWS: the instance goes with the stack), then delete the stack, emptying its "
            "bucket. Nothing to delete is fine."
        ),
    )
    deprov.add_argument(
        "--stack-name", default=None, metavar="S", help="stack name (default: <project>-device)"
    )
    deprov.add_argument(
        "--thing-group", default=None, metavar="G", help="used when the stack is already gone"
    )
    deprov.add_argument("--keep-devices", action="store_true", help="leave the devices running")
    deprov.add_argument(
        "--components",
        action="store_true",
        help="also cancel deployments to the thing group and delete edgekit's components",
    )
    deprov.set_defaults(handler=_deprovision)


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [list(columns)] + [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def _print_provisioned(result: Any, as_json: bool) -> None:
    if as_json:
        data = result.to_json()
        data["devices"] = result.to_rows()
        print(json.dumps(data, indent=2))
        return
    print(f"stack {result.stack_name} ({result.backend}, {result.region})")
    print(_table(result.output_rows(), ["output", "value"]))
    print()
    print(_table(result.to_rows(), ["thing", "status", "core_version", "platform"]))


def _provision(args: argparse.Namespace) -> int:
    from edgekit.provision import default_stack_name, find_provisioned, provision
    from edgekit.settings import Settings

    settings = Settings.from_env()
    if args.show:
        found = find_provisioned(settings, args.stack_name)
        if found is None:
            name = args.stack_name or default_stack_name(settings)
            print(f"stack {name} does not exist; run `edgekit provision`")
            return 1
        _print_provisioned(found, args.json)
        return 0
    result = provision(
        settings,
        stack_name=args.stack_name,
        thing_group=args.thing_group,
        device_count=args.device_count,
        thing_prefix=args.thing_prefix,
    )
    _print_provisioned(result, args.json)
    return 0


def _deprovision(args: argparse.Namespace) -> int:
    from edgekit.provision import (
        cancel_deployments,
        default_stack_name,
        delete_components,
        deprovision,
        device_backend,
        thing_group_of,
        wake,
    )
    from edgekit.settings import Settings

    settings = Settings.from_env()
    name = args.stack_name or default_stack_name(settings)
    if args.components and wake(device_backend(settings)):
        group = thing_group_of(settings, name, args.thing_group)
        for deployment in cancel_deployments(settings, group):
            print(f"deployment {deployment}: canceled")
        for component, version in delete_components(settings):
            print(f"component {component} {version}: deleted")
    result = deprovision(
        settings, name, remove_devices=not args.keep_devices, thing_group=args.thing_group
    )
    for thing in result.removed_devices:
        print(f"device {thing}: removed")
    print(f"stack {name}: " + ("deleted" if result.stack_deleted else "does not exist"))
    return 0
