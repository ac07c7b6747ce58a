"""The bridge from IPC's PublishToIoTCore/SubscribeToIoTCore to the local MQTT broker.

One paho-mqtt connection per IPC server (like the nucleus' single connection to
IoT Core), on paho's own network thread, reconnecting with a short exponential
back-off. IPC subscriptions are reference-counted per topic filter: the broker
sees one SUBSCRIBE per filter (at the highest QoS any subscriber asked for) and
every filter is subscribed again after a reconnect, so subscriptions survive a
broker restart.

Offline behaviour mirrors the nucleus' spooler defaults: a QoS 1 publish while
the broker is unreachable is queued (up to ``max_queued`` messages) and sent
after the reconnect; a QoS 0 publish while offline fails with an error instead
of vanishing silently. Subscribing while offline is recorded and takes effect on
the reconnect.

A message the broker refuses never blocks the queue. Over MQTT 3.1.1 a broker
refuses a PUBLISH by closing the connection (an oversize packet, a forbidden
topic), and paho would resend that same message first on every reconnect, for
ever. So when a connection is lost, the oldest unacknowledged QoS 1 message
gets a strike (everything before it was acknowledged); on the reconnect the
bridge takes paho's unacknowledged messages back (``drop_out_messages``) and
resends them in order, except one with ``max_publish_attempts`` strikes, which
is dropped, counted (`stats`) and logged with its topic. Like the nucleus'
``maxPublishRetry``, the bound trades a message for the device's connection.

Overlapping filters (``a/#`` and ``a/b`` both subscribed) may deliver a message
once per matching broker subscription, as MQTT 3.1.1 allows.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from edgekit.errors import LocalBackendError

log = logging.getLogger(__name__)

# (topic, payload, retain), called on paho's network thread.
MessageCallback = Callable[[str, bytes, bool], None]

# Connections a QoS 1 message may be blamed for losing before it is dropped.
DEFAULT_MAX_PUBLISH_ATTEMPTS = 3


class MqttBridgeError(LocalBackendError):
    """The MQTT broker refused or could not take a publish/subscribe."""


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise LocalBackendError(
            f"MQTT endpoint {endpoint!r} must be host:port (e.g. 127.0.0.1:1883); "
            "check EDGEKIT_MQTT_ENDPOINT or the device's --mqtt flag"
        )
    return host.strip("[]"), int(port)


@dataclass
class _Filter:
    qos: int = 0
    callbacks: dict[int, tuple[int, MessageCallback]] = field(default_factory=dict)
    acked: bool = False
    waiting: list[Future[None]] = field(default_factory=list)

    def wanted_qos(self) -> int:
        return max((q for q, _ in self.callbacks.values()), default=0)


@dataclass
class _Outgoing:
    """A QoS 1 message handed to paho and not yet acknowledged by the broker."""

    info: mqtt.MQTTMessageInfo
    topic: str
    payload: bytes
    qos: int
    retain: bool
    strikes: int = 0

    def acked(self) -> bool:
        # is_published() raises for a message queued while offline (rc NO_CONN); such a
        # message is resent, under a new info, on the reconnect.
        return self.info.rc == mqtt.MQTT_ERR_SUCCESS and self.info.is_published()


class MqttBridge:
    def __init__(
        self,
        endpoint: str,
        client_id: str,
        *,
        reconnect_min_delay: float = 0.25,
        reconnect_max_delay: float = 2.0,
        max_queued: int = 1000,
        keepalive: int = 30,
        max_publish_attempts: int = DEFAULT_MAX_PUBLISH_ATTEMPTS,
    ) -> None:
        if max_publish_attempts < 1:
            raise LocalBackendError(
                f"max_publish_attempts must be at least 1, not {max_publish_attempts}"
            )
        self.endpoint = endpoint
        self._host, self._port = parse_endpoint(endpoint)
        self._keepalive = keepalive
        self._lock = threading.RLock()
        self._filters: dict[str, _Filter] = {}
        self._pending: dict[int, list[str]] = {}  # SUBSCRIBE mid -> filters
        self._handles = itertools.count(1)
        self._handle_filter: dict[int, str] = {}
        self._connected = threading.Event()
        self._started = False
        self.reconnects = 0
        self._max_attempts = max_publish_attempts
        self._max_queued = max_queued
        # QoS 1 messages in the order paho sends them. Never held while calling into paho,
        # except from paho's own thread (on_connect), so paho's locks and this one cannot cross.
        self._out_lock = threading.Lock()
        self._unacked: deque[_Outgoing] = deque()
        # infos of messages a reconnect took back from paho before publish() could track them
        self._taken_back: set[int] = set()
        self.refusals = 0  # connections lost with a QoS 1 message unacknowledged
        self.dropped = 0  # messages dropped after max_publish_attempts refusals
        client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        client.reconnect_delay_set(reconnect_min_delay, reconnect_max_delay)  # type: ignore[arg-type]
        client.max_queued_messages_set(max_queued)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._client.connect_async(self._host, self._port, keepalive=self._keepalive)
        self._client.loop_start()

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()
        self._connected.clear()
        with self._lock:
            for f in self._filters.values():
                self._resolve(f, MqttBridgeError("the IPC server is stopping"))

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    # ---------------------------------------------------------------- publish
    def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> None:
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        rc = info.rc
        if qos > 0 and rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            # NO_CONN: queued by paho; sent after the reconnect
            self._track(_Outgoing(info, topic, payload, qos, retain))
            return
        if rc == mqtt.MQTT_ERR_SUCCESS:
            return
        if rc == mqtt.MQTT_ERR_NO_CONN:
            raise MqttBridgeError(
                f"the MQTT broker at {self.endpoint} is not connected; QoS 0 messages are not "
                f"queued while offline (publish with QoS 1 to have {topic!r} sent on reconnect)"
            )
        if rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            raise MqttBridgeError(
                f"the MQTT broker at {self.endpoint} is unreachable and the offline queue is full; "
                f"message to {topic!r} refused"
            )
        raise MqttBridgeError(f"publish to {topic!r} failed: {mqtt.error_string(rc)}")

    def stats(self) -> dict[str, int | bool]:
        """Counters for status and tests: connects, unacknowledged QoS 1 messages, drops."""
        with self._out_lock:
            self._prune(everything=True)
            queued = len(self._unacked)
        return {
            "connected": self.connected,
            "reconnects": self.reconnects,
            "queued": queued,
            "refusals": self.refusals,
            "dropped": self.dropped,
        }

    def _track(self, out: _Outgoing) -> None:
        with self._out_lock:
            if id(out.info) in self._taken_back:
                self._taken_back.discard(id(out.info))  # a reconnect already resent and tracks it
                return
            self._unacked.append(out)
            self._prune(everything=len(self._unacked) > 2 * self._max_queued)

    def _prune(self, *, everything: bool = False) -> None:
        """Forget acknowledged messages: the head always, all when asked (holds _out_lock)."""
        while self._unacked and self._unacked[0].acked():
            self._unacked.popleft()
        if everything:
            self._unacked = deque(o for o in self._unacked if not o.acked())

    def _blame_oldest_unacked(self) -> None:
        """The connection was lost: the oldest unacknowledged message is the likely cause."""
        with self._out_lock:
            self._prune()
            if not self._unacked:
                return
            head = self._unacked[0]
            head.strikes += 1
            self.refusals += 1
        log.warning(
            "IPC MQTT bridge: %s closed the connection with the message to %r (%d bytes) "
            "unacknowledged (attempt %d of %d)",
            self.endpoint,
            head.topic,
            len(head.payload),
            head.strikes,
            self._max_attempts,
        )

    def _resend_unacked(self, client: mqtt.Client) -> None:
        """On a (re)connect: take paho's unacknowledged messages back and resend them in order,
        dropping those the broker refused ``max_publish_attempts`` times."""
        pending = client.drop_out_messages()
        with self._out_lock:
            known = {id(o.info): o for o in self._unacked}
            self._unacked = deque()
            for message in pending:
                out = known.get(id(message.info))
                if out is None:  # published, but publish() has not tracked it yet
                    self._taken_back.add(id(message.info))
                    out = _Outgoing(
                        message.info,
                        message.topic,
                        bytes(message.payload),
                        message.qos,
                        bool(message.retain),
                    )
                if out.strikes >= self._max_attempts:
                    self.dropped += 1
                    log.error(
                        "IPC MQTT bridge: dropped the message to %r (%d bytes, QoS %d): %s "
                        "closed the connection each of the %d times it was sent; %d dropped so far",
                        out.topic,
                        len(out.payload),
                        out.qos,
                        self.endpoint,
                        out.strikes,
                        self.dropped,
                    )
                    continue
                out.info = client.publish(out.topic, out.payload, qos=out.qos, retain=out.retain)
                self._unacked.append(out)

    # ---------------------------------------------------------------- subscribe
    def subscribe(
        self, topic_filter: str, qos: int, callback: MessageCallback
    ) -> tuple[int, Future[None] | None]:
        """Add a subscriber. Returns its handle and, if a SUBACK is awaited, a future for it.

        The future is None when the filter is already active or the broker is
        offline (the subscription is then made on reconnect).
        """
        with self._lock:
            handle = next(self._handles)
            f = self._filters.get(topic_filter)
            if f is None:
                f = self._filters[topic_filter] = _Filter()
            f.callbacks[handle] = (qos, callback)
            self._handle_filter[handle] = topic_filter
            want = f.wanted_qos()
            if not self.connected:
                f.qos = want
                return handle, None
            if f.acked and want <= f.qos:
                return handle, None
            waiter: Future[None] = Future()
            f.waiting.append(waiter)
            if want > f.qos or not f.waiting[:-1]:
                f.qos = want
                f.acked = False
                rc, mid = self._client.subscribe(topic_filter, qos=want)
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    f.waiting.remove(waiter)
                    return handle, None  # connection just dropped: resubscribed on reconnect
                self._pending[mid] = [topic_filter]
            return handle, waiter

    def unsubscribe(self, handle: int) -> None:
        with self._lock:
            topic_filter = self._handle_filter.pop(handle, None)
            if topic_filter is None:
                return
            f = self._filters.get(topic_filter)
            if f is None:
                return
            f.callbacks.pop(handle, None)
            if f.callbacks:
                return
            del self._filters[topic_filter]
            self._resolve(f, MqttBridgeError(f"subscription to {topic_filter!r} was closed"))
            if self.connected:
                self._client.unsubscribe(topic_filter)

    @property
    def filters(self) -> dict[str, int]:
        """Active topic filters and their QoS (for tests and status)."""
        with self._lock:
            return {k: v.qos for k, v in self._filters.items()}

    # ---------------------------------------------------------------- paho callbacks
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            log.warning("MQTT broker %s refused the IPC bridge: %s", self.endpoint, reason_code)
            return
        self._resend_unacked(client)
        with self._lock:
            self._connected.set()
            if self.reconnects or self._filters:
                log.info(
                    "IPC MQTT bridge connected to %s; restoring %d subscriptions",
                    self.endpoint,
                    len(self._filters),
                )
            self.reconnects += 1
            self._pending.clear()
            if self._filters:
                wanted = [(name, f.wanted_qos()) for name, f in self._filters.items()]
                for name, qos in wanted:
                    self._filters[name].qos = qos
                    self._filters[name].acked = False
                rc, mid = client.subscribe(wanted)
                if rc == mqtt.MQTT_ERR_SUCCESS:
                    self._pending[mid] = [name for name, _ in wanted]

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected and self._started:
            self._blame_oldest_unacked()
        with self._lock:
            for f in self._filters.values():
                f.acked = False
        if self._started:
            log.warning("IPC MQTT bridge lost %s (%s); reconnecting", self.endpoint, reason_code)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            names = self._pending.pop(mid, [])
            for name, rc in zip(names, reason_codes, strict=False):
                f = self._filters.get(name)
                if f is None:
                    continue
                if rc.is_failure:
                    self._resolve(
                        f, MqttBridgeError(f"the broker refused subscription {name!r}: {rc}")
                    )
                else:
                    f.acked = True
                    self._resolve(f, None)

    @staticmethod
    def _resolve(f: _Filter, error: Exception | None) -> None:
        waiting, f.waiting = f.waiting, []
        for fut in waiting:
            if fut.done():
                continue
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)

    def _on_message(self, client, userdata, message) -> None:  # type: ignore[no-untyped-def]
        topic = message.topic
        with self._lock:
            targets = [
                cb
                for name, f in self._filters.items()
                if mqtt.topic_matches_sub(name, topic)
                for _, cb in f.callbacks.values()
            ]
        payload = bytes(message.payload)
        for cb in targets:
            try:
                cb(topic, payload, bool(message.retain))
            except Exception:
                log.exception("IPC MQTT bridge: delivering a message on %s failed", topic)
