"""The device runtime: a Greengrass nucleus for one thing on this machine.

It polls the control plane for the deployments that target its thing and its
thing groups, resolves and downloads the components, runs their lifecycles,
reports component states, and rolls a failed deployment back. Everything it
has applied is saved atomically under its root, so a restarted runtime brings
back the same components, and a runtime killed during a deployment comes back
with the previous set running and applies that deployment again.

It also hosts the IPC server (``edgekit.local.ipc``): it implements
``edgekit.local.ipc.host.IpcHost`` (tokens, configuration, state updates).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import DeploymentError, EdgekitError, LocalBackendError
from edgekit.local.device import lifecycle as lc
from edgekit.local.device.artifacts import prepare_artifacts, remove_version
from edgekit.local.device.configuration import (
    changed_paths,
    deep_merge,
    get_path,
    resolve_configuration,
    set_path,
)
from edgekit.local.device.control import ControlPlane, ControlPlaneUnavailable
from edgekit.local.device.failures import DeploymentFailure
from edgekit.local.device.interpolate import ComponentPaths, Context, interpolate
from edgekit.local.device.lifecycle import ComponentService, ComponentSpec
from edgekit.local.device.paths import DeviceLayout
from edgekit.local.device.recipe import (
    STEP_KEYS,
    ResolvedRecipe,
    Step,
    device_platform,
    is_provided,
    resolve_recipe,
)
from edgekit.local.device.resolver import resolve
from edgekit.local.device.store import ComponentRecord, DeviceState, load_state, save_state

CORE_VERSION = "2.12.0"
NUCLEUS = "aws.greengrass.Nucleus"
LOG_TAIL_LINES = 20
ConfigListener = Callable[[str, list[str]], None]


class _Interrupted(Exception):
    """The runtime is stopping in the middle of a deployment; it resumes after a restart."""


@dataclass
class _Plan:
    records: dict[str, ComponentRecord]
    specs: dict[str, ComponentSpec] = field(default_factory=dict)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ('' if there is none)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read()
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").rstrip().splitlines()[-lines:])


def _topological(specs: dict[str, ComponentSpec]) -> list[str]:
    """Dependencies before dependents; DeploymentFailure on a cycle."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        mark = state.get(name)
        if mark == 2:
            return
        if mark == 1:
            cycle = " -> ".join([*path[path.index(name) :], name])
            raise DeploymentFailure(
                f"components depend on each other in a cycle ({cycle}); remove one dependency",
                codes=["COMPONENT_CIRCULAR_DEPENDENCY_ERROR"],
                types=["REQUEST_ERROR"],
            )
        state[name] = 1
        for dep in sorted(specs[name].dependencies):
            if dep in specs:
                visit(dep, [*path, name])
        state[name] = 2
        order.append(name)

    for name in sorted(specs):
        visit(name, [])
    return order


def _kill_orphans(root: Path, log: logging.Logger) -> None:
    """End component processes a previous runtime of this root left behind (it was killed)."""
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


