"""The few Greengrass IPC calls the inference app makes, on the official awsiot client.

``GreengrassCoreIPCClientV2`` connects with the nucleus' socket and token from
the environment (``AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT``,
``SVCUID``). Every call waits at most ``timeout`` seconds, so a stalled nucleus
shows up as an error the caller retries instead of a hung component.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0


class GreengrassIpc:
    """Configuration, state and PublishToIoTCore for this component."""

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._client: Any = None
        self._subscription: Any = None

    def _connected(self) -> Any:
        with self._lock:
            if self._client is None:
                from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

                self._client = GreengrassCoreIPCClientV2()
            return self._client

    def reconnect(self) -> None:
        """Drop the connection; the next call opens a new one (after a nucleus restart)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                client.close(executor_wait=False)
            except Exception as exc:  # closing a broken connection may fail; it is gone anyway
                log.debug("closing the IPC client failed: %r", exc)

    def get_configuration(self, key_path: list[str] | None = None) -> Any:
        response = (
            self._connected()
            .get_configuration_async(key_path=list(key_path or []))
            .result(self.timeout)
        )
        return response.value

    def subscribe_to_configuration_update(self, on_change: Callable[[list[str]], None]) -> None:
        """Call ``on_change(key_path)`` for every change of this component's configuration."""

        def event(ev: Any) -> None:
            update = getattr(ev, "configuration_update_event", None)
            on_change(list(getattr(update, "key_path", None) or []))

        def error(exc: Exception) -> bool:
            log.warning("configuration update stream error: %r", exc)
            return False  # keep the stream open

        future, operation = self._connected().subscribe_to_configuration_update_async(
            key_path=[], on_stream_event=event, on_stream_error=error
        )
        future.result(self.timeout)
        self._subscription = operation

    def publish_to_iot_core(self, topic: str, payload: bytes, *, qos: int = 1) -> None:
        """PublishToIoTCore; QoS 1 (AT_LEAST_ONCE) unless ``qos=0``."""
        from awsiot.greengrasscoreipc.model import QOS

        self._connected().publish_to_iot_core_async(
            topic_name=topic,
            qos=QOS.AT_LEAST_ONCE if qos else QOS.AT_MOST_ONCE,
            payload=payload,
        ).result(self.timeout)

    def update_state(self, state: str) -> None:
        """Report RUNNING or ERRORED to the nucleus."""
        from awsiot.greengrasscoreipc.model import ReportedLifecycleState

        value = {
            "RUNNING": ReportedLifecycleState.RUNNING,
            "ERRORED": ReportedLifecycleState.ERRORED,
        }[state.upper()]
        self._connected().update_state_async(state=value).result(self.timeout)

    def close(self) -> None:
        if self._subscription is not None:
            try:
                self._subscription.close()
            except Exception as exc:
                log.debug("closing the configuration subscription failed: %r", exc)
            self._subscription = None
        self.reconnect()
