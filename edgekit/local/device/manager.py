"""Register things and run their device runtimes detached in the local home.

``add_device`` makes the thing (and its thing group) exist in the local AWS IoT,
starts ``python -m edgekit.local.device`` as ``device-<thing>`` with
``edgekit.local.process`` and returns once the runtime has reported its status
to the control plane, so the device shows up in ListCoreDevices right away.
The runtime survives the notebook kernel that started it; ``remove_device``
(or ``edgekit local down``) stops it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from edgekit.awsapi import error_code
from edgekit.errors import ConfigurationError, LocalBackendError
from edgekit.local import boto, process
from edgekit.local.device.paths import DeviceLayout, remove_root
from edgekit.local.device.process_groups import ledger_file
from edgekit.local.endpoints import MQTT, LocalEndpoints
from edgekit.local.home import HomeLayout, check_name
from edgekit.settings import Settings

PROCESS_PREFIX = "device-"


def process_name(thing: str) -> str:
    return f"{PROCESS_PREFIX}{check_name(thing)}"


@dataclass(frozen=True)
class DeviceInfo:
    """One local device: its root, its process and the components it last committed."""

    thing: str
    root: Path
    pid: int | None
    components: dict[str, str] = field(default_factory=dict)  # name -> version

    @property
    def running(self) -> bool:
        return self.pid is not None


def _create_if_missing(describe: Any, create: Any) -> None:
    """``describe()``, and ``create()`` if that says not found (a concurrent create is fine)."""
    try:
        describe()
        return
    except ClientError as exc:
        if error_code(exc) not in ("ResourceNotFoundException", "ResourceNotFound"):
            raise
    try:
        create()
    except ClientError as exc:
        if error_code(exc) != "ResourceAlreadyExistsException":
            raise


def register_thing(thing: str, group: str | None, iot: Any) -> None:
    """Create the thing and the group if missing, and put the thing in the group."""
    _create_if_missing(
        lambda: iot.describe_thing(thingName=thing), lambda: iot.create_thing(thingName=thing)
    )
    if group:
        _create_if_missing(
            lambda: iot.describe_thing_group(thingGroupName=group),
            lambda: iot.create_thing_group(thingGroupName=group),
        )
        iot.add_thing_to_thing_group(thingGroupName=group, thingName=thing)


def add_device(
    thing: str,
    group: str | None = None,
    home: str | os.PathLike[str] | None = None,
    *,
    poll: float = 0.5,
    timeout: float = 60.0,
) -> DeviceInfo:
    """Register ``thing`` in ``group`` and start its runtime; idempotent.

    ``group`` defaults to ``Settings.from_env().thing_group`` ('' for none). Raises
    LocalBackendError if the local endpoints are not running or the runtime does not
    report within ``timeout`` seconds (the message carries the runtime's log tail).
    """
    check_name(thing)
    if poll <= 0:
        raise ConfigurationError(f"poll={poll} must be a positive number of seconds")
    layout = HomeLayout.of(home).ensure()
    # The broker may be down: the runtime spools IoT Core messages until it is back.
    endpoints = LocalEndpoints.load(layout.root, optional=(MQTT,))
    group = group if group is not None else Settings.from_env().thing_group
    iot = boto.for_endpoints(endpoints, "iot")
    register_thing(thing, group or None, iot)
    name = process_name(thing)
    root = layout.device_root(thing)
    if process.is_running(layout.root, name):
        return _info(layout, thing)
    root.mkdir(parents=True, exist_ok=True)
    argv = process.python_argv(
        "edgekit.local.device",
        "--thing", thing,
        "--root", str(root),
        "--greengrass-endpoint", endpoints.greengrass_url,
        "--aws-endpoint", endpoints.moto_url,
        "--mqtt", endpoints.mqtt,
        "--region", endpoints.region,
        "--account-id", endpoints.account_id,
        "--poll", str(poll),
    )  # fmt: skip
    greengrass = boto.for_endpoints(endpoints, "greengrassv2")
    started = time.time()

    def reported() -> bool:
        try:
            device = greengrass.get_core_device(coreDeviceThingName=thing)
        except (ClientError, BotoCoreError):  # not reported yet, or the emulator is busy
            return False
        stamp = device.get("lastStatusUpdateTimestamp")
        return stamp is None or stamp.timestamp() >= started - 1.0

    process.start_process(
        layout.root,
        name,
        argv,
        env=endpoints.env(),
        ready=reported,
        timeout=timeout,
        groups=ledger_file(root),  # `local down` ends its components even after a crash
    )
    return _info(layout, thing)


def remove_device(
    thing: str,
    home: str | os.PathLike[str] | None = None,
    *,
    purge: bool = False,
    timeout: float = 30.0,
) -> bool:
    """Stop the runtime of ``thing`` (its components stop with it); True if one was running.

    ``purge`` also deletes the device root and the core device in the control plane.
    """
    layout = HomeLayout.of(home)
    stopped = process.stop_process(layout.root, process_name(thing), timeout=timeout)
    if purge:
        root = layout.device_root(thing)
        socket = DeviceLayout.of(root).socket_path
        if not socket.is_relative_to(root):  # in the per-user socket folder
            socket.unlink(missing_ok=True)
        remove_root(root)
        try:
            endpoints = LocalEndpoints.load(layout.root)
        except LocalBackendError:
            return stopped  # endpoints down: nothing to delete there
        greengrass = boto.for_endpoints(endpoints, "greengrassv2")
        try:
            greengrass.delete_core_device(coreDeviceThingName=thing)
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise LocalBackendError(
                    f"could not delete core device {thing} in the local control plane: {exc}"
                ) from exc
    return stopped


def _committed_components(root: Path) -> dict[str, str]:
    try:
        data = json.loads((root / "config" / "state.json").read_text())
    except (OSError, ValueError):
        return {}
    return {n: str(c.get("version")) for n, c in (data.get("components") or {}).items()}


def _info(layout: HomeLayout, thing: str) -> DeviceInfo:
    root = layout.device_root(thing)
    return DeviceInfo(
        thing=thing,
        root=root,
        pid=process.pid_of(layout.root, process_name(thing)),
        components=_committed_components(root),
    )


def list_devices(home: str | os.PathLike[str] | None = None) -> list[DeviceInfo]:
    """Every device with a root or a pid file in ``home``, running or not."""
    layout = HomeLayout.of(home)
    things: set[str] = set()
    if layout.devices_dir.is_dir():
        things.update(p.name for p in layout.devices_dir.iterdir() if p.is_dir())
    things.update(
        n[len(PROCESS_PREFIX) :]
        for n in process.recorded_names(layout.root)
        if n.startswith(PROCESS_PREFIX)
    )
    return [_info(layout, t) for t in sorted(things)]


def device_logs(
    thing: str,
    component: str | None = None,
    home: str | os.PathLike[str] | None = None,
    *,
    tail: int | None = None,
) -> str:
    """A component's log (or the runtime's ``greengrass.log``); the last ``tail`` lines."""
    layout = HomeLayout.of(home)
    device = DeviceLayout.of(layout.device_root(thing))
    path = device.runtime_log if component is None else device.component_log(component)
    if not path.is_file():
        known = (
            sorted(p.stem for p in device.logs_dir.glob("*.log"))
            if device.logs_dir.is_dir()
            else []
        )
        raise ConfigurationError(
            f"no log {path}; "
            + (f"logs of {thing}: {', '.join(known)}" if known else f"is {thing} a local device?")
        )
    text = path.read_text(errors="replace")
    if tail is not None:
        lines = text.splitlines()
        text = "\n".join(lines[-tail:] if tail > 0 else []) + ("\n" if lines and tail > 0 else "")
    return text
