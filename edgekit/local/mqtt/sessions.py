"""Session state and the outgoing QoS flow of one client (MQTT spec 4.1, 4.3, 4.4).

A session outlives its network connections when the client asked for it
(3.1.1 clean session 0; 5.0 a non-zero session expiry interval). It owns the
client's subscriptions, the QoS 1/2 deliveries sent but not yet acknowledged
(``inflight``, resent with DUP on reconnect) and those waiting for a free slot
in the in-flight window or for the client to come back (``pending``), and the
retained messages a new subscription matched (``backlog``).

Queueing policy (see `BrokerLimits`): QoS 0 goes straight to the connection or
nowhere (it is not queued for offline clients). QoS 1/2 queue in ``pending``
up to ``max_queued`` messages and ``max_queued_bytes``; when that overflows
while the client is connected, the client is disconnected (it is not keeping
up); while it is offline, the oldest queued messages are dropped, counted
(``dropped``, `BrokerStats.queued_dropped`) and logged with their topic.

Flow control: the backlog, then the queue, drain into the in-flight window
(the broker's ``max_inflight`` deliveries and ``max_inflight_bytes``, or fewer
for an MQTT 5 client's Receive Maximum) and only while the connection's write
buffer has room; when it is full, draining waits for it (`Link.when_writable`)
instead of disconnecting.
A retained flood (thousands of retained messages matching one filter) is
therefore delivered at the client's pace, never counted against the queue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from edgekit.local.mqtt.limits import BrokerLimits
from edgekit.local.mqtt.packets import SubscriptionOptions, Will
from edgekit.local.mqtt.properties import Properties
from edgekit.local.mqtt.stats import BrokerStats

log = logging.getLogger("edgekit.local.mqtt")


@dataclass(slots=True)
class Message:
    """An application message as the broker routes it."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    sender: str | None = None  # client id, for the no-local option
    properties: Properties = field(default_factory=dict)  # forwarded to MQTT 5 subscribers
    expires_at: float | None = None  # time.monotonic() deadline from Message Expiry Interval

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.monotonic()) >= self.expires_at

    @property
    def size(self) -> int:
        """Bytes a queue or the retained store is charged for it: topic and payload."""
        return len(self.topic) + len(self.payload)


@dataclass(slots=True)
class Subscription:
    topic_filter: str
    options: SubscriptionOptions
    identifier: int | None = None  # MQTT 5 subscription identifier


@dataclass(slots=True)
class Delivery:
    """One message on its way to one session, at the QoS it is delivered with."""

    message: Message
    qos: int
    retain: bool
    subscription_ids: tuple[int, ...] = ()
    packet_id: int = 0
    released: bool = False  # QoS 2: PUBREC received, PUBREL sent, awaiting PUBCOMP
    store_id: int = 0  # its record in the broker's durable store (0: memory only)


class Sent(Enum):
    OK = 0
    FULL = 1  # the connection's write buffer is over its limit
    SKIPPED = 2  # too large for the client's Maximum Packet Size: discarded as delivered


