"""Provision the device stack and its devices, wait for them, and find what exists.

One CloudFormation template and one code path serve both backends; the strategy of
:mod:`edgekit.provision.backends` says only *what a device is*. Nothing is persisted
besides what AWS (or the local endpoints) already holds: :func:`find_provisioned`
rebuilds the same :class:`Provisioned` from the stack outputs and the core devices of
the thing group. Running :func:`provision` again is a no-op stack update plus starting
only missing devices.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from edgekit import clients
from edgekit.errors import ProvisionError
from edgekit.progress import progress as progress_bar
from edgekit.provision.backends import device_backend
from edgekit.provision.controlplane import core_device, group_core_devices
from edgekit.provision.types import (
    CoreDevice,
    Provisioned,
    default_stack_name,
    default_thing_prefix,
    order_things,
    thing_names,
)
from edgekit.settings import Settings
from edgekit.stack import (
    DEFAULT_TEMPLATE,
    deploy_stack,
    describe_stack,
    device_parameters,
    outputs_of,
    parameters_of,
)

#: Stack states in which the device stack can be used.
USABLE = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"})


def provision(
    settings: Settings,
    *,
    stack_name: str | None = None,
    thing_group: str | None = None,
    device_count: int = 1,
    thing_prefix: str | None = None,
    progress: bool = True,
    timeout: float | None = None,
) -> Provisioned:
    """Deploy the device stack and bring up ``device_count`` healthy core devices; idempotent.

    ``stack_name`` defaults to ``<project>-device``. ``thing_group`` and ``thing_prefix``
    default to what an existing stack already uses, else ``settings.thing_group`` and
    ``<project>-core``. A second run finds the stack (no-op update) and the running
    devices and starts only what is missing; it never removes devices. The local
    backend's state folder is ``settings.home``; ``timeout`` bounds the wait for
    devices (default: 60 s local, 15 min aws).
    """
    backend = device_backend(settings)
    backend.check_count(device_count)
    stack_name = stack_name or default_stack_name(settings)
    backend.prepare()

    cfn = clients.client("cloudformation", settings)
    existing = parameters_of(describe_stack(stack_name, client=cfn))
    group = thing_group or existing.get("ThingGroupName") or settings.thing_group
    if thing_prefix:
        things = thing_names(thing_prefix, device_count)
    elif existing.get("ThingName"):
        first = existing["ThingName"]
        things = thing_names(first.removesuffix("-1"), device_count, first=first)
    else:
        things = thing_names(default_thing_prefix(settings), device_count)

    result = deploy_stack(
        stack_name,
        DEFAULT_TEMPLATE,
        device_parameters(settings, ThingName=things[0], ThingGroupName=group),
        client=cfn,
        settings=settings,
        s3=clients.client("s3", settings),
        iot=clients.client("iot", settings),
        progress=progress,
        poll=backend.stack_poll,
    )
    outputs = result.outputs
    group = outputs.get("ThingGroupName", group)
    group_arn = outputs["ThingGroupArn"]

    backend.start_devices(things, group)
    greengrass = clients.client("greengrassv2", settings)
    iot = clients.client("iot", settings)
    devices = wait_for_devices(
        greengrass,
        iot,
        things,
        group_arn,
        timeout=backend.wait_timeout if timeout is None else timeout,
        poll=backend.wait_poll,
        progress=progress,
        hint=lambda thing: backend.not_ready_hint(thing, outputs),
    )
    members = group_core_devices(greengrass, iot, group_arn, known=devices)
    ordered = order_things(things[0], [*things, *members])
    extra = [t for t in ordered if t not in devices]
    found = {**devices, **{t: d for t in extra if (d := core_device(greengrass, t))}}
    return Provisioned(
        stack_name=stack_name,
        outputs=outputs,
        thing_group=group,
        thing_group_arn=group_arn,
        things=ordered,
        bucket=outputs.get("ArtifactBucket"),
        devices=tuple(found[t] for t in ordered if t in found),
        backend=settings.backend,
        region=settings.region,
    )


def wait_for_devices(
    greengrass: Any,
    iot: Any,
    things: Sequence[str],
    group_arn: str,
    *,
    timeout: float,
    poll: float,
    progress: bool = True,
    hint: Callable[[str], str] | None = None,
) -> dict[str, CoreDevice]:
    """Wait until every thing is a HEALTHY core device listed in the thing group.

    Group membership (IoT's, what a deployment to the group targets) matters as much
    as health. On
    timeout, ProvisionError names each device that is not ready, its state, and where
    to look (``hint(thing)``).
    """
    ready: dict[str, CoreDevice] = {}
    last: dict[str, CoreDevice | None] = {}
    in_group: set[str] = set()
    deadline = time.monotonic() + timeout
    with progress_bar(
        total=len(things), desc="core devices", unit="device", disable=None if progress else True
    ) as bar:
        while True:
            pending = [t for t in things if t not in ready]
            if pending:
                in_group = set(group_core_devices(greengrass, iot, group_arn, known=ready))
            for thing in pending:
                device = core_device(greengrass, thing)
                last[thing] = device
                if device is not None and device.healthy and thing in in_group:
                    ready[thing] = device
                    bar.update(1)
                    bar.set_postfix_str(f"{thing} {device.status}", refresh=True)
            if len(ready) == len(things):
                return ready
            if time.monotonic() > deadline:
                break
            time.sleep(poll)
    problems = []
    for thing in things:
        if thing in ready:
            continue
        device = last.get(thing)
        if device is None:
            state = "has not registered as a core device"
        elif not device.healthy:
            state = f"is {device.status}"
        else:
            state = f"is {device.status} but not (yet) listed in thing group {group_arn}"
        problems.append(f"{thing} {state}" + (f"; {hint(thing)}" if hint else ""))
    raise ProvisionError(
        f"{len(problems)} of {len(things)} device(s) not ready after {timeout:.0f} s: "
        + " | ".join(problems)
        + ". Run provision again once fixed: it only creates what is missing"
    )


def find_provisioned(settings: Settings, stack_name: str | None = None) -> Provisioned | None:
    """The provisioned stack and its devices, rebuilt from AWS state; None if no stack.

    Things are the stack's ``ThingName`` followed by every other core device of the
    thing group. A stack that is being changed, or failed, raises ProvisionError.
    """
    stack_name = stack_name or default_stack_name(settings)
    stack = describe_stack(stack_name, settings=settings)
    if stack is None:
        return None
    status = str(stack["StackStatus"])
    outputs = outputs_of(stack)
    if status not in USABLE or "ThingGroupArn" not in outputs:
        raise ProvisionError(
            f"stack {stack_name} is {status}: not usable yet; wait if it is in progress, "
            "otherwise provision again (notebook 01, `edgekit provision`) or delete it "
            "(notebook 99, `edgekit deprovision`)"
        )
    greengrass = clients.client("greengrassv2", settings)
    iot = clients.client("iot", settings)
    group_arn = outputs["ThingGroupArn"]
    first = outputs.get("ThingName") or parameters_of(stack).get("ThingName", "")
    things = order_things(first, group_core_devices(greengrass, iot, group_arn))
    devices = tuple(d for t in things if (d := core_device(greengrass, t)) is not None)
    return Provisioned(
        stack_name=stack_name,
        outputs=outputs,
        thing_group=outputs.get("ThingGroupName") or group_arn.rsplit("/", 1)[-1],
        thing_group_arn=group_arn,
        things=things,
        bucket=outputs.get("ArtifactBucket"),
        devices=devices,
        backend=settings.backend,
        region=settings.region,
    )


__all__ = ["USABLE", "find_provisioned", "provision", "wait_for_devices"]
