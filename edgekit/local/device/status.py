"""Status reports: what the device tells the control plane about itself and its components.

The rows ListInstalledComponents shows, the core device's health, and the loop
that reports them on every state change (batched) and every ``status_interval``.
The same report, plus the IoT Core bridge's counters (`IpcServer.mqtt_stats`: its
spool and every message dropped or refused), is written to ``<root>/status.json``
at least every ``LOCAL_STATUS_INTERVAL`` seconds, even while the control plane is
down, for ``edgekit local device status`` (`read_local_status`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from edgekit.files import write_json_atomic
from edgekit.local.device import lifecycle as lc
from edgekit.local.device.control import ControlPlane, ControlPlaneUnavailable
from edgekit.local.device.lifecycle import ComponentService
from edgekit.local.device.store import ComponentRecord, DeviceState

CORE_VERSION = "2.12.0"
NUCLEUS = "aws.greengrass.Nucleus"
LOCAL_STATUS_FILE = "status.json"
LOCAL_STATUS_INTERVAL = 1.0


def read_local_status(root: str | Path) -> dict[str, Any] | None:
    """The last ``status.json`` a device runtime wrote under ``root``; None if there is none."""
    try:
        data = json.loads((Path(root) / LOCAL_STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


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
    _ipc_server: Any
    layout: Any
    thing_name: str

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

    def mqtt_stats(self) -> dict[str, Any]:
        """The IoT Core bridge's counters; empty without an IPC server or a broker."""
        server = self._ipc_server
        return {} if server is None else dict(server.mqtt_stats())

    def _write_local_status(self, payload: dict[str, Any] | None = None) -> None:
        document = dict(payload if payload is not None else self._status_payload())
        document.update(
            thingName=self.thing_name,
            writtenAt=time.time(),
            controlPlaneReachable=self._status_ok,
            mqtt=self.mqtt_stats(),
        )
        try:
            write_json_atomic(self.layout.root / LOCAL_STATUS_FILE, document, fsync=False)
        except OSError as exc:
            self._warn_once("local-status", f"cannot write {LOCAL_STATUS_FILE}: {exc}")

    def _send_status(self) -> bool:
        payload = self._status_payload()
        try:
            self.cloud.report_status(payload)
        except ControlPlaneUnavailable as exc:
            self._status_ok = False
            self._warn_once("status", f"cannot report status: {exc}")
            self._write_local_status(payload)
            return False
        self._status_ok = True
        self._write_local_status(payload)
        return True

    def _report_loop(self) -> None:
        last_report = time.monotonic()
        while not self._stopping.is_set():
            changed = self._report_event.wait(min(self.status_interval, LOCAL_STATUS_INTERVAL))
            if self._stopping.is_set():
                return
            if changed or time.monotonic() - last_report >= self.status_interval:
                self._report_event.clear()
                time.sleep(0.02)  # a burst of state changes becomes one report
                self._send_status()
                last_report = time.monotonic()
            else:
                self._write_local_status()
