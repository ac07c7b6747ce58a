"""What provisioning makes and finds: names, core devices, the provisioned stack, the strategy.

Pure data and rules (no AWS calls): thing names the device template accepts, the
:class:`CoreDevice` and :class:`Provisioned` records notebooks read, and the
:class:`DeviceBackend` protocol each backend's strategy implements.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from edgekit.errors import ConfigurationError
from edgekit.settings import Settings

#: Thing names the device template accepts (its ``ThingName`` AllowedPattern).
THING_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
HEALTHY = "HEALTHY"
NOT_REGISTERED = "NOT REGISTERED"


def default_stack_name(settings: Settings) -> str:
    """``<project>-device``: the stack notebooks 01 and 99 agree on without being told."""
    return f"{settings.project_name}-device"


def default_thing_prefix(settings: Settings) -> str:
    """``<project>-core``, so the first thing is the template's default ``edgekit-core-1``."""
    return f"{settings.project_name}-core"


def edgekit_component_names(settings: Settings) -> list[str]:
    """The components edgekit publishes (names from Settings), dependents first."""
    return [settings.inference_component, settings.agent_component, settings.model_component]


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


def natural_key(name: str) -> list[Any]:
    """Sort key that puts ``d-2`` before ``d-10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def order_things(first: str, others: Iterable[str]) -> tuple[str, ...]:
    """``first``, then every other thing in natural order (no duplicates)."""
    rest = sorted(set(others) - {first}, key=natural_key)
    return (first, *rest)


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
    """What :func:`edgekit.provision.deprovision` removed."""

    stack_name: str
    stack_deleted: bool
    removed_devices: tuple[str, ...] = ()


class DeviceBackend(Protocol):
    """How one backend brings devices up and down around the shared device stack."""

    #: Seconds to wait for all devices to report HEALTHY, and between two checks.
    wait_timeout: float
    wait_poll: float
    #: Longest gap between two stack-status checks while CloudFormation works.
    stack_poll: float
    #: What a "devices did not finish" error adds (how to check they run).
    running_hint: str
    #: How to make the devices and their thing group, as the README teaches, for a
    #: "thing group does not exist" or "no core devices" error.
    provision_hint: str

    def check_count(self, count: int) -> None:
        """Refuse a device count this backend cannot make (before anything is created)."""

    def prepare(self) -> None:
        """Make the endpoints reachable (local) or check the credentials (aws)."""

    def reachable(self) -> bool:
        """True if the backend's endpoints answer now (without starting anything)."""

    def holds_saved_state(self) -> bool:
        """True if the backend may hold resources while its endpoints are down (local: a
        saved moto snapshot that the next `local up` restores); clean-up then starts the
        endpoints rather than leave those resources to come back."""

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

    def unarchived_dirs(self, component: str, things: Iterable[str] = ()) -> list[Path]:
        """The unpacked artifacts of ``component`` (the version each device runs) on the
        devices this machine hosts (only ``things`` if given); [] when it hosts none."""
