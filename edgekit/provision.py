"""Provision Greengrass core devices: the device stack, then the devices themselves.

One CloudFormation template (``cloudformation/greengrass-device.yaml``) and one code
path serve both backends; only *what a device is* differs, and a small strategy object
per backend says so:

- ``local``: the stack deploys into moto (its EC2 instance is a record only), and each
  thing gets a local device runtime (``edgekit.local.device.add_device``). Thing names are
  ``<prefix>-1..N``; ``<prefix>-1`` is the stack's ``ThingName``.
- ``aws``: the stack's EC2 instance *is* the device; it installs the Greengrass nucleus
  at boot and joins the thing group. The template makes one instance, and several stacks
  cannot share the thing group the stack owns, so ``device_count`` must be 1 there (more
  devices join the group by installing Greengrass on them with ``--thing-group-name``).

Nothing is persisted besides what AWS (or the local endpoints) already holds:
:func:`find_provisioned` rebuilds the same :class:`Provisioned` from the stack outputs and
the core devices of the thing group, so every notebook can "find what exists". Running
:func:`provision` again is a no-op stack update plus starting only missing devices.

The cleanup helpers at the end (:func:`cancel_deployments`, :func:`delete_components`,
:func:`deprovision`) undo it all for notebook ``99_cleanup``; each is idempotent.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from edgekit.errors import ConfigurationError, EdgekitError, LocalBackendError
from edgekit.progress import progress as progress_bar
from edgekit.settings import Settings

log = logging.getLogger(__name__)

Home = str | os.PathLike[str] | None

#: Thing names the device template accepts (its ``ThingName`` AllowedPattern).
THING_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
HEALTHY = "HEALTHY"
NOT_REGISTERED = "NOT REGISTERED"


class ProvisionError(EdgekitError):
    """Devices did not come up as healthy core devices, or a provisioned stack is unusable."""


def default_stack_name(settings: Settings) -> str:
    """``<project>-device``: the stack notebooks 01 and 99 agree on without being told."""
    return f"{settings.project_name}-device"


def default_thing_prefix(settings: Settings) -> str:
    """``<project>-core``, so the first thing is the template's default ``edgekit-core-1``."""
    return f"{settings.project_name}-core"


def thing_names(prefix: str, count: int, first: str | None = None) -> list[str]:
    """``[first or <prefix>-1, <prefix>-2, ..., <prefix>-count]``."""
    names = [first or f"{prefix}-1"] + [f"{prefix}-{i}" for i in range(2, count + 1)]
    for name in names:
        if not THING_NAME.fullmatch(name):
            raise ConfigurationError(
                f"thing name {name!r} is not valid (letters, digits, '_' and '-', at most 64 "
                "characters); choose another thing_prefix (--thing-prefix)"
            )
    return names


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


# --------------------------------------------------------------------------------------
# What provisioning leaves behind


@dataclass(frozen=True)
class CoreDevice:
    """One Greengrass core device as the control plane sees it."""

    thing: str
    status: str
    core_version: str | None = None
    platform: str | None = None
    architecture: str | None = None
    last_status_update: datetime | None = None

    @property
    def healthy(self) -> bool:
        return self.status == HEALTHY

    @classmethod
    def from_api(cls, answer: Mapping[str, Any]) -> CoreDevice:
        """From a GetCoreDevice (or ListCoreDevices row) answer."""
        return cls(
            thing=str(answer["coreDeviceThingName"]),
            status=str(answer.get("status") or "UNKNOWN"),
            core_version=answer.get("coreVersion"),
            platform=answer.get("platform"),
            architecture=answer.get("architecture"),
            last_status_update=answer.get("lastStatusUpdateTimestamp"),
        )

    def to_row(self) -> dict[str, Any]:
        stamp = self.last_status_update
        return {
            "thing": self.thing,
            "status": self.status,
            "core_version": self.core_version or "",
            "platform": self.platform or "",
            "architecture": self.architecture or "",
            "last_status_update": stamp.isoformat(timespec="seconds") if stamp else "",
        }


