"""The health shadow update: each health message, summarized, into a named device shadow.

With ``HealthShadow`` set (default ``edgekit-health``), every health message the app
publishes is followed by an update of that named shadow of the device's thing:
``{"state": {"reported": R}, "clientToken": ...}`` on
``$aws/things/<thing>/shadow/name/<HealthShadow>/update`` through IPC PublishToIoTCore
(QoS 1), where R is :func:`edgekit.schemas.health_shadow.reported_state` of the message.
AWS IoT Core's Device Shadow service keeps it, so ``GetThingShadow`` (a state machine,
a script) reads what the device reported last without subscribing to MQTT.

Not every health message becomes an update (IoT Core bills each shadow operation, and a
device sends a health message every few seconds): :class:`HealthShadowReporter` updates
the shadow when the summary changes in what a reader acts on (the model, its package, key
or state, the health state or problem), while the results count is still small (at most
:data:`EARLY_RESULTS`: the counts a proof waits for), and otherwise at most every
``HealthShadowInterval`` seconds (default 300; 0 updates with every health message). So a
new package, a failure and the first results reach the shadow within one health interval;
a steady device costs one update per ``HealthShadowInterval``.

A failed update is counted in the health's ``publish_errors.health`` (like a health
message that could not be published: not retried, the next one replaces it) and logged;
it never stops the health loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from edgekit.edge.health import Health
from edgekit.schemas.health_shadow import (
    MAX_STATE_BYTES,
    reported_state,
    update_document,
    update_topic,
)

log = logging.getLogger(__name__)


#: Results counts up to this one update the shadow as soon as they change.
EARLY_RESULTS = 100
#: Seconds between two updates of an unchanged summary (``HealthShadowInterval``).
DEFAULT_INTERVAL = 300.0
# What changes with every message and alone does not make an update due.
_VOLATILE = frozenset({"timestamp", "results_published"})


def shadow_update(
    thing_name: str,
    shadow_name: str,
    health_message: Mapping[str, Any],
    reported: dict[str, Any] | None = None,
) -> tuple[str, bytes]:
    """The topic and payload of the shadow update for one health message (``reported``:
    its summary, when the caller already made it).

    The clientToken is the message's ``sequence`` when it has one (it comes back in
    ``update/accepted``); a document over the shadow state limit keeps the keys and
    drops the problem text (it cannot otherwise be that large).
    """
    reported = dict(reported_state(health_message) if reported is None else reported)
    sequence = health_message.get("sequence")
    token = None if sequence is None else f"health-{sequence}"
    payload = update_document(reported, token)
    if len(payload) > MAX_STATE_BYTES // 2:
        reported["problem"] = (reported["problem"] or "")[:200] or None
        payload = update_document(reported, token)
    return update_topic(thing_name, shadow_name), payload


def publish_health_shadow(
    ipc: Any,
    health: Health,
    thing_name: str,
    shadow_name: str,
    health_message: Mapping[str, Any],
    reported: dict[str, Any] | None = None,
) -> bool:
    """Publish the shadow update of ``health_message``; False (counted, logged) if it failed."""
    topic, payload = shadow_update(thing_name, shadow_name, health_message, reported)
    try:
        ipc.publish_to_iot_core(topic, payload, qos=1)
    except Exception as exc:  # any IPC failure: counted and reported, never raised
        health.health_publish_errors += 1  # reported in the next health message
        log.warning(
            "health shadow not updated on %s (%d health publish errors so far): %r",
            topic,
            health.health_publish_errors,
            exc,
        )
        return False
    return True


class HealthShadowReporter:
    """Publishes a health message's summary to the shadow when an update is due (module
    docstring); remembers the last summary the shadow accepted from this app."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: dict[str, Any] | None = None
        self._last_shadow: str | None = None
        self._sent_at = 0.0
        self.skipped = 0
        """Health messages that were not due for an update (the shadow kept the last one)."""

    def due(self, reported: Mapping[str, Any], shadow_name: str, interval: float) -> bool:
        last = self._last
        if last is None or shadow_name != self._last_shadow:
            return True
        if interval <= 0 or self._clock() - self._sent_at >= interval:
            return True
        changed = {key for key in reported if reported[key] != last.get(key)}
        if changed - _VOLATILE:
            return True
        count = reported.get("results_published")
        return (
            "results_published" in changed and isinstance(count, int) and count <= (EARLY_RESULTS)
        )

    def report(
        self,
        ipc: Any,
        health: Health,
        thing_name: str,
        shadow_name: str,
        interval: float,
        health_message: Mapping[str, Any],
    ) -> bool | None:
        """Update the shadow if due: True (published), False (failed: counted, logged, due
        again next time) or None (not due, or no ``shadow_name``: the shadow is off)."""
        if not shadow_name:
            return None
        reported = reported_state(health_message)
        if not self.due(reported, shadow_name, interval):
            self.skipped += 1
            return None
        if not publish_health_shadow(
            ipc, health, thing_name, shadow_name, health_message, reported
        ):
            return False
        self._last, self._last_shadow, self._sent_at = reported, shadow_name, self._clock()
        return True


__all__ = [
    "DEFAULT_INTERVAL",
    "EARLY_RESULTS",
    "HealthShadowReporter",
    "publish_health_shadow",
    "shadow_update",
]
