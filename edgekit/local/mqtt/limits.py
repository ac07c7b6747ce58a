"""The broker's resource limits, in one place so tests and callers can tighten them."""

from __future__ import annotations

from dataclasses import dataclass

NEVER_EXPIRES = 0xFFFF_FFFF  # session expiry interval meaning "keep the session forever"


@dataclass(frozen=True)
class BrokerLimits:
    """Bounds that keep one misbehaving client from hurting the others.

    - ``max_packet_size``: largest packet accepted (fixed header included);
      announced to MQTT 5 clients in CONNACK. Larger packets close the connection.
    - ``max_outgoing_bytes``: unsent bytes a connection may hold in its write
      buffer. Past it, QoS 0 deliveries to that client are dropped and a QoS 1/2
      delivery disconnects the client (its persistent session keeps the message).
    - ``max_inflight``: unacknowledged QoS 1/2 deliveries per client (an MQTT 5
      client's Receive Maximum can lower it).
    - ``max_queued``: QoS 1/2 deliveries a session holds beyond the in-flight
      window. Online, overflowing it disconnects the client (it is not keeping
      up); offline, the oldest queued message is dropped to make room.
    - ``topic_alias_maximum``: topic aliases an MQTT 5 client may set up.
    - ``connect_timeout``: seconds a new connection has to send CONNECT.
    - ``allow_remote``: accept anonymous clients from non-loopback addresses.
    """

    max_packet_size: int = 1 << 20
    max_outgoing_bytes: int = 1 << 20
    max_inflight: int = 256
    max_queued: int = 1000
    topic_alias_maximum: int = 64
    connect_timeout: float = 10.0
    allow_remote: bool = False