@dataclass(frozen=True)
class Provisioned:
    """The device stack and its devices: what notebooks 02-04 need to find them."""

    stack_name: str
    outputs: dict[str, str]
    thing_group: str
    thing_group_arn: str
    things: tuple[str, ...]
    bucket: str | None
    devices: tuple[CoreDevice, ...] = ()
    backend: str = "local"
    region: str = "us-east-1"

    @property
    def healthy(self) -> bool:
        """Every thing is a registered, HEALTHY core device."""
        by_thing = {d.thing: d for d in self.devices}
        return all(t in by_thing and by_thing[t].healthy for t in self.things)

    def device(self, thing: str) -> CoreDevice | None:
        return next((d for d in self.devices if d.thing == thing), None)

    def to_rows(self) -> list[dict[str, Any]]:
        """One row per thing (thing, status, core_version, platform, architecture, ...)."""
        rows = []
        for thing in self.things:
            device = self.device(thing)
            rows.append(
                device.to_row()
                if device
                else CoreDevice(thing=thing, status=NOT_REGISTERED).to_row()
            )
        return rows

    def output_rows(self) -> list[dict[str, str]]:
        """The stack outputs as (output, value) rows, in the template's order."""
        return [{"output": k, "value": v} for k, v in self.outputs.items()]

    def to_json(self) -> dict[str, Any]:
        """What later notebooks read from ``provisioned.json``."""
        return {
            "backend": self.backend,
            "region": self.region,
            "stack_name": self.stack_name,
            "thing_group": self.thing_group,
            "thing_group_arn": self.thing_group_arn,
            "things": list(self.things),
            "bucket": self.bucket,
            "outputs": dict(self.outputs),
        }


@dataclass(frozen=True)
class Deprovisioned:
    """What :func:`deprovision` removed."""

    stack_name: str
    stack_deleted: bool
    removed_devices: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------
# One strategy per backend: what a device is


class DeviceBackend(Protocol):
    """How one backend brings devices up and down around the shared device stack."""

    #: Seconds to wait for all devices to report HEALTHY, and between two checks.
    wait_timeout: float
    wait_poll: float
    #: Longest gap between two stack-status checks while CloudFormation works.
    stack_poll: float

    def check_count(self, count: int) -> None:
        """Refuse a device count this backend cannot make (before anything is created)."""

    def prepare(self) -> None:
        """Make the endpoints reachable (local) or check the credentials (aws)."""

    def reachable(self) -> bool:
        """True if the backend's endpoints answer now (without starting anything)."""

    def start_devices(self, things: Sequence[str], group: str) -> None:
        """Make a device run for each thing; those already running are left alone."""

    def remove_devices(self, things: Sequence[str]) -> list[str]:
        """Stop and forget the devices this backend runs itself; the ones removed."""

    def own_devices(self, prefix: str) -> list[str]:
        """Devices this backend runs itself whose thing is ``<prefix>-<n>``."""

    def not_ready_hint(self, thing: str, outputs: Mapping[str, str]) -> str:
        """Where to look when ``thing`` does not come up."""

    def device_count(self, requested: int, existing: int | None) -> int:
        """How many devices to provision when ``requested`` are asked for and a stack with
        ``existing`` things is already there (None: no stack yet)."""

    def log_location(self, thing: str, component: str | None) -> str:
        """Where a component's log (``greengrass.log`` for None) is on ``thing``, in words."""

    def log_tail(self, thing: str, component: str | None, lines: int = 20) -> str:
        """The last ``lines`` of that log when this machine can read it, else ''."""

    def deploy_failed_hint(self, thing: str) -> str:
        """What a failed deployment's error adds about where to look on ``thing``."""

    #: What a "devices did not finish" error adds (how to check they run).
    running_hint: str

    def unarchived_dirs(self, component: str, things: Iterable[str] = ()) -> list[Path]:
        """The unpacked artifacts of ``component`` (the version each device runs) on the
        devices this machine hosts (only ``things`` if given); [] when it hosts none."""


