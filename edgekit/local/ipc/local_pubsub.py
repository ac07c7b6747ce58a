"""Local publish/subscribe between the components of one device (SubscribeToTopic/PublishToTopic).

Lives on the IPC server's event loop: no locks, publish is synchronous and hands
each matching subscriber its message through a callback that only queues it.
Receive modes follow Greengrass: RECEIVE_MESSAGES_FROM_OTHERS skips messages the
subscriber's own component published; without a mode, a wildcard filter
defaults to RECEIVE_MESSAGES_FROM_OTHERS and a plain topic to RECEIVE_ALL_MESSAGES.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgekit.local.ipc import topics
from edgekit.local.ipc.modeled_errors import InvalidArgumentsError

RECEIVE_ALL = "RECEIVE_ALL_MESSAGES"
RECEIVE_OTHERS = "RECEIVE_MESSAGES_FROM_OTHERS"

# (topic, kind, message): kind is "json" (message: dict) or "binary" (message: bytes)
Deliver = Callable[[str, str, Any], None]


@dataclass(frozen=True)
class _Subscription:
    key: int
    topic_filter: str
    component: str
    receive_mode: str
    deliver: Deliver


def resolve_receive_mode(topic_filter: str, receive_mode: object) -> str:
    if receive_mode is None:
        return RECEIVE_OTHERS if topics.has_wildcard(topic_filter) else RECEIVE_ALL
    if receive_mode not in (RECEIVE_ALL, RECEIVE_OTHERS):
        raise InvalidArgumentsError(
            f"receiveMode must be {RECEIVE_ALL} or {RECEIVE_OTHERS}, not {receive_mode!r}"
        )
    return str(receive_mode)


class LocalPubSub:
    def __init__(self) -> None:
        self._exact: dict[str, dict[int, _Subscription]] = {}
        self._wildcard: dict[int, _Subscription] = {}
        self._keys = itertools.count(1)

    def subscribe(
        self, topic_filter: str, component: str, receive_mode: str, deliver: Deliver
    ) -> Callable[[], None]:
        """Register a subscriber; returns the function that removes it."""
        sub = _Subscription(next(self._keys), topic_filter, component, receive_mode, deliver)
        if topics.has_wildcard(topic_filter):
            self._wildcard[sub.key] = sub
        else:
            self._exact.setdefault(topic_filter, {})[sub.key] = sub

        def unsubscribe() -> None:
            if topics.has_wildcard(topic_filter):
                self._wildcard.pop(sub.key, None)
            else:
                bucket = self._exact.get(topic_filter)
                if bucket is not None:
                    bucket.pop(sub.key, None)
                    if not bucket:
                        del self._exact[topic_filter]

        return unsubscribe

    def publish(self, topic: str, source_component: str, kind: str, message: Any) -> int:
        """Deliver to every matching subscriber; returns how many got the message."""
        targets = list(self._exact.get(topic, {}).values())
        targets += [s for s in self._wildcard.values() if topics.matches(s.topic_filter, topic)]
        delivered = 0
        for sub in targets:
            if sub.receive_mode == RECEIVE_OTHERS and sub.component == source_component:
                continue
            sub.deliver(topic, kind, message)
            delivered += 1
        return delivered

    @property
    def subscription_count(self) -> int:
        return len(self._wildcard) + sum(len(b) for b in self._exact.values())
