"""The device runtime: a Greengrass nucleus for one thing on this machine.

It polls the control plane for the deployments that target its thing and its
thing groups, resolves and downloads the components, runs their lifecycles,
reports component states, and rolls a failed deployment back. Everything it
has applied is saved atomically under its root, so a restarted runtime brings
back the same components, and a runtime killed during a deployment comes back
with the previous set running and applies that deployment again.

It also hosts the IPC server (``edgekit.local.ipc``): it implements
``edgekit.local.ipc.host.IpcHost`` (tokens, configuration, state updates).

The runtime's parts live in one module each: `planning.Planner` works out what a
deployment needs (versions, configuration, recipes, artifacts, lifecycles) and holds
no runtime state; the runtime class itself is assembled from one mixin per purpose
over the shared device state: `supervision` (running the components), `deployments`
(polling, applying, rolling back), `status` (reports to the control plane) and
`ipc_host` (the IPC server's host). This module owns the runtime's own lifecycle: its
root lock, its log, booting the saved components and stopping.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from edgekit.errors import DeploymentError, LocalBackendError
from edgekit.local.device.control import ControlPlane, ControlPlaneUnavailable
from edgekit.local.device.deployments import DeploymentsMixin
from edgekit.local.device.failures import DeploymentFailure
from edgekit.local.device.ipc_host import IpcHostMixin
from edgekit.local.device.lifecycle import ComponentService, ComponentSpec
from edgekit.local.device.paths import DeviceLayout
from edgekit.local.device.planning import Plan, Planner, topological
from edgekit.local.device.recipe import device_platform
from edgekit.local.device.status import StatusMixin
from edgekit.local.device.store import DeviceState, load_state, save_state
from edgekit.local.device.supervision import SupervisionMixin, kill_orphans
from edgekit.local.ipc.host import ConfigListener
from edgekit.local.ipc.server import IpcServer


class DeviceRuntime(IpcHostMixin, StatusMixin, DeploymentsMixin, SupervisionMixin):
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
        self._boot_errors: dict[str, tuple[str, str]] = {}
        self._lock = threading.RLock()  # state, services dict, tokens
        self._apply_lock = threading.Lock()  # one deployment / reconfiguration at a time
        self._stopping = threading.Event()
        self._report_event = threading.Event()
        self._threads: list[threading.Thread] = []
        self._status_ok = False
        self._last_error: dict[str, float] = {}
        self.log = self._make_logger()
        self.planner = Planner(thing, self.layout, self.cloud, self.platform, self.log)

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
            try:
                self._ipc_server.stop()
            except Exception as exc:  # the components are stopped; stopping goes on
                self.log.warning("the IPC server did not stop cleanly: %r", exc)
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
        kill_orphans(self.layout.root, self.log)
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
                specs.update(self.planner.build_specs(Plan(records), only=[name]))
            except (DeploymentError, OSError, ControlPlaneUnavailable) as exc:
                self._boot_errors[name] = (records[name].version, str(exc))
                self.log.error("cannot restore component %s: %s", name, exc)
        with self._lock:
            for name, spec in specs.items():
                spec.bootstrap = False
                self.services[name] = ComponentService(spec, self._host())
        try:
            order = topological(specs)
        except DeploymentFailure:
            order = sorted(specs)
        for name in order:
            self.services[name].start()
        self._send_status()

    def _start_ipc_server(self) -> None:
        if not self._start_ipc:
            return
        path = self.layout.socket_path
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        try:
            self._ipc_server = IpcServer(str(path), self, spool_dir=self.layout.root / "spool")
            self._ipc_server.start()
            self.log.info("IPC server listening on %s", path)
        except Exception as exc:  # components without IPC must still run
            self._ipc_server = None
            self.log.error("IPC server failed to start on %s: %r", path, exc)

    def _save(self) -> None:
        with self._lock:
            save_state(self.layout.state_file, self.state)

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
