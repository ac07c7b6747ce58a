"""The health shadow update: each health message, summarized, into a named device shadow.

With ``HealthShadow`` set (default ``edgekit-health``), every health message the app
publishes is followed by an update of that named shadow of the device's thing:
``{"state": {"reported": R}, "clientToken": ...}`` on
``$aws/things/<thing>/shadow/name/<HealthShadow>/update`` through IPC PublishToIoTCore
(QoS 1), where R is :func:`edgekit.schemas.health_shadow.reported_state` of the message.
AWS IoT Core's Device Shadow service keeps it, so ``GetThingShadow`` (a state machine,
a script) reads what the device reported last without subscribing to MQTT.

A failed update is counted in the health's ``publish_errors.health`` (like a health
message that could not be published: not retried, the next one replaces it) and logged;
it never stops the health loop.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from edgekit.edge.health import Health
from edgekit.schemas.health_shadow import (
    MAX_STATE_BYTES,
    reported_state,
    update_document,
    update_topic,
)

log = logging.getLogger(__name__)


def shadow_update(
    thing_name: str, shadow_name: str, health_message: Mapping[str, Any]
) -> tuple[str, bytes]:
    """The topic and payload of the shadow update for one health message.

    The clientToken is the message's ``sequence`` when it has one (it comes back in
    ``update/accepted``); a document over the shadow state limit keeps the keys and
    drops the problem text (it cannot otherwise be that large).
    """
    reported = reported_state(health_message)
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
) -> bool:
    """Publish the shadow update of ``health_message``; False (counted, logged) if it failed."""
    topic, payload = shadow_update(thing_name, shadow_name, health_message)
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


__all__ = ["publish_health_shadow", "shadow_update"]
