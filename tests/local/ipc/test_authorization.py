"""accessControl policy matching and MQTT topic rules (unit tests, no server)."""

from __future__ import annotations

import pytest

from edgekit.local.ipc import topics
from edgekit.local.ipc.authorization import (
    MQTTPROXY_SERVICE,
    PUBSUB_SERVICE,
    is_authorized,
    resource_matches,
)
from edgekit.local.ipc.local_pubsub import LocalPubSub, resolve_receive_mode
from edgekit.local.ipc.modeled_errors import InvalidArgumentsError

PUB = "aws.greengrass#PublishToTopic"
SUB = "aws.greengrass#SubscribeToTopic"
IOT_PUB = "aws.greengrass#PublishToIoTCore"
IOT_SUB = "aws.greengrass#SubscribeToIoTCore"


def _acl(service: str, operations: list[str], resources: list[str]) -> dict:
    return {
        service: {"com.example.App:policy:1": {"operations": operations, "resources": resources}}
    }


def test_no_policy_means_no_access() -> None:
    assert not is_authorized({}, PUBSUB_SERVICE, PUB, "a")
    assert not is_authorized(None, PUBSUB_SERVICE, PUB, "a")
    acl = _acl(MQTTPROXY_SERVICE, ["*"], ["*"])
    assert not is_authorized(acl, PUBSUB_SERVICE, PUB, "a")  # other service


def test_operations_list_and_star() -> None:
    acl = _acl(PUBSUB_SERVICE, [PUB], ["t"])
    assert is_authorized(acl, PUBSUB_SERVICE, PUB, "t")
    assert not is_authorized(acl, PUBSUB_SERVICE, SUB, "t")
    acl = _acl(PUBSUB_SERVICE, ["*"], ["t"])
    assert is_authorized(acl, PUBSUB_SERVICE, SUB, "t")


def test_several_policies_any_one_allows() -> None:
    acl = {
        PUBSUB_SERVICE: {
            "p1": {"operations": [PUB], "resources": ["out/x"]},
            "p2": {"operations": [SUB], "resources": ["in/#"]},
            "broken": "not a policy",
        }
    }
    assert is_authorized(acl, PUBSUB_SERVICE, PUB, "out/x")
    assert is_authorized(acl, PUBSUB_SERVICE, SUB, "in/#")
    assert not is_authorized(acl, PUBSUB_SERVICE, SUB, "out/x")


@pytest.mark.parametrize(
    ("pattern", "resource", "allowed"),
    [
        ("*", "anything/at/all", True),
        ("a/*", "a/b/c", True),  # '*' spans levels
        ("a/*/c", "a/b/x/c", True),
        ("a/*", "b/a", False),
        ("sensor*", "sensor-12", True),
        ("a/#", "a/#", True),  # MQTT wildcards are literal for local pub/sub
        ("a/#", "a/b", False),
        ("a/+", "a/b", False),
        ("a/+", "a/+", True),
        ("exact", "exact", True),
        ("exact", "exact/more", False),
    ],
)
def test_pubsub_resources_are_globs(pattern: str, resource: str, allowed: bool) -> None:
    assert resource_matches(pattern, resource, mqtt_style=False) is allowed
    acl = _acl(PUBSUB_SERVICE, [SUB], [pattern])
    assert is_authorized(acl, PUBSUB_SERVICE, SUB, resource) is allowed


@pytest.mark.parametrize(
    ("pattern", "resource", "allowed"),
    [
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("a/#", "a/+", True),
        ("a/#", "a/#", True),
        ("a/#", "ab", False),
        ("#", "x/y", True),
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/+/c", True),
        ("a/+/c", "a/b/d", False),
        ("a/+/c", "a/b/x/c", False),
        ("a/+", "a/#", False),  # narrower resource never allows a wider filter
        ("a/+", "a", False),
        ("+", "a", True),
        ("+", "a/b", False),
        ("a/*", "a/b/c", True),
        ("a/b", "a/b", True),
        ("a/b", "a/+", False),
        ("a#", "a#", True),  # '#' not a whole level: literal
        ("a#", "ab", False),
    ],
)
def test_mqttproxy_resources_are_topic_filters(pattern: str, resource: str, allowed: bool) -> None:
    assert resource_matches(pattern, resource, mqtt_style=True) is allowed
    acl = _acl(MQTTPROXY_SERVICE, [IOT_SUB, IOT_PUB], [pattern])
    assert is_authorized(acl, MQTTPROXY_SERVICE, IOT_SUB, resource) is allowed


def test_thing_name_policy_variable() -> None:
    acl = _acl(MQTTPROXY_SERVICE, [IOT_PUB], ["things/${iot:thingName}/results"])
    assert is_authorized(acl, MQTTPROXY_SERVICE, IOT_PUB, "things/dev1/results", thing_name="dev1")
    assert not is_authorized(
        acl, MQTTPROXY_SERVICE, IOT_PUB, "things/dev2/results", thing_name="dev1"
    )


def test_a_single_string_is_accepted_where_a_list_is_expected() -> None:
    acl = {PUBSUB_SERVICE: {"p": {"operations": PUB, "resources": "t"}}}
    assert is_authorized(acl, PUBSUB_SERVICE, PUB, "t")


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matched"),
    [
        ("a/b", "a/b", True),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/+", "a", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("#", "a/b", True),
        ("+/b", "a/b", True),
        ("+/+", "/b", True),
        ("#", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
    ],
)
def test_topic_filter_matching(topic_filter: str, topic: str, matched: bool) -> None:
    assert topics.matches(topic_filter, topic) is matched


@pytest.mark.parametrize("bad", ["", "a/#/b", "a/b#", "a+/b", None, 3])
def test_invalid_filters(bad: object) -> None:
    with pytest.raises(InvalidArgumentsError):
        topics.validate_filter(bad)


@pytest.mark.parametrize("bad", ["", "a/+", "a/#", "a*", None])
def test_invalid_publish_topics(bad: object) -> None:
    with pytest.raises(InvalidArgumentsError):
        topics.validate_publish_topic(bad)


def test_receive_mode_defaults_follow_greengrass() -> None:
    assert resolve_receive_mode("a/b", None) == "RECEIVE_ALL_MESSAGES"
    assert resolve_receive_mode("a/#", None) == "RECEIVE_MESSAGES_FROM_OTHERS"
    with pytest.raises(InvalidArgumentsError, match="receiveMode"):
        resolve_receive_mode("a", "SOMETIMES")


def test_local_pubsub_routing_and_receive_modes() -> None:
    bus = LocalPubSub()
    got: dict[str, list[str]] = {"all": [], "others": [], "wild": []}
    unsub_all = bus.subscribe(
        "t/1", "A", "RECEIVE_ALL_MESSAGES", lambda t, k, m: got["all"].append(t)
    )
    bus.subscribe(
        "t/1", "A", "RECEIVE_MESSAGES_FROM_OTHERS", lambda t, k, m: got["others"].append(t)
    )
    bus.subscribe("t/+", "B", "RECEIVE_ALL_MESSAGES", lambda t, k, m: got["wild"].append(t))
    assert bus.publish("t/1", "A", "json", {}) == 2  # 'others' skips A's own message
    assert bus.publish("t/1", "C", "json", {}) == 3
    assert bus.publish("t/2", "C", "binary", b"") == 1
    unsub_all()
    assert bus.publish("t/1", "C", "json", {}) == 2
    assert got == {
        "all": ["t/1", "t/1"],
        "others": ["t/1", "t/1"],
        "wild": ["t/1", "t/1", "t/2", "t/1"],
    }
    assert bus.subscription_count == 2
