"""Results from the local backend's MQTT broker (paho-mqtt, MQTT 3.1.1, plain TCP on loopback)."""

from __future__ import annotations

import threading
from typing import Any

from edgekit.errors import ConfigurationError
from edgekit.results.subscriber import (
    DEFAULT_TIMEOUT,
    Message,
    MqttError,
    OnMessage,
    SubscriberBase,
    client_id,
)

KEEPALIVE_S = 30


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``"127.0.0.1:1883"`` -> ``("127.0.0.1", 1883)``; ConfigurationError naming the value."""
    host, sep, port = endpoint.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(
            f"MQTT endpoint {endpoint!r} is not HOST:PORT (EDGEKIT_MQTT_ENDPOINT or "
            "endpoints.json 'mqtt'); run `edgekit local env` to see the running broker"
        )
    return host, int(port)


class PahoSubscriber(SubscriberBase):
    """A paho-mqtt client on its own network thread; re-subscribes after a reconnect."""

    def __init__(self, endpoint: str, *, client_id_prefix: str = "edgekit-results") -> None:
        super().__init__()
        self.endpoint = endpoint
        self.host, self.port = parse_endpoint(endpoint)
        self._client_id = client_id(client_id_prefix)
        self._client: Any = None
        self._cond = threading.Condition()
        self._connack: Any = None
        self._acks: dict[int, Any] = {}

    # --- paho callbacks (network thread) ----------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._cond:
            self._connack = reason
            self._cond.notify_all()
        if not reason.is_failure:
            with self._lock:
                topics = list(self._subscriptions)
            for topic in topics:  # a clean session forgets subscriptions; make them again
                client.subscribe(topic, qos=1)

    def _on_ack(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        with self._cond:
            self._acks[mid] = codes
            self._cond.notify_all()

    # --- public API ---------------------------------------------------------------------------

    def connect(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        import paho.mqtt.client as paho

        if self._client is not None:
            return
        client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=paho.MQTTv311,
            clean_session=True,
        )
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_ack
        client.on_unsubscribe = self._on_ack
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        try:
            client.connect(self.host, self.port, keepalive=KEEPALIVE_S)
        except OSError as exc:
            raise MqttError(
                f"cannot reach the MQTT broker at {self.endpoint} ({exc}); is it running? "
                "Run `edgekit local status` (or `edgekit local up`)"
            ) from exc
        client.loop_start()
        self._client = client
        with self._cond:
            answered = self._cond.wait_for(lambda: self._connack is not None, timeout)
            reason = self._connack
        if not answered or reason.is_failure:
            self.close()
            why = f"it refused: {reason}" if answered else f"no CONNACK within {timeout:g} s"
            raise MqttError(f"the MQTT broker at {self.endpoint} did not accept us ({why})")

    def _require_client(self) -> Any:
        if self._client is None:
            raise MqttError(f"not connected to {self.endpoint}; call connect() or use `with`")
        return self._client

    def _wait_ack(self, mid: int, what: str, timeout: float) -> Any:
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._acks, timeout):
                raise MqttError(f"{what}: no acknowledgement from {self.endpoint} in {timeout:g} s")
            return self._acks.pop(mid)

    def subscribe(
        self, topic_filter: str, on_message: OnMessage, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        import paho.mqtt.client as paho

        client = self._require_client()

        def deliver(_client: Any, _userdata: Any, msg: Any) -> None:
            on_message(Message(topic=msg.topic, payload=bytes(msg.payload)))

        try:
            client.message_callback_add(topic_filter, deliver)
            rc, mid = client.subscribe(topic_filter, qos=1)
        except ValueError as exc:
            raise MqttError(f"topic filter {topic_filter!r} is not valid MQTT: {exc}") from exc
        if rc != paho.MQTT_ERR_SUCCESS:
            raise MqttError(f"subscribe {topic_filter!r} on {self.endpoint} failed: {rc}")
        with self._lock:
            self._subscriptions[topic_filter] = on_message
        codes = self._wait_ack(mid, f"subscribe {topic_filter!r}", timeout)
        if any(code.is_failure for code in codes):
            with self._lock:
                self._subscriptions.pop(topic_filter, None)
            client.message_callback_remove(topic_filter)
            raise MqttError(f"the broker at {self.endpoint} refused {topic_filter!r}: {codes}")

    def unsubscribe(self, topic_filter: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        client = self._require_client()
        with self._lock:
            self._subscriptions.pop(topic_filter, None)
        client.message_callback_remove(topic_filter)
        _rc, mid = client.unsubscribe(topic_filter)
        self._wait_ack(mid, f"unsubscribe {topic_filter!r}", timeout)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        client.disconnect()
        client.loop_stop()


__all__ = ["PahoSubscriber", "parse_endpoint"]
