"""The broker's resource limits, in one place so tests and callers can tighten them."""

from __future__ import annotations

from dataclasses import dataclass

NEVER_EXPIRES = 0xFFFF_FFFF  # session expiry interval meaning "keep the session forever"
# AWS IoT Core keeps a persistent session for 1 hour after its client disconnects, by
# default (https://docs.aws.amazon.com/iot/latest/developerguide/mqtt-persistent-sessions.html).
DEFAULT_SESSION_EXPIRY_S = 3600


@dataclass(frozen=True)
class BrokerLimits:
    """Bounds that keep one misbehaving client from hurting the others.

    - ``max_packet_size``: largest packet accepted (fixed header included);
      announced to MQTT 5 clients in CONNACK. Larger packets close the connection.
    - ``max_outgoing_bytes``: unsent bytes a connection may hold in its write
      buffer. Past it, QoS 0 deliveries to that client are dropped and a QoS 1/2
      delivery disconnects the client (its persistent session keeps the message);
      a session draining its queue or retained messages waits for the buffer instead.
    - ``max_inflight`` and ``max_inflight_bytes``: unacknowledged QoS 1/2 deliveries
      per client (an MQTT 5 client's Receive Maximum can lower the count), and their
      bytes (one delivery is always allowed); the rest wait in the session's queue.
    - ``max_queued`` and ``max_queued_bytes``: QoS 1/2 deliveries (count, and bytes
      of topic + payload) a session holds beyond the in-flight window. Online,
      overflowing either disconnects the client (it is not keeping up); offline,
      the oldest queued messages are dropped to make room (counted and logged).
    - ``max_retained_bytes``: topic + payload bytes of all retained messages. A
      retained message that does not fit is delivered but not retained (counted).
      Retained messages a new subscription matches are delivered with flow control
      (in-flight window, write buffer) and never count against ``max_queued``.
    - ``session_expiry``: seconds a persistent session outlives its connection:
      an MQTT 3.1.1 clean-session-0 session, and the most an MQTT 5 client's
      Session Expiry Interval may ask for (CONNACK says so when it is lowered).
      ``NEVER_EXPIRES`` keeps sessions until the broker stops.
    - ``max_sessions``: sessions (online and offline) the broker keeps. A new
      client over it takes the place of the offline session idle longest; if
      every session is online, it is refused (CONNACK 0x97 quota exceeded for
      MQTT 5, 3 server unavailable for 3.1.1).
    - ``max_subscriptions``: topic filters one session may subscribe to; a SUBSCRIBE
      past it gets failure reason codes for the new filters (0x97 quota exceeded in
      MQTT 5, 0x80 in 3.1.1), counted.
    - ``topic_alias_maximum``: topic aliases an MQTT 5 client may set up.
    - ``connect_timeout``: seconds a new connection has to send CONNECT.
    - ``allow_remote``: accept anonymous clients from non-loopback addresses.
    """

    max_packet_size: int = 1 << 20
    max_outgoing_bytes: int = 1 << 20
    max_inflight: int = 256
    max_inflight_bytes: int = 16 << 20
    max_queued: int = 1000
    max_queued_bytes: int = 16 << 20
    max_retained_bytes: int = 64 << 20
    session_expiry: int = DEFAULT_SESSION_EXPIRY_S
    max_sessions: int = 10_000
    max_subscriptions: int = 1000
    topic_alias_maximum: int = 64
    connect_timeout: float = 10.0
    allow_remote: bool = False