def local_home_of(settings: Settings, home: Home = None) -> Home:
    """The home the local backend uses for ``settings``, resolved like `edgekit.clients`."""
    if home is not None:
        return home
    if settings.local_home is not None:
        return settings.local_home
    return None  # EDGEKIT_LOCAL_HOME, else the per-user default


class LocalDevices:
    """Local backend: one device runtime process per thing, on the local endpoints."""

    wait_timeout = 60.0
    wait_poll = 0.5
    stack_poll = 1.0
    running_hint = " (`edgekit local device list`)"

    def __init__(self, settings: Settings, home: Home = None) -> None:
        self.settings = settings
        self.home = local_home_of(settings, home)

    def check_count(self, count: int) -> None:
        if count < 1:
            raise ConfigurationError(f"device_count={count}: provision at least one device")

    def prepare(self) -> None:
        from edgekit.local import endpoints

        endpoints.up(self.home, region=self.settings.region)

    def reachable(self) -> bool:
        from edgekit.local.endpoints import LocalEndpoints

        try:
            LocalEndpoints.load(self.home)
        except LocalBackendError:
            return False
        return True

    def start_devices(self, things: Sequence[str], group: str) -> None:
        from edgekit.local.device import add_device

        for thing in things:
            add_device(thing, group, self.home)

    def remove_devices(self, things: Sequence[str]) -> list[str]:
        from edgekit.local.device import list_devices, remove_device

        known = {d.thing for d in list_devices(self.home)}
        reachable = self.reachable()
        iot = _client("iot", self.settings, self.home) if reachable else None
        greengrass = _client("greengrassv2", self.settings, self.home) if reachable else None
        removed = []
        for thing in things:
            existed = (
                thing in known
                or (greengrass is not None and _core_device(greengrass, thing) is not None)
                or (iot is not None and self._thing_exists(iot, thing))
            )
            if not existed:
                continue
            remove_device(thing, self.home, purge=True)
            if iot is not None:
                self._delete_thing(iot, thing)
            removed.append(thing)
        return removed

    def own_devices(self, prefix: str) -> list[str]:
        from edgekit.local.device import list_devices

        pattern = re.compile(re.escape(prefix) + r"-\d+")
        return [d.thing for d in list_devices(self.home) if pattern.fullmatch(d.thing)]

    def not_ready_hint(self, thing: str, outputs: Mapping[str, str]) -> str:
        from edgekit.local.device import device_logs

        try:
            tail = device_logs(thing, home=self.home, tail=5).strip()
        except ConfigurationError:
            tail = ""
        where = f"`edgekit local device logs {thing}`"
        return f"see {where}" + (f"; last lines:\n{tail}" if tail else "")

    def device_count(self, requested: int, existing: int | None) -> int:
        return requested if existing is None else max(requested, existing)

    def log_location(self, thing: str, component: str | None) -> str:
        log_file = f"{component}.log" if component else "greengrass.log"
        return (
            f"`edgekit local device logs {thing}"
            + (f" {component}`" if component else "`")
            + f" (the file is <local home>/devices/{thing}/logs/{log_file})"
        )

    def log_tail(self, thing: str, component: str | None, lines: int = 20) -> str:
        from edgekit.local.device import device_logs

        try:
            return device_logs(thing, component, self.home, tail=lines)
        except ConfigurationError:
            if component is None:
                return ""
            return device_logs(thing, None, self.home, tail=lines)

    def deploy_failed_hint(self, thing: str) -> str:
        return f"; see `edgekit local device logs {thing}` (and the component logs)"

    def unarchived_dirs(self, component: str, things: Iterable[str] = ()) -> list[Path]:
        from edgekit.local.device import list_devices
        from edgekit.local.device.paths import DeviceLayout

        wanted = set(things)
        dirs = []
        for device in list_devices(self.home):
            if wanted and device.thing not in wanted:
                continue
            version = device.components.get(component)
            if version:
                dirs.append(DeviceLayout.of(device.root).unarchived(component, version))
        return dirs

    # The runtime's IoT thing was created by add_device; on AWS the installer makes it.
    @staticmethod
    def _thing_exists(iot: Any, thing: str) -> bool:
        try:
            iot.describe_thing(thingName=thing)
        except Exception as exc:
            if _error_code(exc) == "ResourceNotFoundException":
                return False
            raise
        return True

    @staticmethod
    def _delete_thing(iot: Any, thing: str) -> None:
        try:
            iot.delete_thing(thingName=thing)
        except Exception as exc:
            if _error_code(exc) != "ResourceNotFoundException":
                raise LocalBackendError(
                    f"could not delete the local IoT thing {thing}: {exc}"
                ) from exc


