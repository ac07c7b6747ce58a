"""The local backend's strategy: one device runtime process per thing, on the local endpoints.

The device stack deploys into moto (its EC2 instance is a record only); each thing
gets a local device runtime (``edgekit.local.device.add_device``) in ``settings.home``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from edgekit import clients
from edgekit.awsapi import is_not_found, map_client_error
from edgekit.errors import ConfigurationError, LocalBackendError
from edgekit.files import log_tail
from edgekit.local import endpoints
from edgekit.local.device import add_device, list_devices, remove_device
from edgekit.local.device.paths import DeviceLayout
from edgekit.local.endpoints import LocalEndpoints
from edgekit.local.home import HomeLayout
from edgekit.provision.controlplane import core_device, thing_exists
from edgekit.settings import Settings
from edgekit.spelling import parameter_text


class LocalDevices:
    """Local backend: one device runtime process per thing, on the local endpoints."""

    wait_timeout = 60.0
    wait_poll = 0.5
    stack_poll = 1.0
    running_hint = " (`edgekit local device list`)"
    provision_hint = "`edgekit provision --devices N` (or notebook 01_provision_device)"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.home

    def check_count(self, count: int) -> None:
        if count < 1:
            raise ConfigurationError(
                f"{parameter_text('device_count', count)}: provision at least one device"
            )

    def prepare(self) -> None:
        endpoints.up(self.home, region=self.settings.region)

    def reachable(self) -> bool:
        try:
            LocalEndpoints.load(self.home)
        except LocalBackendError:
            return False
        return True

    def holds_saved_state(self) -> bool:
        layout = HomeLayout.of(self.home)
        greengrass = layout.greengrass_dir
        return layout.moto_state_file.is_file() or (
            greengrass.is_dir() and any(greengrass.iterdir())
        )

    def start_devices(self, things: Sequence[str], group: str) -> None:
        for thing in things:
            add_device(thing, group, self.home)

    def remove_devices(self, things: Sequence[str]) -> list[str]:
        known = {d.thing for d in list_devices(self.home)}
        reachable = self.reachable()
        iot = clients.client("iot", self.settings) if reachable else None
        greengrass = clients.client("greengrassv2", self.settings) if reachable else None
        removed = []
        for thing in things:
            existed = (
                thing in known
                or (greengrass is not None and core_device(greengrass, thing) is not None)
                or (iot is not None and thing_exists(iot, thing))
            )
            if not existed:
                continue
            remove_device(thing, self.home, purge=True)
            if iot is not None:
                self._delete_thing(iot, thing)
            removed.append(thing)
        return removed

    def own_devices(self, prefix: str) -> list[str]:
        pattern = re.compile(re.escape(prefix) + r"-\d+")
        return [d.thing for d in list_devices(self.home) if pattern.fullmatch(d.thing)]

    def not_ready_hint(self, thing: str, outputs: Mapping[str, str]) -> str:
        tail = log_tail(self._device(thing).runtime_log, 5).strip()
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
        device = self._device(thing)
        if component is not None and device.component_log(component).is_file():
            return log_tail(device.component_log(component), lines)
        return log_tail(device.runtime_log, lines)  # '' when there is no log at all

    def deploy_failed_hint(self, thing: str) -> str:
        return f"; see `edgekit local device logs {thing}` (and the component logs)"

    def unarchived_dirs(self, component: str, things: Iterable[str] = ()) -> list[Path]:
        wanted = set(things)
        dirs = []
        for device in list_devices(self.home):
            if wanted and device.thing not in wanted:
                continue
            version = device.components.get(component)
            if version:
                dirs.append(DeviceLayout.of(device.root).unarchived(component, version))
        return dirs

    def _device(self, thing: str) -> DeviceLayout:
        return DeviceLayout.of(HomeLayout.of(self.home).device_root(thing))

    # The runtime's IoT thing was created by add_device; on AWS the installer makes it.
    @staticmethod
    def _delete_thing(iot: Any, thing: str) -> None:
        try:
            iot.delete_thing(thingName=thing)
        except ClientError as exc:
            if not is_not_found(exc):
                raise map_client_error(
                    exc,
                    f"local IoT thing {thing}",
                    "delete it",
                    default=LocalBackendError,
                    hint="check that the local endpoints run (`edgekit local status`)",
                ) from exc


__all__ = ["LocalDevices"]
