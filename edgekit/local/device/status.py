"""Status reports: what the device tells the control plane about itself and its components.

The rows ListInstalledComponents shows, the core device's health, and the loop
that reports them on every state change (batched) and every ``status_interval``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from edgekit.local.device import lifecycle as lc
from edgekit.local.device.control import ControlPlane, ControlPlaneUnavailable
from edgekit.local.device.lifecycle import ComponentService
from edgekit.local.device.store import ComponentRecord, DeviceState

CORE_VERSION = "2.12.0"
NUCLEUS = "aws.greengrass.Nucleus"


class StatusMixin:
    """The status-report part of `DeviceRuntime`."""

    cloud: ControlPlane
    platform: dict[str, str]
    groups: list[str]
    services: dict[str, ComponentService]
    state: DeviceState
    status_interval: float
    log: logging.Logger
    _lock: threading.RLock
    _stopping: threading.Event
    _report_event: threading.Event
    _boot_errors: dict[str, tuple[str, str]]
    _status_ok: bool
    _last_error: dict[str, float]

    def _warn_once(self, key: str, message: str, every: float = 30.0) -> None:
        """Log a recurring problem (control plane down) at most every ``every`` seconds."""
        now = time.monotonic()
        if now - self._last_error.get(key, -every) >= every:
            self._last_error[key] = now
            self.log.warning(message)

    def component_rows(self) -> list[dict[str, Any]]:
        """What ListInstalledComponents shows for this device."""
        rows = [
            {
                "componentName": NUCLEUS,
                "componentVersion": CORE_VERSION,
                "lifecycleState": lc.FINISHED,
                "lifecycleStateDetails": "",
                "isRoot": NUCLEUS in self.state.components and self.state.components[NUCLEUS].root,
                "lastStatusChangeTimestamp": time.time(),
            }
        ]
        with self._lock:
            services = dict(self.services)
            records = dict(self.state.components)
        for name, svc in sorted(services.items()):
            rows.append(
                {
                    "componentName": name,
                    "componentVersion": svc.spec.version,
                    "lifecycleState": svc.state,
                    "lifecycleStateDetails": svc.details,
                    "isRoot": svc.spec.root,
                    "lastStatusChangeTimestamp": svc.changed_at,
                }
            )
        for name, record in sorted(records.items()):
            if record.provided and name != NUCLEUS:
                rows.append(
                    {
                        "componentName": name,
                        "componentVersion": record.version,
                        "lifecycleState": lc.RUNNING,
                        "lifecycleStateDetails": "provided by the edgekit device runtime",
                        "isRoot": record.root,
                        "lastStatusChangeTimestamp": time.time(),
                    }
                )
        for name, (version, reason) in sorted(self._boot_errors.items()):
            if name not in services:
                rows.append(
                    {
                        "componentName": name,
                        "componentVersion": version,
                        "lifecycleState": lc.BROKEN,
                        "lifecycleStateDetails": reason[:500],
                        "isRoot": records.get(name, ComponentRecord(version, {}, False)).root,
                        "lastStatusChangeTimestamp": time.time(),
                    }
                )
        return rows

    def _status_payload(self) -> dict[str, Any]:
        rows = self.component_rows()
        healthy = all(r["lifecycleState"] not in (lc.BROKEN, lc.ERRORED) for r in rows)
        return {
            "coreVersion": CORE_VERSION,
            "platform": self.platform["os"],
            "architecture": self.platform["architecture"],
            "status": "HEALTHY" if healthy else "UNHEALTHY",
            "thingGroups": list(self.groups),
            "components": rows,
        }

    def _send_status(self) -> bool:
        try:
            self.cloud.report_status(self._status_payload())
        except ControlPlaneUnavailable as exc:
            self._status_ok = False
            self._warn_once("status", f"cannot report status: {exc}")
            return False
        self._status_ok = True
        return True

    def _report_loop(self) -> None:
        while not self._stopping.is_set():
            self._report_event.wait(self.status_interval)
            if self._stopping.is_set():
                return
            self._report_event.clear()
            time.sleep(0.02)  # a burst of state changes becomes one report
            self._send_status()
