"""`MemoryHost`: an in-memory `IpcHost`, for tests, benchmarks and trying IPC without a device.

The device runtime has its own host backed by its deployments; this one keeps
components in a dict. Configuration semantics follow the nucleus where the
IPC server can observe them: ``accessControl`` lives in the component's
configuration, UpdateConfiguration merges objects and replaces leaves, and an
update whose timestamp is older than the last one at the same key path is
refused (returns False, which the server reports as
FailedUpdateConditionCheckError).
"""

from __future__ import annotations

import copy
import secrets
import threading
from collections.abc import Callable
from typing import Any

from edgekit.local.ipc.host import ConfigListener
from edgekit.local.ipc.secrets import SecretManager


def _merge(into: dict[str, Any], value: dict[str, Any]) -> None:
    for key, v in value.items():
        if isinstance(v, dict) and isinstance(into.get(key), dict):
            _merge(into[key], v)
        else:
            into[key] = copy.deepcopy(v)


class MemoryHost:
    def __init__(
        self,
        thing_name: str = "edgekit-local-thing",
        region: str = "us-east-1",
        mqtt_endpoint: str | None = None,
    ) -> None:
        self.thing_name = thing_name
        self.region = region
        self.mqtt_endpoint = mqtt_endpoint
        self._lock = threading.RLock()
        self._tokens: dict[str, str] = {}
        self._components: dict[str, dict[str, Any]] = {}
        self._modtimes: dict[tuple[str, tuple[str, ...]], float] = {}
        self._listeners: list[ConfigListener] = []
        self.reported_states: list[tuple[str, str]] = []
        #: What `secret_manager` returns (GetSecretValue); None: not deployed.
        self.secrets: SecretManager | None = None

    def add_component(
        self,
        name: str,
        *,
        version: str = "1.0.0",
        configuration: dict[str, Any] | None = None,
        access_control: dict[str, Any] | None = None,
        state: str = "RUNNING",
        token: str | None = None,
    ) -> str:
        """Register a component; returns its SVCUID token."""
        config = copy.deepcopy(configuration or {})
        if access_control is not None:
            config["accessControl"] = copy.deepcopy(access_control)
        token = token or secrets.token_urlsafe(16)
        with self._lock:
            self._tokens[token] = name
            self._components[name] = {"version": version, "state": state, "configuration": config}
        return token

    # ---------------------------------------------------------------- IpcHost
    def authenticate(self, token: str) -> str | None:
        with self._lock:
            return self._tokens.get(token)

    def access_control(self, component: str) -> dict[str, Any]:
        with self._lock:
            entry = self._components.get(component)
            if entry is None:
                return {}
            acl = entry["configuration"].get("accessControl", {})
            return copy.deepcopy(acl) if isinstance(acl, dict) else {}

    def get_configuration(self, component: str, key_path: list[str]) -> Any:
        with self._lock:
            node: Any = self._components[component]["configuration"]
            for key in key_path:
                if not isinstance(node, dict):
                    raise KeyError(key)
                node = node[key]
            return copy.deepcopy(node)

    def update_configuration(
        self, component: str, key_path: list[str], value: Any, timestamp: float
    ) -> bool:
        with self._lock:
            config = self._components[component]["configuration"]
            stamp_key = (component, tuple(key_path))
            if timestamp < self._modtimes.get(stamp_key, float("-inf")):
                return False
            self._modtimes[stamp_key] = timestamp
            parent = config
            for key in key_path[:-1]:
                child = parent.get(key)
                if not isinstance(child, dict):
                    child = parent[key] = {}
                parent = child
            if not key_path:
                _merge(config, value)
            else:
                last = key_path[-1]
                if isinstance(value, dict) and isinstance(parent.get(last), dict):
                    _merge(parent[last], value)
                else:
                    parent[last] = copy.deepcopy(value)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(component, list(key_path))
        return True

    def add_configuration_listener(self, listener: ConfigListener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def update_state(self, component: str, state: str) -> None:
        with self._lock:
            self._components[component]["state"] = state
            self.reported_states.append((component, state))

    def component_details(self, component: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._components.get(component)
            if entry is None:
                return None
            return {
                "componentName": component,
                "version": entry["version"],
                "state": entry["state"],
                "configuration": copy.deepcopy(entry["configuration"]),
            }

    def secret_manager(self) -> SecretManager | None:
        return self.secrets
