"""The local device runtime: a Greengrass core device (nucleus) per IoT thing.

Owns: ``runtime`` (`DeviceRuntime`, one device, in a thread or as ``python -m
edgekit.local.device``), with ``planning`` (`Planner`: what a deployment needs) and one
mixin per purpose: ``supervision`` (running the components' ``lifecycle``; their
process groups are recorded by ``process_groups`` so a killed runtime's are ended),
``deployments`` (polling, applying, rolling back; ``local_deployments``: the
greengrass-cli local deployments of ``edgekit local device deploy``, from recipe and
artifact folders), ``status`` (reports) and ``ipc_host`` (the IPC server's host);
the device's side of the control plane (``control``; its AWS calls go over plain HTTP
through ``rest``, so a runtime never imports boto3), artifacts, configuration,
recipe interpolation, its on-disk layout (``paths``) and saved state (``store``);
``manager`` registers things and starts runtimes detached in the local home; ``cli``
adds ``edgekit local device ...``. Recipe semantics come from ``edgekit.recipes``
(through ``recipe`` and ``resolver``).

Must not import ``edgekit.clients`` or any layer above the local backend, nor the
Greengrass emulator (``edgekit.local.greengrass``: the device talks to it over HTTP only).
Heavy modules load on first use of the names below, so ``import edgekit`` stays fast.

Its public API raises `edgekit.errors` types (LocalBackendError, ConfigurationError).
``failures.DeploymentFailure`` and ``control.ControlPlaneUnavailable`` are internal to a
runtime: a failure becomes the deployment's reported status, an unreachable control
plane a retry at the next poll.
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