class Ec2Device:
    """AWS backend: the stack's EC2 instance installs Greengrass and is the one device."""

    wait_timeout = 900.0
    wait_poll = 10.0
    stack_poll = 10.0
    running_hint = ""

    def __init__(self, settings: Settings, home: Home = None) -> None:
        self.settings = settings

    def check_count(self, count: int) -> None:
        if count != 1:
            raise ConfigurationError(
                f"device_count={count}: on the aws backend the device stack makes exactly one "
                "EC2 core device, and the stack owns its thing group, so a second stack cannot "
                "join it; use device_count=1 (--devices 1). To add devices, install Greengrass "
                "on them with --thing-group-name set to the stack's ThingGroupName output"
            )

    def prepare(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            _client("sts", self.settings, None).get_caller_identity()
        except (BotoCoreError, ClientError) as exc:
            raise ConfigurationError(
                f"no usable AWS credentials for region {self.settings.region} ({exc}); "
                "configure them (aws configure, a profile via EDGEKIT_AWS_PROFILE, or the "
                "SageMaker Studio execution role) or use backend='local'"
            ) from exc

    def reachable(self) -> bool:
        return True

    def start_devices(self, things: Sequence[str], group: str) -> None:
        # Nothing to start: the instance's user data installed the nucleus, and the stack
        # only completes once it signalled that greengrass.service runs.
        return None

    def remove_devices(self, things: Sequence[str]) -> list[str]:
        # The instance is a stack resource and goes with the stack. The thing, its
        # certificate and the core device record stay (see cloudformation/README.md).
        return []

    def own_devices(self, prefix: str) -> list[str]:
        return []

    def not_ready_hint(self, thing: str, outputs: Mapping[str, str]) -> str:
        instance = outputs.get("InstanceId", "the stack's instance")
        return (
            f"connect to {instance} with SSM Session Manager and read "
            "/var/log/edgekit-userdata.log and /greengrass/v2/logs/greengrass.log"
        )

    def device_count(self, requested: int, existing: int | None) -> int:
        return 1

    def log_location(self, thing: str, component: str | None) -> str:
        log_file = f"{component}.log" if component else "greengrass.log"
        region = self.settings.region
        group = (
            f"/aws/greengrass/UserComponent/{region}/{component}"
            if component
            else f"/aws/greengrass/GreengrassSystemComponent/{region}/System"
        )
        return (
            f"on the device: /greengrass/v2/logs/{log_file} (connect to the instance with SSM "
            f"Session Manager); in CloudWatch Logs, if aws.greengrass.LogManager is deployed: "
            f"log group {group}, stream /YYYY/MM/DD/thing/{thing}"
        )

    def log_tail(self, thing: str, component: str | None, lines: int = 20) -> str:
        return ""  # the log is on the EC2 instance, not on this machine

    def deploy_failed_hint(self, thing: str) -> str:
        return f"; see /greengrass/v2/logs on {thing}"

    def unarchived_dirs(self, component: str, things: Iterable[str] = ()) -> list[Path]:
        return []  # the devices are EC2 instances: nothing of theirs is on this machine


_BACKENDS: dict[str, type[LocalDevices] | type[Ec2Device]] = {
    "local": LocalDevices,
    "aws": Ec2Device,
}


def device_backend(settings: Settings, home: Home = None) -> DeviceBackend:
    """The strategy for ``settings.backend``."""
    return _BACKENDS[settings.backend](settings, home)


# --------------------------------------------------------------------------------------
# boto3 helpers


def _client(service: str, settings: Settings, home: Home) -> Any:
    from edgekit.clients import client

    return client(service, settings, home=home)


def _error_code(exc: Exception) -> str:
    return str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))


