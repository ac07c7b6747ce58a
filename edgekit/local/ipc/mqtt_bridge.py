"""The bridge from IPC's PublishToIoTCore/SubscribeToIoTCore to the local MQTT broker.

One paho-mqtt connection per IPC server (like the nucleus' single connection to
IoT Core), on paho's own network thread, reconnecting with a short exponential
back-off. IPC subscriptions are reference-counted per topic filter: the broker
sees one SUBSCRIBE per filter (at the highest QoS any subscriber asked for) and
every filter is subscribed again after a reconnect, so subscriptions survive a
broker restart.

Outgoing messages go through a spool (`mqtt_spool.MqttSpool`, the nucleus'
``mqtt.spooler``): a QoS 1 publish is written to it (on disk on a device, fsynced)
before the call returns, and leaves it only on the broker's PUBACK (it is handed to the
broker as soon as it is written, and fsynced while it travels: the disk does not delay
delivery); while the broker
is unreachable messages wait there, bounded in bytes (a publish that does not fit
is refused with an error naming ``maxSizeInBytes``), and after a reconnect, or a
restart of the runtime, they are sent oldest first, before any new message. A QoS 0
publish while offline fails with an error instead of vanishing silently, unless
``keep_qos0_when_offline`` (``keepQos0WhenOffline``) spools it in memory; QoS 0
messages are dropped first when the spool is full. Subscribing while offline is
recorded and takes effect on the reconnect.

A message the broker refuses never blocks the queue. Over MQTT 3.1.1 a broker
refuses a PUBLISH by closing the connection (an oversize packet, a forbidden
topic), and would be sent that same message first on every reconnect, for ever.
So when a connection is lost, the oldest unacknowledged QoS 1 message gets a
strike (everything before it was acknowledged); on the reconnect the bridge takes
paho's unacknowledged messages back (``drop_out_messages``) and resends the spool
in order, except a message with ``max_publish_attempts`` strikes, which is dropped,
counted (`stats`) and logged with its topic. Like the nucleus' ``maxPublishRetry``,
the bound trades a message for the device's connection.

Locks, always taken in this order: paho's callback lock (its own thread) ->
``_send_lock`` (handing messages to paho, in order) -> paho's message lock;
``_ack_lock`` (messages handed and not yet acknowledged) is never held while
calling into paho, so paho's PUBACK callback may take it.

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
from edgekit.local.ipc.mqtt_spool import MqttSpool, SpooledMessage, SpoolError

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


def _acked(message: SpooledMessage) -> bool:
    """The broker acknowledged the message's latest send. is_published() raises for a message
    handed to paho while offline (rc NO_CONN); the reconnect resends it under a new info."""
    info = message.info
    return info is not None and info.rc == mqtt.MQTT_ERR_SUCCESS and info.is_published()


class MqttBridge:
    def __init__(
        self,
        endpoint: str,
        client_id: str,
        *,
        reconnect_min_delay: float = 0.25,
        reconnect_max_delay: float = 2.0,
        keepalive: int = 30,
        max_publish_attempts: int = DEFAULT_MAX_PUBLISH_ATTEMPTS,
        spool: MqttSpool | None = None,
        keep_qos0_when_offline: bool = False,
    ) -> None:
        """``spool`` defaults to an in-memory one of the nucleus' default size; its owner
        closes it after `stop` (the bridge may be started again)."""
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
        self.spool = spool if spool is not None else MqttSpool(None)
        self._keep_qos0 = keep_qos0_when_offline
        self._send_lock = threading.Lock()
        self._online = False  # set by on_connect once the spool is resent (under _send_lock)
        self._generation = 0  # connections made; a message knows which one it was sent in
        self._ack_lock = threading.Lock()
        self._inflight: deque[SpooledMessage] = deque()  # handed to paho, in order, unacked
        self.lost_qos0 = 0  # QoS 0 messages paho could not send (the connection dropped)
        self.refusals = 0  # connections lost with a QoS 1 message unacknowledged
        self.dropped = 0  # messages dropped after max_publish_attempts refusals
        client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        client.reconnect_delay_set(reconnect_min_delay, reconnect_max_delay)  # type: ignore[arg-type]
        client.max_queued_messages_set(0)  # the spool bounds what waits, in bytes
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish
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
        """Send, or spool until the broker is back. A QoS 1 message is on disk (a disk
        spool) when this returns; MqttBridgeError if it cannot be taken."""
        if qos == 0 and self._online:
            info = self._client.publish(topic, payload, qos=0, retain=retain)
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                return
            if info.rc != mqtt.MQTT_ERR_NO_CONN:
                raise MqttBridgeError(f"publish to {topic!r} failed: {mqtt.error_string(info.rc)}")
        if qos == 0 and not self._keep_qos0:
            raise MqttBridgeError(
                f"the MQTT broker at {self.endpoint} is not connected; QoS 0 messages are not "
                f"queued while offline (publish with QoS 1 to have {topic!r} sent on reconnect, "
                "or set the nucleus' mqtt.spooler.keepQos0WhenOffline)"
            )
        try:
            message = self.spool.append(topic, payload, qos, retain, durable=qos > 0, sync=False)
        except SpoolError as exc:
            state = "is unreachable" if not self._online else "has not acknowledged them yet"
            raise MqttBridgeError(f"{exc} (the MQTT broker at {self.endpoint} {state})") from exc
        with self._send_lock:
            # A reconnect that started after the append has sent it already, in order.
            if self._online and message.sent_in != self._generation:
                self._hand(message)
        # Sent first, fsynced while it travels: the caller hears success only once it is
        # durable, but the broker need not wait for the disk (a crash before the fsync means
        # the caller publishes again: a duplicate, as QoS 1 allows).
        try:
            self.spool.sync(message)
        except SpoolError as exc:
            raise MqttBridgeError(str(exc)) from exc

    def _hand(self, message: SpooledMessage) -> None:
        """Give one spooled message to paho (holds _send_lock)."""
        info = self._client.publish(
            message.topic, message.payload, qos=message.qos, retain=message.retain
        )
        message.sent_in = self._generation
        if message.qos == 0:
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                self.lost_qos0 += 1
            self.spool.ack(message.seq)
            return
        with self._ack_lock:
            message.info = info
            self._inflight.append(message)
            self._prune()

    def _prune(self, *, everything: bool = False) -> None:
        """Remove acknowledged messages from the spool: the head always (the broker acknowledges
        in order), all when asked (holds _ack_lock)."""
        while self._inflight and _acked(self._inflight[0]):
            self.spool.ack(self._inflight.popleft().seq)
        if everything:
            keep: deque[SpooledMessage] = deque()
            for message in self._inflight:
                if _acked(message):
                    self.spool.ack(message.seq)
                else:
                    keep.append(message)
            self._inflight = keep

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        with self._ack_lock:
            self._prune()

    def stats(self) -> dict[str, int | bool | str]:
        """Counters for status and tests: connects, what waits in the spool and its bound,
        and every message dropped or refused (``refusals``, ``dropped``, ``refused_full``,
        ``dropped_qos0``, ``lost_qos0``, ``corrupt``)."""
        with self._ack_lock:
            self._prune(everything=True)
        return {
            "connected": self.connected,
            "reconnects": self.reconnects,
            "refusals": self.refusals,
            "dropped": self.dropped,
            "lost_qos0": self.lost_qos0,
            **self.spool.stats(),
        }

    def _blame_oldest_unacked(self) -> None:
        """The connection was lost: the oldest unacknowledged message is the likely cause."""
        with self._ack_lock:
            self._prune()
            if not self._inflight:
                return
            head = self._inflight[0]
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

    def _resend_spool(self, client: mqtt.Client) -> None:
        """On a (re)connect: take paho's unacknowledged messages back and send the spool in
        order, dropping messages the broker refused ``max_publish_attempts`` times
        (holds _send_lock)."""
        client.drop_out_messages()
        with self._ack_lock:
            self._prune(everything=True)
            self._inflight = deque()
        for message in self.spool.pending():
            if message.strikes >= self._max_attempts:
                if self.spool.drop(message.seq):
                    self.dropped += 1
                log.error(
                    "IPC MQTT bridge: dropped the message to %r (%d bytes, QoS %d): %s "
                    "closed the connection each of the %d times it was sent; %d dropped so far",
                    message.topic,
                    len(message.payload),
                    message.qos,
                    self.endpoint,
                    message.strikes,
                    self.dropped,
                )
                continue
            self._hand(message)

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
        with self._send_lock:
            self._generation += 1
            self._resend_spool(client)
            self._online = True
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
        self._online = False
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
