"""What the control plane knows about provisioned devices: core devices, groups, things.

Owns the few Greengrass/IoT/STS reads the workflow and the strategies share; every
list call goes through :func:`edgekit.awsapi.paginate` and every refused call becomes
an edgekit error through :func:`edgekit.awsapi.map_client_error`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from botocore.exceptions import ClientError

from edgekit.awsapi import is_not_found, map_client_error, paginate
from edgekit.provision.types import CoreDevice

_GREENGRASS_HINT = "check that the Greengrass v2 service is reachable in this region"


def group_devices(greengrass: Any, group_arn: str) -> list[str]:
    """ListCoreDevices(thingGroupArn): the core devices that deployed to the group.

    On AWS that is only devices that *already* succeeded a deployment to the group, and it
    keeps devices that left the group: right for cleanup, wrong for "who is in the group
    now" (`group_core_devices`).
    """
    try:
        rows = list(
            paginate(greengrass, "list_core_devices", "coreDevices", thingGroupArn=group_arn)
        )
    except ClientError as exc:
        raise map_client_error(
            exc, f"thing group {group_arn}", "list its core devices", hint=_GREENGRASS_HINT
        ) from exc
    return [str(r["coreDeviceThingName"]) for r in rows]


def group_core_devices(
    greengrass: Any, iot: Any, group_arn: str, known: Collection[str] = ()
) -> list[str]:
    """The group's member things (child groups included) that are Greengrass core devices.

    Membership comes from IoT (ListThingsInThingGroup, recursive): what a deployment to
    the group targets. Members that are not core devices (a sensor, or a device whose
    nucleus never connected) are left out. ``known``: things already known to be core
    devices, not asked again.
    """
    name = group_arn.rsplit("/", 1)[-1]
    try:
        members = sorted(
            {
                str(m)
                for m in paginate(
                    iot, "list_things_in_thing_group", "things", thingGroupName=name, recursive=True
                )
            }
        )
    except ClientError as exc:
        raise map_client_error(exc, f"thing group {name}", "list its things") from exc
    return [t for t in members if t in known or core_device(greengrass, t) is not None]


def core_device(greengrass: Any, thing: str) -> CoreDevice | None:
    """The core device of ``thing``, or None if it has not registered."""
    try:
        return CoreDevice.from_api(greengrass.get_core_device(coreDeviceThingName=thing))
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise map_client_error(
            exc, f"core device {thing}", "read its status", hint=_GREENGRASS_HINT
        ) from exc


def thing_exists(iot: Any, thing: str) -> bool:
    """True if the IoT thing exists."""
    try:
        iot.describe_thing(thingName=thing)
    except ClientError as exc:
        if is_not_found(exc):
            return False
        raise map_client_error(exc, f"IoT thing {thing}", "describe it") from exc
    return True


def group_arn(sts: Any, region: str, group: str) -> str:
    """The thing group's ARN without needing the group to exist (for cleanup)."""
    try:
        identity = sts.get_caller_identity()
    except ClientError as exc:
        raise map_client_error(exc, "the AWS account", "read the caller identity") from exc
    partition = str(identity.get("Arn", "arn:aws:")).split(":")[1] or "aws"
    return f"arn:{partition}:iot:{region}:{identity['Account']}:thinggroup/{group}"


__all__ = ["core_device", "group_arn", "group_core_devices", "group_devices", "thing_exists"]
