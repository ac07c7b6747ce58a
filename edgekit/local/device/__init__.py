"""The local device runtime: a Greengrass core device (nucleus) per IoT thing.

``DeviceRuntime`` runs one device (in a thread, or as ``python -m
edgekit.local.device``); ``manager`` registers things and starts runtimes
detached in the local home; ``cli`` adds ``edgekit local device ...``.
Heavy modules load on first use so ``import edgekit`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgekit.local.device.manager import (
        DeviceInfo,
        add_device,
        device_logs,
        list_devices,
        remove_device,
    )
    from edgekit.local.device.runtime import DeviceRuntime

__all__ = [
    "DeviceInfo",
    "DeviceRuntime",
    "add_device",
    "device_logs",
    "list_devices",
    "remove_device",
]


def __getattr__(name: str) -> Any:
    if name == "DeviceRuntime":
        from edgekit.local.device.runtime import DeviceRuntime

        return DeviceRuntime
    if name in ("DeviceInfo", "add_device", "device_logs", "list_devices", "remove_device"):
        from edgekit.local.device import manager

        return getattr(manager, name)
    raise AttributeError(name)
