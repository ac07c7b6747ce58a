"""The device runtime as the IPC server's host (`edgekit.local.ipc.host.IpcHost`).

Owns component tokens (SVCUID), the configuration reads and updates components
make over IPC (stale updates refused as on Greengrass), configuration listeners,
UpdateState, the component details GetComponentDetails returns, the device's
``aws.greengrass.SecretManager`` (`edgekit.local.ipc.secrets.SecretManager`, configured
from the deployed component's configuration whenever the services switch) and the
deployment's component update policy (PreComponentUpdateEvent / deferrals /
PostComponentUpdateEvent around an update, `edgekit.local.ipc.component_updates`).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from typing import Any

from edgekit.local.device import lifecycle as lc
from edgekit.local.device.configuration import (
    MAX_CONFIGURATION_DEPTH,
    changed_paths,
    deep_merge,
    get_path,
    nesting_depth,
    set_path,
)
from edgekit.local.device.control import ControlPlane
from edgekit.local.device.failures import DeploymentFailure
from edgekit.local.device.lifecycle import ComponentService
from edgekit.local.device.paths import DeviceLayout
from edgekit.local.device.planning import Plan
from edgekit.local.device.status import CORE_VERSION, NUCLEUS
from edgekit.local.device.store import DeviceState
from edgekit.local.device.supervision import Interrupted
from edgekit.local.ipc.component_updates import ComponentUpdates, UpdatePolicy
from edgekit.local.ipc.host import ConfigListener
from edgekit.local.ipc.modeled_errors import InvalidArgumentsError
from edgekit.local.ipc.secrets import SECRET_MANAGER, SecretManager, SecretSyncError


class IpcHostMixin:
    """The `IpcHost` part of `DeviceRuntime`."""

    services: dict[str, ComponentService]
    state: DeviceState
    layout: DeviceLayout
    cloud: ControlPlane
    region: str
    log: logging.Logger
    _ipc_server: Any
    _stopping: threading.Event
    _lock: threading.RLock
    _tokens: dict[str, str]
    _token_of: dict[str, str]
    _listeners: list[ConfigListener]
    _config_times: dict[tuple[str, tuple[str, ...]], float]

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
        depth = len(key_path) + nesting_depth(value)
        if depth > MAX_CONFIGURATION_DEPTH:
            raise InvalidArgumentsError(
                f"the configuration update of {component} would nest {depth} levels deep, more "
                f"than the {MAX_CONFIGURATION_DEPTH} the device accepts; flatten the value"
            )
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

    # --- aws.greengrass.SecretManager ------------------------------------------------------

    def _secretsmanager_client(self) -> Any:
        # boto3 holds some 35 MB for the runtime's whole life: it is imported only when a
        # device runs aws.greengrass.SecretManager and it reaches the cloud.
        from edgekit.local import boto

        return boto.client("secretsmanager", self.cloud.aws_endpoint, self.region)

    def _secret_manager(self) -> SecretManager:
        """The device's secret manager; a restarted device starts from its disk cache."""
        with self._lock:
            manager: SecretManager | None = getattr(self, "_secrets", None)
            if manager is not None:
                return manager
            manager = SecretManager(
                self.layout.root / "secrets" / "cache.json",
                self._secretsmanager_client,
                self._stopping,
                self.log,
            )
            self._secrets = manager
            record = self.state.components.get(SECRET_MANAGER)
            configuration = None if record is None else copy.deepcopy(record.configuration)
        if configuration is not None:  # outside the device lock: it may reach the cloud
            try:
                manager.configure(configuration, offline=True)
            except SecretSyncError as exc:
                self.log.error("%s could not start: %s", SECRET_MANAGER, exc)
        return manager

    def secret_manager(self) -> SecretManager | None:
        manager = self._secret_manager()
        return manager if manager.active else None

    def _apply_secret_manager(self, plan: Plan) -> None:
        """Configure the secret manager as ``plan`` deploys it (reads the secrets if changed)."""
        record = plan.records.get(SECRET_MANAGER)
        try:
            self._secret_manager().configure(None if record is None else record.configuration)
        except SecretSyncError as exc:
            raise DeploymentFailure(
                str(exc), codes=["COMPONENT_UPDATE_ERROR"], types=["USER_COMPONENT_ERROR"]
            ) from exc

    # --- component update policy (SubscribeToComponentUpdates / DeferComponentUpdate) -------

    def _component_updates(self) -> ComponentUpdates | None:
        router = getattr(self._ipc_server, "router", None)
        return None if router is None else router.component_updates

    @contextlib.contextmanager
    def _update_policy(self, deployment_id: str, doc: dict[str, Any]) -> Iterator[None]:
        """Around an update: notify subscribers and wait while they defer, then tell them
        it is over, as the nucleus does under ``componentUpdatePolicy`` NOTIFY_COMPONENTS."""
        policy = UpdatePolicy.of_deployment(doc)
        updates = self._component_updates()
        if updates is None or not policy.notify:
            yield
            return

        def deferred(component: str, recheck_ms: int, message: str) -> None:
            self.log.info(
                "deployment %s deferred by %s for %d ms%s",
                deployment_id,
                component,
                recheck_ms,
                f": {message}" if message else "",
            )

        if not updates.wait_until_safe(
            deployment_id, policy.timeout_s, self._stopping, on_defer=deferred
        ):
            raise Interrupted()
        try:
            yield
        finally:
            updates.post_update(deployment_id)