def _pages(method: Any, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item of a paginated greengrassv2 list call (nextToken)."""
    token: str | None = None
    while True:
        answer = method(**kwargs, **({"nextToken": token} if token else {}))
        yield from answer.get(key) or []
        token = answer.get("nextToken")
        if not token:
            return


def _describe_stack(cfn: Any, name: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    from edgekit.stack import StackError

    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        message = str(exc.response.get("Error", {}).get("Message", exc))
        if "does not exist" in message:
            return None
        raise StackError(f"stack {name}: cannot describe it: {message}", stack=name) from exc
    return stacks[0] if stacks else None


def _stack_parameters(stack: Mapping[str, Any] | None) -> dict[str, str]:
    if not stack:
        return {}
    return {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters") or []}


def _stack_outputs(stack: Mapping[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}


def _group_devices(greengrass: Any, group_arn: str) -> list[str]:
    """Things of the core devices in the thing group."""
    rows = _pages(greengrass.list_core_devices, "coreDevices", thingGroupArn=group_arn)
    return [str(r["coreDeviceThingName"]) for r in rows]


def _core_device(greengrass: Any, thing: str) -> CoreDevice | None:
    try:
        return CoreDevice.from_api(greengrass.get_core_device(coreDeviceThingName=thing))
    except Exception as exc:
        if _error_code(exc) == "ResourceNotFoundException":
            return None
        raise


def _order_things(first: str, others: Iterable[str]) -> tuple[str, ...]:
    rest = sorted(set(others) - {first}, key=_natural_key)
    return (first, *rest)


def _group_arn(settings: Settings, group: str, home: Home) -> str:
    """The thing group's ARN without needing the group to exist (for cleanup)."""
    identity = _client("sts", settings, home).get_caller_identity()
    partition = str(identity.get("Arn", "arn:aws:")).split(":")[1] or "aws"
    return f"arn:{partition}:iot:{settings.region}:{identity['Account']}:thinggroup/{group}"


# --------------------------------------------------------------------------------------
# Provision


def provision(
    settings: Settings,
    *,
    stack_name: str | None = None,
    thing_group: str | None = None,
    device_count: int = 1,
    thing_prefix: str | None = None,
    progress: bool = True,
    home: Home = None,
    timeout: float | None = None,
) -> Provisioned:
    """Deploy the device stack and bring up ``device_count`` healthy core devices; idempotent.

    ``stack_name`` defaults to ``<project>-device``. ``thing_group`` and ``thing_prefix``
    default to what an existing stack already uses, else ``settings.thing_group`` and
    ``<project>-core``. A second run finds the stack (no-op update) and the running
    devices and starts only what is missing; it never removes devices. ``home`` is the
    local backend's state folder (default: ``EDGEKIT_LOCAL_HOME``/``settings.local_home``);
    ``timeout`` bounds the wait for devices (default: 60 s local, 15 min aws).
    """
    from edgekit.stack import DEFAULT_TEMPLATE, deploy_stack, device_parameters

    backend = device_backend(settings, home)
    backend.check_count(device_count)
    stack_name = stack_name or default_stack_name(settings)
    backend.prepare()
    home = local_home_of(settings, home)

    cfn = _client("cloudformation", settings, home)
    existing = _stack_parameters(_describe_stack(cfn, stack_name))
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
        s3=_client("s3", settings, home),
        iot=_client("iot", settings, home),
        progress=progress,
        poll=backend.stack_poll,
    )
    outputs = result.outputs
    group = outputs.get("ThingGroupName", group)
    group_arn = outputs["ThingGroupArn"]

    backend.start_devices(things, group)
    greengrass = _client("greengrassv2", settings, home)
    devices = wait_for_devices(
        greengrass,
        things,
        group_arn,
        timeout=backend.wait_timeout if timeout is None else timeout,
        poll=backend.wait_poll,
        progress=progress,
        hint=lambda thing: backend.not_ready_hint(thing, outputs),
    )
    members = _group_devices(greengrass, group_arn)
    ordered = _order_things(things[0], [*things, *members])
    extra = [t for t in ordered if t not in devices]
    found = {**devices, **{t: d for t in extra if (d := _core_device(greengrass, t))}}
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
    things: Sequence[str],
    group_arn: str,
    *,
    timeout: float,
    poll: float,
    progress: bool = True,
    hint: Any = None,
) -> dict[str, CoreDevice]:
    """Wait until every thing is a HEALTHY core device listed in the thing group.

    Group membership matters as much as health: deployments target the group. On
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
                in_group = set(_group_devices(greengrass, group_arn))
            for thing in pending:
                device = _core_device(greengrass, thing)
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


def find_provisioned(
    settings: Settings, stack_name: str | None = None, *, home: Home = None
) -> Provisioned | None:
    """The provisioned stack and its devices, rebuilt from AWS state; None if no stack.

    Things are the stack's ``ThingName`` followed by every other core device of the
    thing group. A stack that is being changed, or failed, raises ProvisionError.
    """
    stack_name = stack_name or default_stack_name(settings)
    home = local_home_of(settings, home)
    stack = _describe_stack(_client("cloudformation", settings, home), stack_name)
    if stack is None:
        return None
    status = str(stack["StackStatus"])
    outputs = _stack_outputs(stack)
    if status not in {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"} or (
        "ThingGroupArn" not in outputs
    ):
        raise ProvisionError(
            f"stack {stack_name} is {status}: not usable yet; wait if it is in progress, "
            "otherwise provision again (notebook 01, `edgekit provision`) or delete it "
            "(notebook 99, `edgekit deprovision`)"
        )
    greengrass = _client("greengrassv2", settings, home)
    group_arn = outputs["ThingGroupArn"]
    first = outputs.get("ThingName") or _stack_parameters(stack).get("ThingName", "")
    things = _order_things(first, _group_devices(greengrass, group_arn))
    devices = tuple(d for t in things if (d := _core_device(greengrass, t)) is not None)
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


# --------------------------------------------------------------------------------------
# Cleanup (notebook 99_cleanup, `edgekit deprovision`)


def edgekit_component_names(settings: Settings) -> list[str]:
    """The components edgekit publishes (names from Settings), dependents first."""
    return [settings.inference_component, settings.agent_component, settings.model_component]


def thing_group_of(
    settings: Settings,
    stack_name: str | None = None,
    thing_group: str | None = None,
    *,
    home: Home = None,
) -> str:
    """The stack's thing group (its output, whatever the stack's state), else ``thing_group``,
    else ``settings.thing_group``: what cleanup should target even after a failed create."""
    stack_name = stack_name or default_stack_name(settings)
    home = local_home_of(settings, home)
    stack = _describe_stack(_client("cloudformation", settings, home), stack_name)
    outputs = _stack_outputs(stack) if stack else {}
    parameters = _stack_parameters(stack)
    return (
        outputs.get("ThingGroupName")
        or parameters.get("ThingGroupName")
        or thing_group
        or settings.thing_group
    )


def cancel_deployments(
    settings: Settings, thing_group: str | None = None, *, home: Home = None
) -> list[str]:
    """Cancel every ACTIVE deployment that targets the thing group; the ids canceled.

    Canceling stops devices that have not received a deployment yet from applying it;
    devices that applied it keep their components until they are removed.
    """
    group = thing_group or settings.thing_group
    home = local_home_of(settings, home)
    greengrass = _client("greengrassv2", settings, home)
    suffix = f":thinggroup/{group}"
    canceled = []
    rows = _pages(greengrass.list_deployments, "deployments", historyFilter="ALL")
    for row in list(rows):
        if not str(row.get("targetArn", "")).endswith(suffix):
            continue
        if row.get("deploymentStatus") != "ACTIVE":
            continue
        try:
            greengrass.cancel_deployment(deploymentId=row["deploymentId"])
        except Exception as exc:
            if _error_code(exc) not in ("ConflictException", "ResourceNotFoundException"):
                raise
            continue  # finished or canceled meanwhile
        canceled.append(str(row["deploymentId"]))
    return canceled


def delete_components(
    settings: Settings, names: Sequence[str] | None = None, *, home: Home = None
) -> list[tuple[str, str]]:
    """Delete every version of the named components (default: edgekit's); (name, version)s.

    Components that do not exist are skipped, so running it twice is fine.
    """
    wanted = list(names) if names is not None else edgekit_component_names(settings)
    home = local_home_of(settings, home)
    greengrass = _client("greengrassv2", settings, home)
    components = {
        str(c["componentName"]): str(c["arn"])
        for c in _pages(greengrass.list_components, "components", scope="PRIVATE")
    }
    deleted: list[tuple[str, str]] = []
    for name in wanted:
        arn = components.get(name)
        if arn is None:
            continue
        versions = list(_pages(greengrass.list_component_versions, "componentVersions", arn=arn))
        for version in versions:
            try:
                greengrass.delete_component(arn=version["arn"])
            except Exception as exc:
                if _error_code(exc) != "ResourceNotFoundException":
                    raise
                continue
            deleted.append((name, str(version["componentVersion"])))
    return deleted


def deprovision(
    settings: Settings,
    stack_name: str | None = None,
    *,
    remove_devices: bool = True,
    thing_group: str | None = None,
    thing_prefix: str | None = None,
    progress: bool = True,
    home: Home = None,
) -> Deprovisioned:
    """Remove the devices this backend runs (local runtimes), then delete the stack.

    Locally, each device of the thing group is stopped, its root and its core device
    record are deleted, and its IoT thing too. On AWS the EC2 device goes with the
    stack; the thing, certificate and core device record that the Greengrass installer
    made remain (see ``cloudformation/README.md``). Deleting the stack empties its
    bucket first. With nothing to delete this returns quietly. When the local
    endpoints are down the stack cannot exist (moto keeps it in memory), so only the
    local device roots named ``<prefix>-<n>`` are removed, without starting anything.
    """
    from edgekit.stack import delete_stack

    backend = device_backend(settings, home)
    stack_name = stack_name or default_stack_name(settings)
    home = local_home_of(settings, home)
    prefix = thing_prefix or default_thing_prefix(settings)
    if not backend.reachable():
        removed = backend.remove_devices(backend.own_devices(prefix)) if remove_devices else []
        return Deprovisioned(stack_name, False, tuple(removed))

    cfn = _client("cloudformation", settings, home)
    stack = _describe_stack(cfn, stack_name)
    removed: list[str] = []
    if remove_devices:
        outputs = _stack_outputs(stack) if stack else {}
        group = outputs.get("ThingGroupName") or thing_group or settings.thing_group
        group_arn = outputs.get("ThingGroupArn") or _group_arn(settings, group, home)
        first = outputs.get("ThingName") or _stack_parameters(stack).get("ThingName")
        if first and not thing_prefix:
            prefix = first.removesuffix("-1")
        greengrass = _client("greengrassv2", settings, home)
        things = _group_devices(greengrass, group_arn) + backend.own_devices(prefix)
        if first:
            things.append(first)
        removed = backend.remove_devices(sorted(set(things), key=_natural_key))
    deleted = False
    if stack is not None:
        deleted = delete_stack(
            stack_name,
            client=cfn,
            settings=settings,
            s3=_client("s3", settings, home),
            iot=_client("iot", settings, home),
            progress=progress,
            poll=backend.stack_poll,
        )
    return Deprovisioned(stack_name, deleted, tuple(removed))


__all__ = [
    "CoreDevice",
    "DeviceBackend",
    "Deprovisioned",
    "Ec2Device",
    "LocalDevices",
    "ProvisionError",
    "Provisioned",
    "cancel_deployments",
    "default_stack_name",
    "default_thing_prefix",
    "delete_components",
    "deprovision",
    "device_backend",
    "edgekit_component_names",
    "find_provisioned",
    "local_home_of",
    "provision",
    "thing_group_of",
    "thing_names",
    "wait_for_devices",
]
