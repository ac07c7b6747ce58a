"""The one interface both MQTT transports implement.

A notebook never talks to paho or awscrt directly: it gets a
`ResultsSubscriber` for its backend (see `edgekit.results.transports`) and
subscribes a callback. Callbacks run on the transport's network thread, so they
must be quick (put the message on a queue); `collect` and `LiveCollector` do that.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, runtime_checkable

from edgekit.errors import EdgekitError

DEFAULT_TIMEOUT = 10.0


class MqttError(EdgekitError):
    """An MQTT broker (local or AWS IoT Core) refused, dropped or never answered us."""


@dataclass(frozen=True)
class Message:
    """One MQTT message as received: topic, raw payload, and when it arrived (time.time())."""

    topic: str
    payload: bytes
    received_at: float = field(default_factory=time.time)


OnMessage = Callable[[Message], None]


@runtime_checkable
class ResultsSubscriber(Protocol):
    """Subscribe to MQTT topics on one broker. Use as a context manager (connects, closes)."""

    endpoint: str

    def connect(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Open the connection; MqttError if the broker does not accept it within ``timeout``."""
        ...

    def subscribe(
        self, topic_filter: str, on_message: OnMessage, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        """Deliver each message matching ``topic_filter`` (``+``/``#`` wildcards) to ``on_message``.

        Returns once the broker acknowledged the subscription (QoS 1).
        """
        ...

    def unsubscribe(self, topic_filter: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Stop delivering ``topic_filter``."""
        ...

    def close(self) -> None:
        """Disconnect; safe to call twice."""
        ...

    def __enter__(self) -> ResultsSubscriber: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class SubscriberBase:
    """Shared bookkeeping: the subscriptions (re-made after a reconnect) and the context manager."""

    endpoint: str

    def __init__(self) -> None:
        self._subscriptions: dict[str, OnMessage] = {}
        self._lock = threading.Lock()

    def connect(self, timeout: float = DEFAULT_TIMEOUT) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __enter__(self) -> SubscriberBase:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.endpoint!r})"


def client_id(prefix: str = "edgekit-results") -> str:
    """A unique MQTT client id: two notebooks with the same id would kick each other off."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


__all__ = [
    "DEFAULT_TIMEOUT",
    "Message",
    "MqttError",
    "OnMessage",
    "ResultsSubscriber",
    "SubscriberBase",
    "client_id",
]
