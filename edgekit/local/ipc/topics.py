"""MQTT-style topic names and filters, as local pub/sub and the IoT Core bridge use them.

A filter may use ``+`` for exactly one level and ``#`` (last level only) for any
number of levels, including none: ``a/#`` matches ``a``, ``a/b`` and ``a/b/c``.
Publish topics carry no wildcards (Greengrass also rejects ``*`` there).
"""

from __future__ import annotations

from edgekit.local.ipc.modeled_errors import InvalidArgumentsError

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
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise InvalidArgumentsError(
                f"{field} {topic_filter!r}: '#' must be the whole last level of a filter"
            )
        if "+" in level and level != "+":
            raise InvalidArgumentsError(f"{field} {topic_filter!r}: '+' must be a whole level")
    return topic_filter


def matches(topic_filter: str, topic: str) -> bool:
    """True if the publish ``topic`` matches the (valid) ``topic_filter``."""
    if topic_filter == topic:
        return True
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False  # MQTT: wildcards at the first level do not match $-topics
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    for i, f in enumerate(f_levels):
        if f == "#":
            return True
        if i >= len(t_levels):
            return False
        if f != "+" and f != t_levels[i]:
            return False
    return len(t_levels) == len(f_levels)
