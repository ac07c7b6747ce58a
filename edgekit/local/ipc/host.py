"""What the IPC server needs from the device runtime that hosts it.

The device runtime (``edgekit.local.device``) owns components, tokens and
configuration; the IPC server (``edgekit.local.ipc``) owns the socket and the
protocol. This protocol is the only contract between them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from edgekit.local.ipc.secrets import SecretManager

# Called with (component_name, changed key path) whenever a component's configuration changes.
ConfigListener = Callable[[str, list[str]], None]


class IpcHost(Protocol):
    thing_name: str
    region: str
    mqtt_endpoint: str | None
    """``host:port`` of the MQTT broker bridged by PublishToIoTCore/SubscribeToIoTCore."""

    def authenticate(self, token: str) -> str | None:
        """Return the component name whose SVCUID is ``token``, or None."""

    def access_control(self, component: str) -> dict[str, Any]:
        """The component's ``accessControl`` configuration (empty dict if none)."""

    def get_configuration(self, component: str, key_path: list[str]) -> Any:
        """Value at ``key_path`` of ``component``'s configuration; KeyError if absent.

        ``accessControl`` is part of the configuration, as on the nucleus. Values must be
        JSON-serializable; return a copy (the server may send it after other updates).
        """

    def update_configuration(
        self, component: str, key_path: list[str], value: Any, timestamp: float
    ) -> bool | None:
        """Merge ``value`` at ``key_path``; stale timestamps are ignored as on Greengrass.

        Return False when the update was ignored as stale: the IPC server then answers
        FailedUpdateConditionCheckError, as the nucleus does. None or True mean applied.
        Raise KeyError for an unknown component, ValueError for a value that cannot merge.
        """

    def add_configuration_listener(self, listener: ConfigListener) -> Callable[[], None]:
        """Register a listener; returns a function that removes it.

        The IpcServer registers one at start. Call it (from any thread) for every change,
        including those made through IPC UpdateConfiguration; the server does not report
        its own updates a second time. Alternatively call
        ``IpcServer.notify_configuration_changed``, but not both for the same change.
        """

    def update_state(self, component: str, state: str) -> None:
        """A component reports RUNNING or ERRORED through IPC UpdateState."""

    def component_details(self, component: str) -> dict[str, Any] | None:
        """``{"componentName", "version", "state", "configuration"}`` or None if unknown."""

    def secret_manager(self) -> SecretManager | None:
        """The device's ``aws.greengrass.SecretManager`` when it is deployed, else None.

        IPC GetSecretValue answers from it; without it the operation fails with a
        ServiceError that says to deploy the component.
        """
