"""The broker's shared state: sessions by client id, the subscription tree, retained messages.

Everything here runs on the broker's event loop thread and never awaits, so
routing a message is one synchronous pass: match the topic, pick each
session's delivery QoS (min of the publish QoS and the best granted QoS among
that session's matching subscriptions) and hand it to the session, which
writes to its connection without waiting for it. A slow subscriber therefore
cannot hold up a publisher or the other subscribers.

Bounds (`BrokerLimits`): the retained store holds at most ``max_retained_bytes``
(a retained message that does not fit is routed but not kept); persistent
sessions expire ``session_expiry`` seconds after their client left; at most
``max_sessions`` sessions exist (`make_room` ends the offline session idle
longest, or says no). Every refusal and drop is counted in `stats`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from edgekit.local.mqtt.limits import NEVER_EXPIRES, BrokerLimits
from edgekit.local.mqtt.packets import MQTT_311, Will
from edgekit.local.mqtt.persistence import Persistence
from edgekit.local.mqtt.sessions import Delivery, Link, Message, Session, Subscription
from edgekit.local.mqtt.stats import BrokerStats
from edgekit.local.mqtt.topics import SubscriptionTree, matches

log = logging.getLogger("edgekit.local.mqtt")

# PUBLISH properties a broker passes on to subscribers unchanged (MQTT 5 3.3.2.3).
FORWARDED = ("payload_format_indicator", "content_type", "response_topic", "correlation_data")


def message_properties(props: dict[str, Any]) -> tuple[dict[str, Any], float | None]:
    """(properties to forward, expiry deadline) from a PUBLISH's or a will's properties."""
    forwarded = {k: props[k] for k in FORWARDED if k in props}
    if "user_property" in props:
        forwarded["user_property"] = list(props["user_property"])
    expiry = props.get("message_expiry_interval")
    return forwarded, (time.monotonic() + expiry if expiry is not None else None)


class Router:
    def __init__(self, limits: BrokerLimits) -> None:
        self.limits = limits
        self.sessions: dict[str, Session] = {}
        self.tree: SubscriptionTree[Subscription] = SubscriptionTree()
        self.retained: dict[str, Message] = {}
        self.retained_bytes = 0
        self.stats = BrokerStats()
        self.persistence: Persistence | None = None  # set by `restore`: durable state
        self.closing = False

    # ------------------------------------------------------------ routing
    def publish(self, message: Message) -> int:
        """Route ``message`` to every matching session; returns how many sessions got it."""
        if message.retain:
            self._retain(message)
            if self.persistence is not None:
                if self.retained.get(message.topic) is message:
                    self.persistence.retained(message)
                else:
                    self.persistence.retained_cleared(message.topic)
        targets: dict[str, list[Subscription]] = {}
        for client_id, sub in self.tree.match(message.topic):
            if sub.options.no_local and client_id == message.sender:
                continue
            targets.setdefault(client_id, []).append(sub)
        for client_id, subs in targets.items():
            session = self.sessions.get(client_id)
            if session is None:
                continue
            granted = max(s.options.qos for s in subs)
            keep_retain = message.retain and any(s.options.retain_as_published for s in subs)
            ids = tuple(s.identifier for s in subs if s.identifier is not None)
            delivery = Delivery(message, min(message.qos, granted), keep_retain, ids)
            if self.persistence is not None:
                self.persistence.queued(session, delivery)
            session.deliver(delivery)
        return len(targets)

    def _retain(self, message: Message) -> None:
        old = self.retained.pop(message.topic, None)  # an empty retained message clears
        if old is not None:
            self.retained_bytes -= old.size
        if not message.payload:
            return
        limit = self.limits.max_retained_bytes
        if self.retained_bytes + message.size > limit:
            self._drop_expired_retained()
        if self.retained_bytes + message.size > limit:
            self.stats.retained_refused += 1
            log.warning(
                "not retaining the message %r published on %r: the retained messages "
                "would exceed %d bytes (max_retained_bytes); it was delivered, not kept",
                message.sender,
                message.topic,
                limit,
            )
            return
        self.retained[message.topic] = message
        self.retained_bytes += message.size

    def _drop_expired_retained(self) -> None:
        now = time.monotonic()
        for topic in [t for t, m in self.retained.items() if m.expired(now)]:
            self.retained_bytes -= self.retained.pop(topic).size
            if self.persistence is not None:
                self.persistence.retained_cleared(topic)

    def retained_for(self, topic_filter: str) -> list[Message]:
        self._drop_expired_retained()
        return [m for t, m in self.retained.items() if matches(topic_filter, t)]

    # ------------------------------------------------------------ subscriptions
    def subscribe(self, session: Session, sub: Subscription) -> bool:
        """Add or replace the session's subscription; True if it replaced one."""
        session.subscriptions[sub.topic_filter] = sub
        if self.persistence is not None:
            self.persistence.subscribed(session, sub)
        return self.tree.add(sub.topic_filter, session.client_id, sub)

    def unsubscribe(self, session: Session, topic_filter: str) -> bool:
        if session.subscriptions.pop(topic_filter, None) is None:
            return False
        self.tree.remove(topic_filter, session.client_id)
        if self.persistence is not None:
            self.persistence.unsubscribed(session, topic_filter)
        return True

    # ------------------------------------------------------------ session lifecycle
    def make_room(self, client_id: str) -> bool:
        """Whether ``client_id`` may have a session; ends the offline one idle longest if full.

        False (counted) when ``max_sessions`` sessions exist and all are online.
        """
        if client_id in self.sessions or len(self.sessions) < self.limits.max_sessions:
            return True
        offline = [s for s in self.sessions.values() if s.link is None]
        if not offline:
            self.stats.sessions_refused += 1
            log.warning(
                "refusing client %r: %d sessions, all online (max_sessions)",
                client_id,
                len(self.sessions),
            )
            return False
        victim = min(offline, key=lambda s: s.offline_since or 0.0)
        self.stats.sessions_evicted += 1
        self.stats.queued_dropped += len(victim.pending) + len(victim.inflight)
        log.warning(
            "ending the offline session %r (%d queued messages dropped) to make room for "
            "client %r: %d sessions (max_sessions)",
            victim.client_id,
            len(victim.pending) + len(victim.inflight),
            client_id,
            len(self.sessions),
        )
        self.end_session(victim)
        return True

    def open_session(
        self,
        client_id: str,
        link: Link,
        clean_start: bool,
        expiry_interval: int,
        protocol_version: int = MQTT_311,
    ) -> tuple[Session, bool]:
        """The session for a new connection: (session, session present).

        A connection already using this client id is taken over (closed); a
        clean start discards the old session first.
        """
        session = self.sessions.get(client_id)
        if session is not None and session.link is not None:
            old, session.link = session.link, None
            old.taken_over()
        if session is not None and clean_start:
            self.end_session(session)
            session = None
        present = session is not None
        if session is None:
            session = self._new_session(client_id)
        else:
            session.cancel_timers()  # came back before expiry / will delay: no will
            session.pending_will = None
        session.expiry_interval = expiry_interval
        if self.persistence is not None:
            self.persistence.session_opened(session, protocol_version)
        return session, present

    def _new_session(self, client_id: str) -> Session:
        session = Session(client_id, self.limits, self.stats)
        if self.persistence is not None:
            persistence = self.persistence
            session.on_done = lambda delivery: persistence.done(session, delivery)
        self.sessions[client_id] = session
        return session

    def connection_closed(
        self, session: Session, link: Link, will: Will | None, will_delay: int
    ) -> None:
        """A connection of ``session`` ended; ``will`` is None after a normal DISCONNECT."""
        if self.closing:
            return
        if session.link is link:
            session.link = None
        if session.link is None and session.offline_since is None:
            session.offline_since = time.monotonic()
        current = self.sessions.get(session.client_id) is session
        resumed = current and session.link is not None  # another connection took it over
        if will is not None:
            if will_delay and current and not resumed and session.expiry_interval:
                delay = min(will_delay, session.expiry_interval)
                session.pending_will = will
                session.will_timer = asyncio.get_running_loop().call_later(
                    delay, self._publish_pending_will, session
                )
            elif not (will_delay and resumed):
                self.publish_will(session.client_id, will)
        if current and not resumed:
            if session.expiry_interval and self.persistence is not None:
                self.persistence.session_offline(session)
            if session.expiry_interval == 0:
                self.end_session(session)
            elif session.expiry_interval != NEVER_EXPIRES:
                session.expiry_timer = asyncio.get_running_loop().call_later(
                    session.expiry_interval, self._expire, session
                )

    def publish_will(self, client_id: str, will: Will) -> None:
        props, expires_at = message_properties(will.properties)
        self.publish(
            Message(will.topic, will.payload, will.qos, will.retain, client_id, props, expires_at)
        )

    def _publish_pending_will(self, session: Session) -> None:
        will, session.pending_will = session.pending_will, None
        session.will_timer = None
        if will is not None and session.link is None:
            self.publish_will(session.client_id, will)

    def _expire(self, session: Session) -> None:
        session.expiry_timer = None
        if self.sessions.get(session.client_id) is session and session.link is None:
            self.stats.sessions_expired += 1
            self.stats.queued_dropped += len(session.pending) + len(session.inflight)
            log.info(
                "session %r expired (%d queued messages dropped)",
                session.client_id,
                len(session.pending) + len(session.inflight),
            )
            self.end_session(session)

    def end_session(self, session: Session) -> None:
        """Forget the session and its subscriptions; a will still waiting goes out now."""
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
            if self.persistence is not None:
                self.persistence.session_ended(session.client_id)
        for topic_filter in session.subscriptions:
            self.tree.remove(topic_filter, session.client_id)
        session.subscriptions.clear()
        will, session.pending_will = session.pending_will, None
        session.clear()
        if will is not None and not self.closing:
            self.publish_will(session.client_id, will)

    def snapshot(self) -> dict[str, int]:
        """The counters in `stats` plus the current sizes (sessions, queues, retained store)."""
        sessions = self.sessions.values()
        return {
            **self.stats.as_dict(),
            "sessions": len(self.sessions),
            "sessions_online": sum(1 for s in sessions if s.link is not None),
            "queued_messages": sum(len(s.pending) for s in sessions),
            "queued_bytes": sum(s.pending_bytes for s in sessions),
            "retained_backlog": sum(len(s.backlog) for s in sessions),
            "retained_messages": len(self.retained),
            "retained_bytes": self.retained_bytes,
        }

    def restore(self, persistence: Persistence) -> None:
        """Keep state in ``persistence`` from now on, and bring back what it holds:
        retained messages, and persistent sessions offline with their subscriptions,
        queued messages and remaining expiry (on the running loop, before clients come)."""
        self.persistence = persistence
        sessions, retained = persistence.restore(self.limits.session_expiry)
        for message in retained:
            self.retained[message.topic] = message
            self.retained_bytes += message.size
        loop = asyncio.get_running_loop()
        for saved in sessions:
            session = self._new_session(saved.client_id)
            session.expiry_interval = saved.expiry_interval
            session.offline_since = time.monotonic() - saved.offline_for
            for sub in saved.subscriptions:
                session.subscriptions[sub.topic_filter] = sub
                self.tree.add(sub.topic_filter, session.client_id, sub)
            for delivery in saved.deliveries:
                session.deliver(delivery)
            if saved.expires_in is not None:
                session.expiry_timer = loop.call_later(saved.expires_in, self._expire, session)
        if sessions or retained:
            log.info(
                "restored %d persistent sessions (%d queued messages) and %d retained messages",
                len(sessions),
                sum(len(s.deliveries) for s in sessions),
                len(retained),
            )

    def close(self) -> None:
        """Stop all timers; no will is published while the broker shuts down."""
        self.closing = True
        for session in self.sessions.values():
            session.cancel_timers()