class Link(Protocol):
    """What a session needs from the connection currently serving it."""

    window: int  # in-flight QoS 1/2 deliveries allowed

    def writable(self) -> bool:
        """True while the write buffer has room for another delivery."""

    def when_writable(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the write buffer has drained (not if the link closes)."""

    def send_publish(self, delivery: Delivery, dup: bool = False) -> Sent: ...

    def send_pubrel(self, packet_id: int) -> Sent: ...

    def overflow(self, reason: str) -> None:
        """Close the connection because the client does not keep up."""

    def taken_over(self) -> None:
        """Close the connection because a new one connected with the same client id."""


class Session:
    def __init__(
        self, client_id: str, limits: BrokerLimits, stats: BrokerStats | None = None
    ) -> None:
        self.client_id = client_id
        self.limits = limits
        self.stats = stats if stats is not None else BrokerStats()
        self.subscriptions: dict[str, Subscription] = {}
        self.inflight: dict[int, Delivery] = {}  # insertion order = send order
        self.inflight_bytes = 0
        self.pending: deque[Delivery] = deque()
        self.pending_bytes = 0
        self.backlog: deque[Delivery] = deque()  # retained messages for new subscriptions
        self.offline_since: float | None = None  # time.monotonic() when its link went
        self.incoming_qos2: set[int] = set()  # PUBREC sent, awaiting PUBREL
        self.expiry_interval = 0
        self.link: Link | None = None
        self.dropped = 0
        # Called when a delivery with a store_id leaves the session (acknowledged, refused,
        # dropped, expired): the broker's `Persistence` forgets its record.
        self.on_done: Callable[[Delivery], None] | None = None
        self.ended = False
        self.expiry_timer: asyncio.TimerHandle | None = None
        self.will_timer: asyncio.TimerHandle | None = None
        self.pending_will: Will | None = None
        self._next_id = 1

    def __repr__(self) -> str:
        state = "online" if self.link else "offline"
        return f"<Session {self.client_id!r} {state} inflight={len(self.inflight)}>"

    @property
    def online(self) -> bool:
        return self.link is not None

    # ------------------------------------------------------------ outgoing flow
    def deliver(self, delivery: Delivery) -> None:
        """Send now, queue, or drop ``delivery`` per the policy in the module docstring."""
        if self.ended:
            return
        link = self.link
        if delivery.qos == 0:
            if link is not None:
                link.send_publish(delivery)  # dropped by the link when its buffer is full
            return
        if link is None or self.pending or self.backlog or self._window_full(link, delivery):
            self._queue(delivery)
        else:
            self._send_new(delivery, link)

    def deliver_retained(self, deliveries: list[Delivery]) -> None:
        """Retained messages a new subscription matched: sent at the client's pace."""
        if self.ended or not deliveries:
            return
        self.backlog.extend(deliveries)
        self.pump()

    def _queue(self, delivery: Delivery) -> None:
        limit, byte_limit = self.limits.max_queued, self.limits.max_queued_bytes
        size = delivery.message.size
        if self.link is not None and (
            len(self.pending) >= limit or self.pending_bytes + size > byte_limit
        ):
            self.stats.overflow_disconnects += 1
            self._lose_link(
                f"{len(self.pending)} QoS 1/2 messages ({self.pending_bytes} bytes) queued "
                f"(limits {limit} messages, {byte_limit} bytes)"
            )
        if size > byte_limit:
            self._drop(delivery, f"it alone exceeds the queue's {byte_limit} bytes")
            return
        while self.pending and (
            len(self.pending) >= limit or self.pending_bytes + size > byte_limit
        ):
            oldest = self.pending.popleft()
            self.pending_bytes -= oldest.message.size
            self._drop(oldest, f"the offline queue is full ({limit} messages, {byte_limit} bytes)")
        self.pending.append(delivery)
        self.pending_bytes += size

    def _done(self, delivery: Delivery) -> None:
        if delivery.store_id and self.on_done is not None:
            self.on_done(delivery)

    def _drop(self, delivery: Delivery, why: str) -> None:
        self._done(delivery)
        self.dropped += 1
        self.stats.queued_dropped += 1
        log.warning(
            "session %r dropped a QoS %d message on %r: %s (%d dropped by this session)",
            self.client_id,
            delivery.qos,
            delivery.message.topic,
            why,
            self.dropped,
        )

    def _window_full(self, link: Link, delivery: Delivery) -> bool:
        """No room in flight: ``window`` deliveries, or (past the first) the byte bound."""
        if len(self.inflight) >= link.window:
            return True
        limit = self.limits.max_inflight_bytes
        return bool(self.inflight) and self.inflight_bytes + delivery.message.size > limit

    def _forget(self, packet_id: int) -> None:
        """The flow of ``packet_id`` ended: it leaves the in-flight window."""
        delivery = self.inflight.pop(packet_id, None)
        if delivery is not None:
            self._done(delivery)
            self.inflight_bytes = max(self.inflight_bytes - delivery.message.size, 0)

    def _send_new(self, delivery: Delivery, link: Link) -> None:
        delivery.packet_id = self._allocate_id()
        self.inflight[delivery.packet_id] = delivery
        self.inflight_bytes += delivery.message.size
        sent = link.send_publish(delivery)
        if sent is Sent.SKIPPED:
            self._forget(delivery.packet_id)
        elif sent is Sent.FULL:
            self._lose_link("its outgoing buffer is full")

    def _allocate_id(self) -> int:
        packet_id = self._next_id
        while packet_id in self.inflight:
            packet_id = packet_id % 0xFFFF + 1
        self._next_id = packet_id % 0xFFFF + 1
        return packet_id

    def _lose_link(self, reason: str) -> None:
        link, self.link = self.link, None
        if link is not None:
            self.offline_since = time.monotonic()
            link.overflow(reason)

    def pump(self) -> None:
        """Move the backlog, then pending deliveries, into the in-flight window.

        Stops when the window is full (an acknowledgement calls it again) or the
        write buffer is (the link calls it again once the buffer has drained).
        """
        now = time.monotonic()
        link = self.link
        while link is not None and self.link is link and not self.ended:
            queue = self.backlog if self.backlog else self.pending
            if not queue:
                return
            delivery = queue[0]
            if delivery.qos and self._window_full(link, delivery):
                return
            if not link.writable():
                link.when_writable(self.pump)
                return
            queue.popleft()
            if queue is self.pending:
                self.pending_bytes -= delivery.message.size
            if delivery.message.expired(now):
                self._done(delivery)
                continue
            if delivery.qos == 0:
                link.send_publish(delivery)
            else:
                self._send_new(delivery, link)

    def attach(self, link: Link) -> None:
        """A connection took this session: resend unacknowledged deliveries, then the queue."""
        self.link = link
        self.offline_since = None
        for delivery in list(self.inflight.values()):
            if delivery.released:
                sent = link.send_pubrel(delivery.packet_id)
            else:
                sent = link.send_publish(delivery, dup=True)
            if sent is Sent.FULL:
                self._lose_link("its outgoing buffer is full")
                return
            if sent is Sent.SKIPPED:
                self._forget(delivery.packet_id)
        self.pump()

    # ------------------------------------------------------------ acknowledgements
    def puback(self, packet_id: int) -> None:
        delivery = self.inflight.get(packet_id)
        if delivery is not None and delivery.qos == 1:
            self._forget(packet_id)
            self.pump()

    def pubrec(self, packet_id: int, failed: bool) -> bool:
        """PUBREC for a QoS 2 delivery; False if the packet id is unknown."""
        delivery = self.inflight.get(packet_id)
        if delivery is None or delivery.qos != 2:
            return False
        if failed:  # MQTT 5 reason >= 0x80: the client refused it; the flow ends here
            self._forget(packet_id)
            self.pump()
        else:
            delivery.released = True
        return True

    def pubcomp(self, packet_id: int) -> None:
        delivery = self.inflight.get(packet_id)
        if delivery is not None and delivery.released:
            self._forget(packet_id)
            self.pump()

    # ------------------------------------------------------------ end of life
    def cancel_timers(self) -> None:
        for timer in (self.expiry_timer, self.will_timer):
            if timer is not None:
                timer.cancel()
        self.expiry_timer = self.will_timer = None

    def clear(self) -> None:
        self.ended = True
        self.cancel_timers()
        self.inflight.clear()
        self.inflight_bytes = 0
        self.pending.clear()
        self.pending_bytes = 0
        self.backlog.clear()
        self.incoming_qos2.clear()
