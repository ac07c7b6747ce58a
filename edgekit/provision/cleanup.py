"""Undo provisioning for notebook ``99_cleanup`` and ``edgekit deprovision``; each step idempotent.

:func:`cancel_deployments` and :func:`delete_components` remove what deploying left in
Greengrass; :func:`deprovision` removes the devices this backend runs and deletes the
device stack.
"""

from __future__ import annotations

from collections.abc import Sequence

from botocore.exceptions import ClientError

from edgekit import clients
from edgekit.awsapi import error_code, is_not_found, map_client_error, paginate
from edgekit.provision.backends import device_backend
from edgekit.provision.controlplane import group_arn as thing_group_arn
from edgekit.provision.controlplane import group_devices
from edgekit.provision.types import (
    Deprovisioned,
    DeviceBackend,
    default_stack_name,
    default_thing_prefix,
    edgekit_component_names,
    natural_key,
)
from edgekit.settings import Settings
from edgekit.stack import delete_stack, describe_stack, outputs_of, parameters_of


def thing_group_of(
    settings: Settings, stack_name: str | None = None, thing_group: str | None = None
) -> str:
    """The stack's thing group (its output, whatever the stack's state), else ``thing_group``,
    else ``settings.thing_group``: what cleanup should target even after a failed create."""
    stack = describe_stack(stack_name or default_stack_name(settings), settings=settings)
    return (
        outputs_of(stack).get("ThingGroupName")
        or parameters_of(stack).get("ThingGroupName")
        or thing_group
        or settings.thing_group
    )


def cancel_deployments(settings: Settings, thing_group: str | None = None) -> list[str]:
    """Cancel every ACTIVE deployment that targets the thing group; the ids canceled.

    Canceling stops devices that have not received a deployment yet from applying it;
    devices that applied it keep their components until they are removed.
    """
    group = thing_group or settings.thing_group
    greengrass = clients.client("greengrassv2", settings)
    suffix = f":thinggroup/{group}"
    canceled = []
    rows = list(paginate(greengrass, "list_deployments", "deployments", historyFilter="ALL"))
    for row in rows:
        if not str(row.get("targetArn", "")).endswith(suffix):
            continue
        if row.get("deploymentStatus") != "ACTIVE":
            continue
        try:
            greengrass.cancel_deployment(deploymentId=row["deploymentId"])
        except ClientError as exc:
            if error_code(exc) == "ConflictException" or is_not_found(exc):
                continue  # finished or canceled meanwhile
            raise map_client_error(exc, f"deployment {row['deploymentId']}", "cancel it") from exc
        canceled.append(str(row["deploymentId"]))
    return canceled


def delete_components(
    settings: Settings, names: Sequence[str] | None = None
) -> list[tuple[str, str]]:
    """Delete every version of the named components (default: edgekit's); (name, version)s.

    Components that do not exist are skipped, so running it twice is fine.
    """
    wanted = list(names) if names is not None else edgekit_component_names(settings)
    greengrass = clients.client("greengrassv2", settings)
    components = {
        str(c["componentName"]): str(c["arn"])
        for c in paginate(greengrass, "list_components", "components", scope="PRIVATE")
    }
    deleted: list[tuple[str, str]] = []
    for name in wanted:
        arn = components.get(name)
        if arn is None:
            continue
        versions = list(
            paginate(greengrass, "list_component_versions", "componentVersions", arn=arn)
        )
        for version in versions:
            try:
                greengrass.delete_component(arn=version["arn"])
            except ClientError as exc:
                if is_not_found(exc):
                    continue
                raise map_client_error(
                    exc, f"component {name} {version['componentVersion']}", "delete it"
                ) from exc
            deleted.append((name, str(version["componentVersion"])))
    return deleted


def wake(backend: DeviceBackend) -> bool:
    """True if the backend's endpoints answer, starting them first when they are down but
    hold saved state (resources that would otherwise come back at the next `local up`)."""
    if not backend.reachable() and backend.holds_saved_state():
        backend.prepare()
    return backend.reachable()


def deprovision(
    settings: Settings,
    stack_name: str | None = None,
    *,
    remove_devices: bool = True,
    thing_group: str | None = None,
    thing_prefix: str | None = None,
    progress: bool = True,
) -> Deprovisioned:
    """Remove the devices this backend runs (local runtimes), then delete the stack.

    Locally, each device of the thing group is stopped, its root and its core device
    record are deleted, and its IoT thing too. On AWS the EC2 device goes with the
    stack; the thing, certificate and core device record that the Greengrass installer
    made remain (see ``cloudformation/README.md``). Deleting the stack empties its
    bucket first. With nothing to delete this returns quietly. When the local
    endpoints are down and hold no saved state, nothing can exist there, so only the
    local device roots named ``<prefix>-<n>`` are removed, without starting anything; with
    a saved state (which the next `local up` would bring back) they are started first.
    """
    backend = device_backend(settings)
    stack_name = stack_name or default_stack_name(settings)
    prefix = thing_prefix or default_thing_prefix(settings)
    if not wake(backend):
        removed = backend.remove_devices(backend.own_devices(prefix)) if remove_devices else []
        return Deprovisioned(stack_name, False, tuple(removed))

    cfn = clients.client("cloudformation", settings)
    stack = describe_stack(stack_name, client=cfn)
    removed = []
    if remove_devices:
        outputs = outputs_of(stack)
        group = outputs.get("ThingGroupName") or thing_group or settings.thing_group
        group_arn = outputs.get("ThingGroupArn") or thing_group_arn(
            clients.client("sts", settings), settings.region, group
        )
        first = outputs.get("ThingName") or parameters_of(stack).get("ThingName")
        if first and not thing_prefix:
            prefix = first.removesuffix("-1")
        greengrass = clients.client("greengrassv2", settings)
        things = group_devices(greengrass, group_arn) + backend.own_devices(prefix)
        if first:
            things.append(first)
        removed = backend.remove_devices(sorted(set(things), key=natural_key))
    deleted = False
    if stack is not None:
        deleted = delete_stack(
            stack_name,
            client=cfn,
            settings=settings,
            s3=clients.client("s3", settings),
            iot=clients.client("iot", settings),
            progress=progress,
            poll=backend.stack_poll,
        )
    return Deprovisioned(stack_name, deleted, tuple(removed))


__all__ = [
    "cancel_deployments",
    "delete_components",
    "deprovision",
    "thing_group_of",
    "wake",
]
