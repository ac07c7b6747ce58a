"""MQTT-style topic names and filters, as local pub/sub and the IoT Core bridge use them.

A filter may use ``+`` for exactly one level and ``#`` (last level only) for any
number of levels, including none: ``a/#`` matches ``a``, ``a/b`` and ``a/b/c``.
Publish topics carry no wildcards (Greengrass also rejects ``*`` there).

The filter rules and matching are the MQTT broker's (:mod:`edgekit.local.mqtt.topics`);
this module adds what IPC checks on top and the IPC error type.
"""

from __future__ import annotations

from edgekit.local.ipc.modeled_errors import InvalidArgumentsError
from edgekit.local.mqtt.topics import matches, topic_filter_error

__all__ = [
    "MAX_TOPIC_BYTES",
    "has_wildcard",
    "matches",
    "validate_filter",
    "validate_publish_topic",
]

MAX_TOPIC_BYTES = 65535


def has_wildcard(topic_filter: str) -> bool:
    return "+" in topic_filter or "#" in topic_filter


def validate_publish_topic(topic: object, field: str = "topic") -> str:
    if not isinstance(topic, str) or not topic:
        raise InvalidArgumentsError(f"{field} is required and must be a non-empty string")
    if "+" in topic or "#" in topic or "*" in topic:
        raise InvalidArgumentsError(
            f"{field} {topic!r}: a publish topic must not contain a wildcard"
        )
    if len(topic.encode("utf-8")) > MAX_TOPIC_BYTES or "\x00" in topic:
        raise InvalidArgumentsError(f"{field} {topic!r} is not a valid MQTT topic")
    return topic


def validate_filter(topic_filter: object, field: str = "topic") -> str:
    """A valid MQTT topic filter, or InvalidArgumentsError naming the field."""
    if not isinstance(topic_filter, str) or not topic_filter:
        raise InvalidArgumentsError(f"{field} is required and must be a non-empty string")
    if len(topic_filter.encode("utf-8")) > MAX_TOPIC_BYTES or "\x00" in topic_filter:
        raise InvalidArgumentsError(f"{field} {topic_filter!r} is not a valid MQTT topic filter")
    problem = topic_filter_error(topic_filter)
    if problem is not None:
        raise InvalidArgumentsError(f"{field} {topic_filter!r}: {problem}")
    return topic_filter
