"""What of the broker's state survives a crash, and how it maps onto the `DurableStore`.

Durable, as on AWS IoT Core: persistent sessions (MQTT 3.1.1 clean session 0,
MQTT 5 session expiry > 0) with their subscriptions and the QoS 1/2 messages
queued or in flight for them, and retained messages. Clean sessions, QoS 0
messages, wills and the packet ids of in-flight messages stay in memory: after a
restart an in-flight message is sent again as a new PUBLISH (QoS 1 allows the
duplicate).

The `Router` and `Session` call the hooks below as their state changes (each a
no-op for what is not durable); `restore` turns the store's content back into
sessions, subscriptions, deliveries and retained messages when the broker starts.
Times cross the boundary as wall-clock times (``time.time()``), since the broker's
own deadlines are ``time.monotonic()``, which does not survive a restart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from edgekit.local.mqtt.limits import NEVER_EXPIRES
from edgekit.local.mqtt.packets import MQTT_311, SubscriptionOptions
from edgekit.local.mqtt.sessions import Delivery, Message, Session, Subscription
from edgekit.local.mqtt.store import (
    DurableStore,
    StoredMessage,
    StoredSession,
    StoredSubscription,
)


@dataclass(slots=True)
class RestoredSession:
    """A persistent session as the store had it, ready for the router."""

    client_id: str
    expiry_interval: int
    expires_in: float | None  # seconds left before it expires; None: never
    offline_for: float  # seconds since its client left (0 if it was online at the crash)
    subscriptions: list[Subscription] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)


class Persistence:
    """The broker's hooks into its `DurableStore` (all on the broker's event loop)."""

    def __init__(self, store: DurableStore) -> None:
        self.store = store
        self._versions: dict[str, int] = {}  # client id -> MQTT level of its last CONNECT

    # ------------------------------------------------------------ sessions
    def session_opened(self, session: Session, protocol_version: int) -> None:
        """A client connected to ``session`` (new or resumed) with its expiry interval set."""
        self._versions[session.client_id] = protocol_version
        if session.expiry_interval:
            self.store.save_session(
                StoredSession(session.client_id, protocol_version, session.expiry_interval)
            )
        else:
            self.store.end_session(session.client_id)  # resumed as a clean session

    def session_offline(self, session: Session) -> None:
        """Its client left and the session stays: the expiry clock starts now."""
        version = self._versions.get(session.client_id, MQTT_311)
        self.store.save_session(
            StoredSession(session.client_id, version, session.expiry_interval, time.time())
        )

    def session_ended(self, client_id: str) -> None:
        self._versions.pop(client_id, None)
        self.store.end_session(client_id)

    def subscribed(self, session: Session, sub: Subscription) -> None:
        if session.expiry_interval:
            options = sub.options
            self.store.subscribe(
                session.client_id,
                StoredSubscription(
                    sub.topic_filter,
                    options.qos,
                    options.no_local,
                    options.retain_as_published,
                    options.retain_handling,
                    sub.identifier,
                ),
            )

    def unsubscribed(self, session: Session, topic_filter: str) -> None:
        if session.expiry_interval:
            self.store.unsubscribe(session.client_id, topic_filter)

    # ------------------------------------------------------------ messages
    def queued(self, session: Session, delivery: Delivery) -> None:
        """A QoS 1/2 delivery for a persistent session: recorded until it is acknowledged.

        The store may refuse it (full, `DurableStore.max_bytes`): it is then delivered
        from memory only (counted in ``store.refused``, logged by the store).
        """
        if delivery.qos and session.expiry_interval and not delivery.store_id:
            stored = self._stored(
                delivery.message, delivery.qos, delivery.retain, delivery.subscription_ids
            )
            delivery.store_id = self.store.enqueue(session.client_id, stored) or 0

    def done(self, session: Session, delivery: Delivery) -> None:
        """The delivery was acknowledged, refused or dropped: forget it."""
        if delivery.store_id:
            self.store.remove(session.client_id, delivery.store_id)
            delivery.store_id = 0

    def retained(self, message: Message) -> None:
        """``message`` is now the retained message of its topic."""
        self.store.retain(self._stored(message, message.qos, True))

    def retained_cleared(self, topic: str) -> None:
        self.store.clear_retained(topic)

    @staticmethod
    def _stored(
        message: Message, qos: int, retain: bool, subscription_ids: tuple[int, ...] = ()
    ) -> StoredMessage:
        expires_at = None
        if message.expires_at is not None:
            expires_at = time.time() + (message.expires_at - time.monotonic())
        props = dict(message.properties)
        return StoredMessage(
            message.topic, message.payload, qos, retain, props, expires_at, subscription_ids
        )

    @staticmethod
    def _message(stored: StoredMessage, now: float, mono: float) -> Message:
        expires_at = None if stored.expires_at is None else mono + (stored.expires_at - now)
        return Message(
            stored.topic,
            stored.payload,
            stored.qos,
            stored.retain,
            None,
            dict(stored.properties),
            expires_at,
        )

    # ------------------------------------------------------------ start-up
    def restore(self, longest_expiry: int) -> tuple[list[RestoredSession], list[Message]]:
        """The store's sessions (expired ones ended) and unexpired retained messages.

        ``longest_expiry`` caps a stored session's expiry interval (the broker's
        ``session_expiry`` limit may have been lowered since it was stored).
        """
        state = self.store.load()
        now, mono = time.time(), time.monotonic()
        retained = []
        for topic, stored in state.retained.items():
            message = self._message(stored, now, mono)
            if message.expired(mono):
                self.store.clear_retained(topic)
            else:
                retained.append(message)
        sessions = []
        for client_id, saved in state.sessions.items():
            info = saved.session
            expiry = min(info.expiry_interval, longest_expiry)
            offline_for = 0.0 if info.disconnected_at is None else now - info.disconnected_at
            expires_in = None if expiry == NEVER_EXPIRES else expiry - max(offline_for, 0.0)
            if expires_in is not None and expires_in <= 0:
                self.store.end_session(client_id)
                continue
            self._versions[client_id] = info.protocol_version
            if info.disconnected_at is None:  # online at the crash: offline from now
                self.store.save_session(
                    StoredSession(client_id, info.protocol_version, info.expiry_interval, now)
                )
            restored = RestoredSession(client_id, expiry, expires_in, max(offline_for, 0.0))
            for sub in saved.subscriptions.values():
                options = SubscriptionOptions(
                    sub.qos, sub.no_local, sub.retain_as_published, sub.retain_handling
                )
                restored.subscriptions.append(
                    Subscription(sub.topic_filter, options, sub.identifier)
                )
            for stored in saved.messages:
                message = self._message(stored, now, mono)
                if message.expired(mono):
                    self.store.remove(client_id, stored.store_id)
                    continue
                restored.deliveries.append(
                    Delivery(
                        message,
                        stored.qos,
                        stored.retain,
                        stored.subscription_ids,
                        store_id=stored.store_id,
                    )
                )
            sessions.append(restored)
        return sessions, retained