class DeviceRuntime:
    """One Greengrass core device. ``start()`` runs it in background threads; ``stop()`` ends it.

    ``poll`` is the deployment polling interval, ``settle`` how long a component
    must stay RUNNING before a deployment counts it as healthy, ``status_interval``
    the period of unsolicited status reports, ``group_refresh`` how often the
    thing's groups are looked up in AWS IoT.
    """

    def __init__(
        self,
        thing: str,
        root: str | os.PathLike[str],
        greengrass_endpoint: str,
        aws_endpoint: str,
        mqtt: str | None = None,
        region: str = "us-east-1",
        *,
        account_id: str = "123456789012",
        poll: float = 0.5,
        status_interval: float = 10.0,
        settle: float = 0.5,
        deployment_timeout: float = 900.0,
        group_refresh: float = 5.0,
        start_ipc: bool = True,
    ) -> None:
        self.thing_name = thing
        self.region = region
        self.mqtt_endpoint = mqtt
        self.layout = DeviceLayout.of(root)
        self.cloud = ControlPlane(thing, greengrass_endpoint, aws_endpoint, region, account_id)
        self.poll = poll
        self.status_interval = status_interval
        self.settle = settle
        self.deployment_timeout = deployment_timeout
        self.group_refresh = group_refresh
        self.platform = device_platform()
        self.groups: list[str] = []
        self.condition = threading.Condition()
        self.services: dict[str, ComponentService] = {}
        self.state = DeviceState()
        self._start_ipc = start_ipc
        self._ipc_server: Any = None
        self._tokens: dict[str, str] = {}  # token -> component
        self._token_of: dict[str, str] = {}  # component -> token
        self._listeners: list[ConfigListener] = []
        self._config_times: dict[tuple[str, tuple[str, ...]], float] = {}
        self._recipes: dict[tuple[str, str], ResolvedRecipe] = {}
        self._boot_errors: dict[str, tuple[str, str]] = {}
        self._lock = threading.RLock()  # state, services dict, tokens
        self._apply_lock = threading.Lock()  # one deployment / reconfiguration at a time
        self._stopping = threading.Event()
        self._report_event = threading.Event()
        self._threads: list[threading.Thread] = []
        self._status_ok = False
        self._last_error: dict[str, float] = {}
        self.log = self._make_logger()

    # --- logging ---------------------------------------------------------------------------

    def _make_logger(self) -> logging.Logger:
        self.layout.ensure()
        log = logging.getLogger(f"edgekit.device.{self.thing_name}.{id(self):x}")
        log.setLevel(logging.INFO)
        log.propagate = False
        handler = logging.FileHandler(self.layout.runtime_log)
        handler.setFormatter(
            logging.Formatter("%(asctime)s [%(levelname)s] %(message)s", "%Y-%m-%dT%H:%M:%S")
        )
        log.addHandler(handler)
        self._log_handler = handler
        return log

    def _warn_once(self, key: str, message: str, every: float = 30.0) -> None:
        """Log a recurring problem (control plane down) at most every ``every`` seconds."""
        now = time.monotonic()
        if now - self._last_error.get(key, -every) >= every:
            self._last_error[key] = now
            self.log.warning(message)

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
        env.update(
            {
                "SVCUID": self._token(service.name),
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
    def _host(self) -> _HostAdapter:
        return _HostAdapter(self)

    # --- IpcHost ---------------------------------------------------------------------------

    def _token(self, component: str) -> str:
        with self._lock:
            token = self._token_of.get(component)
            if token is None:
                token = secrets.token_hex(16)
                self._token_of[component] = token
                self._tokens[token] = component
            return token

    def authenticate(self, token: str) -> str | None:
        return self._tokens.get(token)

    def access_control(self, component: str) -> dict[str, Any]:
        svc = self.services.get(component)
        if svc is None:
            return {}
        acl = svc.spec.configuration.get("accessControl")
        return copy.deepcopy(acl) if isinstance(acl, dict) else {}

    def _configuration_of(self, component: str) -> dict[str, Any]:
        svc = self.services.get(component)
        if svc is not None:
            return svc.spec.configuration
        record = self.state.components.get(component)
        if record is not None:
            return record.configuration
        raise KeyError(component)

    def get_configuration(self, component: str, key_path: list[str]) -> Any:
        return copy.deepcopy(get_path(self._configuration_of(component), list(key_path)))

    def update_configuration(
        self, component: str, key_path: list[str], value: Any, timestamp: float
    ) -> bool:
        """Merge ``value`` at ``key_path``; False (and no change) for a stale timestamp."""
        key = (component, tuple(key_path))
        with self._lock:
            svc = self.services.get(component)
            record = self.state.components.get(component)
            if svc is not None:
                old = svc.spec.configuration
            elif record is not None:
                old = record.configuration
            else:
                raise KeyError(component)
            # Greengrass refuses an update older than the last one of the same key (or a parent).
            newest = max(
                (
                    t
                    for (c, p), t in self._config_times.items()
                    if c == component and tuple(key_path[: len(p)]) == p
                ),
                default=0.0,
            )
            if timestamp < newest:
                self.log.info("refused stale configuration update of %s %s", component, key_path)
                return False
            self._config_times[key] = timestamp
            new = copy.deepcopy(old)
            if not key_path:
                new = deep_merge(new, value) if isinstance(value, dict) else new
            else:
                try:
                    current = get_path(new, list(key_path))
                except KeyError:
                    current = None
                if isinstance(value, dict) and isinstance(current, dict):
                    set_path(new, list(key_path), deep_merge(current, value))
                else:
                    set_path(new, list(key_path), copy.deepcopy(value))
            if new == old:
                return True
            if svc is not None:
                svc.spec.configuration = new  # the live configuration; lifecycle not yet redone
            if record is not None and (svc is None or record.version == svc.spec.version):
                record.configuration = copy.deepcopy(new)
                self._save()
        paths = changed_paths(old, new)
        self.log.info("component %s updated its configuration at %s", component, key_path)
        self._notify_config({component: paths})
        threading.Thread(
            target=self._reconfigure, daemon=True, name=f"reconfigure-{component}"
        ).start()
        return True

    def add_configuration_listener(self, listener: ConfigListener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return remove

    def update_state(self, component: str, state: str) -> None:
        svc = self.services.get(component)
        if svc is None:
            raise KeyError(component)
        state = state.upper()
        if state == lc.RUNNING:
            if svc.state in (lc.STARTING, lc.RUNNING, lc.INSTALLED):
                svc.set_state(lc.RUNNING)
        elif state == lc.ERRORED:
            svc.report_error("the component reported ERRORED")
        else:
            raise ValueError(f"state {state!r} cannot be reported; use RUNNING or ERRORED")

    def component_details(self, component: str) -> dict[str, Any] | None:
        svc = self.services.get(component)
        if svc is not None:
            return {
                "componentName": component,
                "version": svc.spec.version,
                "state": svc.state,
                "configuration": copy.deepcopy(svc.spec.configuration),
            }
        record = self.state.components.get(component)
        if record is not None and record.provided:
            return {
                "componentName": component,
                "version": record.version,
                "state": lc.RUNNING,
                "configuration": copy.deepcopy(record.configuration),
            }
        if component == NUCLEUS:
            return {
                "componentName": NUCLEUS,
                "version": CORE_VERSION,
                "state": lc.FINISHED,
                "configuration": {},
            }
        return None

    def _notify_config(self, changes: dict[str, list[list[str]]]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for component, paths in changes.items():
            for path in paths:
                for listener in listeners:
                    try:
                        listener(component, list(path))
                    except Exception as exc:  # a listener's bug must not stop a deployment
                        self.log.warning("configuration listener failed: %r", exc)

    # --- lifecycle of the runtime ----------------------------------------------------------

    def start(self) -> DeviceRuntime:
        """Restore saved components and start polling; returns at once."""
        if self._threads:
            return self
        self._lock_root()
        try:
            self._boot()
        except BaseException:
            self._unlock_root()
            raise
        for target, name in ((self._poll_loop, "poll"), (self._report_loop, "status")):
            thread = threading.Thread(
                target=target, name=f"device-{self.thing_name}-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop polling, stop every component (dependents first), stop the IPC server."""
        if self._stopping.is_set():
            return
        self.log.info("device runtime stopping")
        self._stopping.set()
        self._report_event.set()
        with self.condition:
            self.condition.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        self._stop_services(list(self.services))
        if self._ipc_server is not None:
            with contextlib.suppress(Exception):
                self._ipc_server.stop()
        self._unlock_root()
        self.log.info("device runtime stopped")
        self.log.removeHandler(self._log_handler)
        self._log_handler.close()

    def __enter__(self) -> DeviceRuntime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    def _lock_root(self) -> None:
        """One runtime per root: an flock the kernel drops if this process dies."""
        import fcntl

        path = self.layout.root / ".runtime.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise LocalBackendError(
                f"device root {self.layout.root} is in use by another device runtime ({path} is "
                "locked); stop that one first, e.g. `edgekit local device remove "
                f"{self.thing_name}`"
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._root_lock_fd: int | None = fd

    def _unlock_root(self) -> None:
        fd = getattr(self, "_root_lock_fd", None)
        if fd is not None:
            os.close(fd)  # closing releases the flock
            self._root_lock_fd = None

    def _boot(self) -> None:
        self.log.info(
            "device runtime for %s starting (root %s, platform %s)",
            self.thing_name,
            self.layout.root,
            self.platform,
        )
        _kill_orphans(self.layout.root, self.log)
        self.state = load_state(self.layout.state_file)
        if self.state.pending:
            self.log.warning(
                "the previous runtime stopped during deployment %s; restoring the components "
                "it had before and applying that deployment again",
                self.state.pending.get("deploymentId"),
            )
        self._start_ipc_server()
        records = {n: r for n, r in self.state.components.items() if not r.provided}
        specs: dict[str, ComponentSpec] = {}
        for name in records:
            try:
                specs.update(self._build_specs(_Plan(records), only=[name]))
            except (DeploymentError, OSError, ControlPlaneUnavailable) as exc:
                self._boot_errors[name] = (records[name].version, str(exc))
                self.log.error("cannot restore component %s: %s", name, exc)
        with self._lock:
            for name, spec in specs.items():
                spec.bootstrap = False
                self.services[name] = ComponentService(spec, self._host())
        try:
            order = _topological(specs)
        except DeploymentFailure:
            order = sorted(specs)
        for name in order:
            self.services[name].start()
        self._send_status()

    def _start_ipc_server(self) -> None:
        if not self._start_ipc:
            return
        try:
            from edgekit.local.ipc.server import IpcServer
        except ImportError as exc:
            self.log.warning("IPC server not available (%s); components cannot use IPC", exc)
            return
        path = self.layout.socket_path
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        try:
            self._ipc_server = IpcServer(str(path), self)
            self._ipc_server.start()
            self.log.info("IPC server listening on %s", path)
        except Exception as exc:  # components without IPC must still run
            self._ipc_server = None
            self.log.error("IPC server failed to start on %s: %r", path, exc)

    # --- status reports --------------------------------------------------------------------

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

    # --- deployments -----------------------------------------------------------------------

    def _poll_loop(self) -> None:
        next_groups = 0.0
        while not self._stopping.is_set():
            try:
                if time.monotonic() >= next_groups:
                    groups = self.cloud.thing_groups()
                    if groups is None:
                        # Keep the groups we knew: a lost IoT registry must not uninstall.
                        self._warn_once(
                            "thing",
                            f"AWS IoT does not know the thing {self.thing_name}; "
                            "register it (`edgekit local device add`) to receive group deployments",
                        )
                    elif groups != self.groups:
                        self.groups = groups
                        self._report_event.set()  # the control plane lists devices by group
                    next_groups = time.monotonic() + self.group_refresh
                if not self._status_ok:
                    self._send_status()
                self._flush_unreported()
                docs = self.cloud.deployments(self.groups)
                self._handle(docs)
            except ControlPlaneUnavailable as exc:
                self._warn_once("poll", f"cannot poll for deployments: {exc}")
            except _Interrupted:
                return
            except Exception as exc:  # keep polling whatever one deployment did
                self.log.exception("unexpected error while handling deployments: %r", exc)
            self._stopping.wait(self.poll)

    def _handle(self, docs: list[dict[str, Any]]) -> None:
        with self._apply_lock:
            by_target = {d["targetArn"]: d for d in docs if d.get("targetArn")}
            pending = self.state.pending
            if (
                pending
                and by_target.get(pending["targetArn"], {}).get("deploymentId")
                != pending["deploymentId"]
            ):
                self._finish(
                    pending["deploymentId"],
                    pending["targetArn"],
                    "FAILED",
                    "the device runtime stopped during this deployment and it is no longer the "
                    "latest deployment for its target",
                    ["DEPLOYMENT_FAILURE", "DEPLOYMENT_INTERRUPTED"],
                    [],
                    "FAILED_NO_STATE_CHANGE",
                )
            # Leaving a thing group removes that group's components, as on Greengrass.
            for arn in list(self.state.targets):
                if ":thinggroup/" in arn and arn.rsplit("/", 1)[1] not in self.groups:
                    self._apply_group_removal(arn)
            new = [
                d
                for d in docs
                if d.get("deploymentId")
                and self.state.handled.get(d["targetArn"]) != d["deploymentId"]
            ]
            new.sort(key=lambda d: float(d.get("creationTimestamp") or 0))
            for doc in new:
                if self._stopping.is_set():
                    raise _Interrupted()
                self._apply(doc)

    def _put(self, deployment_id: str, body: dict[str, Any]) -> bool:
        try:
            self.cloud.update_deployment(deployment_id, body)
            return True
        except ControlPlaneUnavailable as exc:
            if exc.status in (400, 404):  # refused for good (e.g. deployment deleted): drop it
                self.log.error("control plane refused the status of %s: %s", deployment_id, exc)
                return True
            self._warn_once("put", f"cannot report deployment {deployment_id}: {exc}")
            return False

    def _flush_unreported(self) -> None:
        for deployment_id, body in list(self.state.unreported.items()):
            if self._put(deployment_id, body):
                with self._lock:
                    self.state.unreported.pop(deployment_id, None)
                    self._save()

    def _save(self) -> None:
        with self._lock:
            save_state(self.layout.state_file, self.state)

    def _finish(
        self,
        deployment_id: str,
        target: str,
        status: str,
        reason: str,
        error_stack: list[str],
        error_types: list[str],
        detailed: str,
    ) -> None:
        """Record the outcome (saved first, so a crash cannot lose it), then report it."""
        body = {
            "executionStatus": status,
            "reason": reason,
            "errorStack": error_stack,
            "errorTypes": error_types,
            "detailedDeploymentStatus": detailed,
        }
        with self._lock:
            self.state.handled[target] = deployment_id
            if self.state.pending and self.state.pending.get("deploymentId") == deployment_id:
                self.state.pending = None
            self.state.unreported[deployment_id] = body
            self._save()
        self._send_status()
        log = self.log.info if status == "SUCCEEDED" else self.log.error
        log("deployment %s %s%s", deployment_id, status, f": {reason}" if reason else "")
        if self._put(deployment_id, body):
            with self._lock:
                self.state.unreported.pop(deployment_id, None)
                self._save()

    def _roots(self, targets: dict[str, dict[str, Any]]) -> dict[str, str]:
        """Root components over all targets; the thing's own deployment wins a conflict."""
        roots: dict[str, str] = {}
        thing_arn = self.cloud.thing_arn
        for _arn, doc in sorted(targets.items(), key=lambda kv: (kv[0] == thing_arn, kv[0])):
            for name, comp in (doc.get("components") or {}).items():
                version = (comp or {}).get("componentVersion")
                if not version:
                    raise DeploymentFailure(
                        f"deployment {doc.get('deploymentId')}: component {name} has no "
                        "componentVersion",
                        codes=["COMPONENT_METADATA_NOT_VALID_IN_DEPLOYMENT"],
                        types=["REQUEST_ERROR"],
                    )
                roots[name] = str(version)
        return roots

    def _plan(
        self, targets: dict[str, dict[str, Any]], updates: dict[str, dict[str, Any]]
    ) -> _Plan:
        """Resolve versions and configuration, fetch recipes and artifacts; changes nothing."""
        roots = self._roots(targets)
        installed = {n: r.version for n, r in self.state.components.items()}
        recipes, provided = resolve(roots, self._recipe_for, self.cloud.versions, installed)
        records: dict[str, ComponentRecord] = {}
        for name, recipe in recipes.items():
            current = self.state.components.get(name)
            config = resolve_configuration(
                None if current is None else current.configuration,
                recipe.default_configuration,
                updates.get(name),
                name,
            )
            records[name] = ComponentRecord(recipe.version, config, name in roots)
        for name, version in provided.items():
            current = self.state.components.get(name)
            config = resolve_configuration(
                None if current is None else current.configuration, None, updates.get(name), name
            )
            records[name] = ComponentRecord(version, config, name in roots, provided=True)
        plan = _Plan(records)
        plan.specs = self._build_specs(plan)
        _topological(plan.specs)
        for spec in plan.specs.values():
            prepare_artifacts(
                spec.recipe,
                spec.paths.artifacts,
                spec.paths.decompressed,
                lambda recipe, art: self.cloud.artifact_url(recipe.name, recipe.version, art.uri),
            )
        return plan

    def _recipe_for(self, name: str, version: str) -> ResolvedRecipe:
        key = (name, version)
        cached = self._recipes.get(key)
        if cached is not None:
            return cached
        import json

        path = self.layout.recipe_file(name, version)
        try:
            raw = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            raw = self.cloud.recipe(name, version)
            from edgekit.local.device.store import write_json_atomic

            write_json_atomic(path, raw)
        recipe = resolve_recipe(raw, self.platform)
        if recipe.name != name or recipe.version != version:
            raise DeploymentFailure(
                f"the control plane returned the recipe of {recipe.name} {recipe.version} "
                f"for {name} {version}",
                codes=["RECIPE_METADATA_PARSE_ERROR"],
                types=["COMPONENT_RECIPE_ERROR"],
            )
        self._recipes[key] = recipe
        return recipe

    def _paths(self, name: str, version: str) -> ComponentPaths:
        return ComponentPaths(
            artifacts=self.layout.artifacts(name, version),
            decompressed=self.layout.unarchived(name, version),
            work=self.layout.work(name),
        )

    def _build_specs(self, plan: _Plan, only: list[str] | None = None) -> dict[str, ComponentSpec]:
        """Interpolated lifecycles for the non-provided components of ``plan``."""
        records = plan.records
        specs: dict[str, ComponentSpec] = {}
        for name in only or list(records):
            record = records[name]
            if record.provided:
                continue
            recipe = self._recipe_for(name, record.version)
            direct = [name] + [
                d for d in recipe.dependencies if d in records and not records[d].provided
            ]
            ctx = Context(
                component=name,
                paths={n: self._paths(n, records[n].version) for n in direct},
                configurations={n: records[n].configuration for n in direct},
                root_path=self.layout.root,
                thing_name=self.thing_name,
            )
            unresolved: list[str] = []

            def interp(text: str, ctx: Context = ctx, unresolved: list[str] = unresolved) -> str:
                return interpolate(text, ctx, unresolved.append)

            steps: dict[str, Step | None] = {}
            for step_name in STEP_KEYS:
                if step_name == "setenv":
                    continue
                step = recipe.step(step_name)
                steps[step_name] = (
                    None
                    if step is None
                    else Step(
                        script=interp(step.script),
                        timeout=step.timeout,
                        setenv={k: interp(v) for k, v in step.setenv.items()},
                        skipif=None if step.skipif is None else interp(step.skipif),
                        requires_privilege=step.requires_privilege,
                    )
                )
            if unresolved:
                self.log.info(
                    "%s: recipe variables left as written: %s",
                    name,
                    "; ".join(sorted(set(unresolved))),
                )
            specs[name] = ComponentSpec(
                name=name,
                version=record.version,
                root=record.root,
                recipe=recipe,
                configuration=copy.deepcopy(record.configuration),
                dependencies={
                    d.name: d.type for d in recipe.dependencies.values() if not is_provided(d.name)
                },
                steps=steps,
                setenv={k: interp(v) for k, v in recipe.global_setenv.items()},
                paths=ctx.paths[name],
                log_file=self.layout.component_log(name),
            )
        return specs

    def _apply(self, doc: dict[str, Any]) -> None:
        deployment_id = str(doc["deploymentId"])
        target = str(doc["targetArn"])
        policies = doc.get("deploymentPolicies") or {}
        policy = str(policies.get("failureHandlingPolicy") or "ROLLBACK").upper()
        self.log.info(
            "deployment %s (%s) for %s: %s",
            deployment_id,
            doc.get("deploymentName", ""),
            target,
            ", ".join(
                f"{n} {c.get('componentVersion')}" for n, c in (doc.get("components") or {}).items()
            )
            or "no components",
        )
        resuming = bool(
            self.state.pending and self.state.pending.get("deploymentId") == deployment_id
        )
        if not resuming:
            self._put(deployment_id, {"executionStatus": "QUEUED"})
        self._put(deployment_id, {"executionStatus": "IN_PROGRESS"})
        new_targets = {**self.state.targets, target: doc}
        updates = {
            name: comp.get("configurationUpdate") or {}
            for name, comp in (doc.get("components") or {}).items()
        }
        try:
            plan = self._plan(new_targets, updates)
        except DeploymentFailure as failure:
            self._finish(
                deployment_id,
                target,
                "FAILED",
                str(failure),
                failure.error_stack,
                failure.types,
                "FAILED_NO_STATE_CHANGE",
            )
            return
        except ControlPlaneUnavailable:
            raise  # not this deployment's fault: try again at the next poll
        except (EdgekitError, OSError, ValueError) as exc:
            code = "IO_ERROR" if isinstance(exc, OSError) else "COMPONENT_PACKAGE_LOADING_ERROR"
            self._finish(
                deployment_id,
                target,
                "FAILED",
                f"{type(exc).__name__}: {exc}",
                ["DEPLOYMENT_FAILURE", code],
                [],
                "FAILED_NO_STATE_CHANGE",
            )
            return
        previous = self.state.copy()
        with self._lock:
            self.state.pending = {"deploymentId": deployment_id, "targetArn": target}
            self._save()
        try:
            changed = self._switch(plan)
            self._await(plan, changed)
        except DeploymentFailure as failure:
            self._fail_and_recover(deployment_id, target, doc, plan, previous, policy, failure)
            return
        except (OSError, ValueError) as exc:
            failure = DeploymentFailure(
                f"the device could not apply the deployment: {type(exc).__name__}: {exc}",
                codes=["IO_ERROR"],
                types=["DEVICE_ERROR"],
            )
            self._fail_and_recover(deployment_id, target, doc, plan, previous, policy, failure)
            return
        with self._lock:
            for name, record in plan.records.items():
                svc = self.services.get(name)
                if svc is not None:  # IPC updates made while the deployment ran
                    record.configuration = copy.deepcopy(svc.spec.configuration)
            self.state.targets = new_targets
            self.state.components = plan.records
            self._save()
        self._cleanup_versions()
        self._finish(deployment_id, target, "SUCCEEDED", "", [], [], "SUCCESSFUL")

    def _fail_and_recover(
        self,
        deployment_id: str,
        target: str,
        doc: dict[str, Any],
        plan: _Plan,
        previous: DeviceState,
        policy: str,
        failure: DeploymentFailure,
    ) -> None:
        reason = str(failure)
        if policy == "DO_NOTHING":
            with self._lock:
                self.state.targets = {**self.state.targets, target: doc}
                self.state.components = plan.records
                self._save()
            self._finish(
                deployment_id,
                target,
                "FAILED",
                reason,
                failure.error_stack,
                failure.types,
                "FAILED_ROLLBACK_NOT_REQUESTED",
            )
            return
        self.log.warning("deployment %s failed, rolling back: %s", deployment_id, reason)
        detailed = "FAILED_ROLLBACK_COMPLETE"
        try:
            rollback = _Plan({n: copy.deepcopy(r) for n, r in previous.components.items()})
            rollback.specs = self._build_specs(rollback)
            for spec in rollback.specs.values():
                spec.bootstrap = False
            changed = self._switch(rollback, fresh_errors=True)
            self._await(rollback, changed)
            reason += "; rolled back to the previous components"
        except (DeploymentFailure, OSError, ValueError) as second:
            detailed = "FAILED_UNABLE_TO_ROLLBACK"
            reason += f"; rollback failed too: {second}"
        with self._lock:
            self.state.components = previous.components
            self.state.targets = previous.targets
            self._save()
        self._finish(
            deployment_id, target, "FAILED", reason, failure.error_stack, failure.types, detailed
        )

    def _apply_group_removal(self, arn: str) -> None:
        """The thing left a group: keep only what the remaining targets need."""
        self.log.info(
            "thing %s is no longer in %s; removing that group's components", self.thing_name, arn
        )
        targets = {a: d for a, d in self.state.targets.items() if a != arn}
        try:
            plan = self._plan(targets, {})
            changed = self._switch(plan)
            self._await(plan, changed)
        except DeploymentFailure as exc:
            self.log.error("removing the components of %s failed: %s", arn, exc)
            return
        with self._lock:
            self.state.targets = targets
            self.state.handled.pop(arn, None)
            self.state.components = plan.records
            self._save()
        self._cleanup_versions()

    def _switch(self, plan: _Plan, *, fresh_errors: bool = False) -> set[str]:
        """Make the running services match ``plan``; returns the names that (re)started."""
        if self._stopping.is_set():
            raise _Interrupted()
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
        order = _topological(new_specs)
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
            order = [n for n in reversed(_topological(specs)) if n in services]
        except DeploymentFailure:
            order = sorted(services)
        for name in order:
            services[name].stop()

    def _await(self, plan: _Plan, changed: set[str]) -> None:
        """Wait until every component of ``plan`` is RUNNING (for ``settle`` s) or FINISHED."""
        deadline = time.monotonic() + self.deployment_timeout
        names = sorted(plan.specs)
        with self.condition:
            while True:
                if self._stopping.is_set():
                    raise _Interrupted()
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

    def _live_records(self) -> dict[str, ComponentRecord]:
        """The committed records with each running component's current configuration."""
        records = {n: copy.deepcopy(r) for n, r in self.state.components.items()}
        for name, svc in dict(self.services).items():
            if name in records and records[name].version == svc.spec.version:
                records[name].configuration = copy.deepcopy(svc.spec.configuration)
        return records

    def _reconfigure(self) -> None:
        """After an IPC configuration update: restart what interpolates the changed values."""
        with self._apply_lock:
            plan = _Plan(self._live_records())
            try:
                plan.specs = self._build_specs(plan)
                self._switch(plan)
            except (DeploymentFailure, _Interrupted, OSError) as exc:
                self.log.error("applying a configuration update failed: %s", exc)

    def _cleanup_versions(self) -> None:
        """Delete artifacts of component versions no longer in use."""
        keep = {(n, r.version) for n, r in self.state.components.items()}
        base = self.layout.packages / "artifacts"
        if not base.is_dir():
            return
        for comp_dir in base.iterdir():
            for version_dir in comp_dir.iterdir() if comp_dir.is_dir() else []:
                if (comp_dir.name, version_dir.name) not in keep:
                    remove_version(
                        version_dir, self.layout.unarchived(comp_dir.name, version_dir.name)
                    )
                    self.log.info("removed artifacts of %s %s", comp_dir.name, version_dir.name)
            with contextlib.suppress(OSError):
                comp_dir.rmdir()

    # --- for tests and tools ---------------------------------------------------------------

    def wait_for(self, predicate: Callable[[DeviceRuntime], bool], timeout: float = 30.0) -> bool:
        """Wait until ``predicate(self)`` holds (re-checked on every state change)."""
        deadline = time.monotonic() + timeout
        with self.condition:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.condition.wait(min(remaining, 0.1))
        return True

    def states(self) -> dict[str, str]:
        return {n: s.state for n, s in dict(self.services).items()}


class _HostAdapter:
    """The ServiceHost view of a runtime (keeps ``runtime.log`` a Logger)."""

    def __init__(self, runtime: DeviceRuntime) -> None:
        self._rt = runtime
        self.condition = runtime.condition

    def component_env(self, service: ComponentService) -> dict[str, str]:
        return self._rt.component_env(service)

    def service_state(self, name: str) -> str | None:
        return self._rt.service_state(name)

    def state_changed(self, service: ComponentService) -> None:
        self._rt.state_changed(service)

    def log(self, level: str, message: str) -> None:
        self._rt._log(level, message)


def remove_root(root: Path) -> None:
    """Delete a device root, read-only artifact files included."""
    if root.exists():
        shutil.rmtree(root, ignore_errors=True)
