"""Component supervision: start, stop and watch the services of a plan, in dependency order.

`SupervisionMixin` makes the running services match a `Plan` (stop what left,
reinstall or restart what changed, start dependencies first), waits until they are
healthy, and is the `ServiceHost` the component services call back into.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edgekit.files import log_tail
from edgekit.local.device import lifecycle as lc
from edgekit.local.device import process_groups
from edgekit.local.device.configuration import changed_paths
from edgekit.local.device.control import ControlPlane
from edgekit.local.device.failures import DeploymentFailure
from edgekit.local.device.lifecycle import ComponentService
from edgekit.local.device.paths import DeviceLayout
from edgekit.local.device.planning import Plan, topological
from edgekit.local.process import GroupLedger


class Interrupted(Exception):
    """The runtime is stopping in the middle of a deployment; it resumes after a restart."""


def kill_orphans(root: Path, log: logging.Logger) -> None:
    """End component processes a previous runtime of this root left behind (it was killed).

    The process groups it recorded (`process_groups`) get SIGTERM, then SIGKILL after
    the components' stop grace. Then, for a script started in the instant before its
    group was recorded (or by a runtime older than the ledger), groups whose processes
    still carry this root's ``EDGEKIT_DEVICE_ROOT`` are killed.
    """
    process_groups.end_leftovers(root, lc.STOP_GRACE, log)
    proc = Path("/proc")
    if not proc.is_dir():
        return
    marker = f"EDGEKIT_DEVICE_ROOT={root}".encode()
    groups: set[int] = set()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            if marker not in environ:
                continue
            groups.add(os.getpgid(int(entry.name)))
        except (OSError, ProcessLookupError):
            continue
    groups.discard(os.getpgid(0))
    for pgid in groups:
        log.warning("stopping process group %d left over by a previous runtime of %s", pgid, root)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


class SupervisionMixin:
    """The component-supervision part of `DeviceRuntime`."""

    thing_name: str
    region: str
    mqtt_endpoint: str | None
    layout: DeviceLayout
    cloud: ControlPlane
    settle: float
    deployment_timeout: float
    condition: threading.Condition
    services: dict[str, ComponentService]
    log: logging.Logger
    _lock: threading.RLock
    _stopping: threading.Event
    _report_event: threading.Event
    _boot_errors: dict[str, tuple[str, str]]
    _apply_secret_manager: Callable[[Plan], None]  # IpcHostMixin

    # --- ServiceHost -----------------------------------------------------------------------

    def component_env(self, service: ComponentService) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN"):
            env.pop(name, None)
        # Components that call AWS land on the local endpoints, as they would reach AWS
        # through the token exchange service on a real core device.
        env.setdefault("AWS_ENDPOINT_URL", self.cloud.aws_endpoint)
        env.setdefault("AWS_ENDPOINT_URL_GREENGRASSV2", self.cloud.greengrass_url)
        if "AWS_ACCESS_KEY_ID" not in env:
            env["AWS_ACCESS_KEY_ID"] = "testing"
            env["AWS_SECRET_ACCESS_KEY"] = "testing"
        token = self._token(service.name)
        env.update(
            {
                "SVCUID": token,
                # As the nucleus does for every component: the Stream Manager SDK sends it
                # as its authToken (and AWS SDKs to the token exchange service).
                "AWS_CONTAINER_AUTHORIZATION_TOKEN": token,
                "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT": str(self.layout.socket_path),
                "AWS_IOT_THING_NAME": self.thing_name,
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
                "GG_ROOT_CA_PATH": "",
                "EDGEKIT_DEVICE_ROOT": str(self.layout.root),
            }
        )
        if self.mqtt_endpoint:
            env["EDGEKIT_MQTT_ENDPOINT"] = self.mqtt_endpoint
        # The Stream Manager SDKs read the port from STREAM_MANAGER_SERVER_PORT (8088 if
        # unset); dependents get this device's, so several local devices can run at once.
        stream_manager = self.services.get("aws.greengrass.StreamManager")
        if stream_manager is not None and stream_manager.name in service.spec.dependencies:
            config = stream_manager.spec.configuration
            for port in (config.get("port"), config.get("STREAM_MANAGER_SERVER_PORT")):
                if str(port or "").strip().isdigit() and int(port) > 0:  # port: the bound one
                    env["STREAM_MANAGER_SERVER_PORT"] = str(port).strip()
                    break
        return env

    def service_state(self, name: str) -> str | None:
        svc = self.services.get(name)
        return None if svc is None else svc.state

    def state_changed(self, service: ComponentService) -> None:
        with self.condition:
            self.condition.notify_all()
        self._report_event.set()

    def _log(self, level: str, message: str) -> None:
        self.log.log(getattr(logging, level, logging.INFO), message)

    # ServiceHost.log is a method named ``log``; the logger lives in self.log, so the
    # services get a small adapter instead of the runtime itself.
    def _host(self) -> ServiceHostAdapter:
        return ServiceHostAdapter(self)

    def _group_ledger(self) -> GroupLedger:
        """The one ledger of this runtime's process groups (all its services share it)."""
        with self._lock:
            ledger: GroupLedger | None = getattr(self, "_groups", None)
            if ledger is None:
                ledger = process_groups.ledger(self.layout.root)
                self._groups = ledger
        return ledger

    def _switch(self, plan: Plan, *, fresh_errors: bool = False) -> set[str]:
        """Make the running services match ``plan``; returns the names that (re)started."""
        if self._stopping.is_set():
            raise Interrupted()
        # aws.greengrass.SecretManager runs in the device (its IPC): configure it first, so
        # a secret it cannot read fails the deployment before anything stops.
        self._apply_secret_manager(plan)
        new_specs = plan.specs
        with self._lock:
            old = dict(self.services)
        removed = [n for n in old if n not in new_specs]
        fresh = {n for n in new_specs if n not in old}
        reinstall: set[str] = set()
        restart: set[str] = set()
        config_changes: dict[str, list[list[str]]] = {}
        for name, spec in new_specs.items():
            svc = old.get(name)
            if svc is None:
                continue
            if svc.spec.fingerprint("install") != spec.fingerprint("install"):
                reinstall.add(name)
            elif (
                svc.spec.fingerprint("start") != spec.fingerprint("start")
                or svc.state in (lc.BROKEN, lc.ERRORED)
                or (not svc.is_alive() and svc.state not in lc.READY_STATES)
            ):
                restart.add(name)
            if svc.spec.configuration != spec.configuration:
                config_changes[name] = changed_paths(svc.spec.configuration, spec.configuration)
        # A HARD dependency that restarts restarts its dependents.
        changed = reinstall | restart | fresh
        grew = True
        while grew:
            grew = False
            for name, spec in new_specs.items():
                if name in changed or name not in old:
                    continue
                if any(
                    dep in changed and kind == "HARD" for dep, kind in spec.dependencies.items()
                ):
                    restart.add(name)
                    changed.add(name)
                    grew = True
        to_stop = [n for n in removed] + [n for n in old if n in reinstall | restart]
        self._stop_services(to_stop)
        with self._lock:
            for name in removed:
                self.services.pop(name, None)
            for name in reinstall | fresh:
                spec = new_specs[name]
                spec.bootstrap = name in fresh or old[name].spec.version != spec.version
                self.services[name] = ComponentService(spec, self._host())
            for name, spec in new_specs.items():
                if name in reinstall or name in fresh:
                    continue
                svc = self.services[name]
                spec.bootstrap = False
                svc.spec = spec  # new configuration / root flag; same processes
                if name in restart or fresh_errors:
                    svc.reset_errors()
            self._boot_errors = {n: v for n, v in self._boot_errors.items() if n not in new_specs}
        for name in removed:
            self.log.info("component %s removed", name)
        order = topological(new_specs)
        for name in order:
            if name in changed:
                self.services[name].start()
        if config_changes:
            self._notify_config(config_changes)
        self._report_event.set()
        return changed

    def _stop_services(self, names: list[str]) -> None:
        """Stop services, dependents before their dependencies."""
        with self._lock:
            services = {n: self.services[n] for n in names if n in self.services}
            specs = {n: s.spec for n, s in self.services.items()}
        try:
            order = [n for n in reversed(topological(specs)) if n in services]
        except DeploymentFailure:
            order = sorted(services)
        for name in order:
            services[name].stop()

    def _await(self, plan: Plan, changed: set[str]) -> None:
        """Wait until every component of ``plan`` is RUNNING (for ``settle`` s) or FINISHED."""
        deadline = time.monotonic() + self.deployment_timeout
        names = sorted(plan.specs)
        with self.condition:
            while True:
                if self._stopping.is_set():
                    raise Interrupted()
                now = time.time()
                waiting: list[str] = []
                for name in names:
                    svc = self.services[name]
                    if svc.state == lc.BROKEN:
                        raise self._broken(svc)
                    if svc.state == lc.FINISHED:
                        continue
                    if svc.state == lc.RUNNING and (
                        name not in changed or now - svc.changed_at >= self.settle
                    ):
                        continue
                    waiting.append(name)
                if not waiting:
                    return
                if time.monotonic() >= deadline:
                    states = ", ".join(f"{n} {self.services[n].state}" for n in waiting)
                    raise DeploymentFailure(
                        f"components did not reach RUNNING or FINISHED within "
                        f"{self.deployment_timeout:g} s: {states}",
                        codes=["COMPONENT_UPDATE_ERROR"],
                        types=["USER_COMPONENT_ERROR"],
                    )
                self.condition.wait(0.05)

    def _broken(self, svc: ComponentService) -> DeploymentFailure:
        tail = log_tail(svc.spec.log_file)
        reason = (
            f"component {svc.name} {svc.spec.version} is BROKEN: {svc.details or 'it failed'}"
            f"; last lines of {svc.spec.log_file}:\n{tail}"
        )
        return DeploymentFailure(
            reason,
            codes=["COMPONENT_UPDATE_ERROR", "COMPONENT_BROKEN"],
            types=["USER_COMPONENT_ERROR"],
        )


class ServiceHostAdapter:
    """The ServiceHost view of a runtime (keeps ``runtime.log`` a Logger)."""

    def __init__(self, runtime: SupervisionMixin) -> None:
        self._rt = runtime
        self.condition = runtime.condition
        self.groups: GroupLedger | None = runtime._group_ledger()

    def component_env(self, service: ComponentService) -> dict[str, str]:
        return self._rt.component_env(service)

    def service_state(self, name: str) -> str | None:
        return self._rt.service_state(name)

    def state_changed(self, service: ComponentService) -> None:
        self._rt.state_changed(service)

    def log(self, level: str, message: str) -> None:
        self._rt._log(level, message)
