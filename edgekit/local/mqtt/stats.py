"""The broker's counters: every message or session it drops or refuses is counted here.

One `BrokerStats` per broker, owned by its `Router` and updated on the broker's
loop thread; `Broker.stats()` reads a snapshot (with the current sizes of the
sessions, queues and retained store) as a plain dict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class BrokerStats:
    queued_dropped: int = 0  # QoS 1/2 deliveries dropped from a full session queue
    qos0_dropped: int = 0  # QoS 0 deliveries dropped for a full write buffer
    oversize_skipped: int = 0  # deliveries over a client's Maximum Packet Size
    retained_refused: int = 0  # retained messages not kept: the store is full
    sessions_expired: int = 0
    sessions_evicted: int = 0  # offline sessions ended to make room (max_sessions)
    sessions_refused: int = 0  # CONNECTs refused: max_sessions, all online
    subscriptions_refused: int = 0  # topic filters over max_subscriptions
    overflow_disconnects: int = 0  # clients disconnected for not keeping up

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
