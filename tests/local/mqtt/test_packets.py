"""The broker's packet codec and topic matching, without sockets (fast unit tests)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit.local.mqtt import packets as pk
from edgekit.local.mqtt import properties as props
from edgekit.local.mqtt.topics import (
    SubscriptionTree,
    matches,
    topic_filter_error,
    topic_name_error,
)
from edgekit.local.mqtt.wire import MalformedPacket, ProtocolError, Reader, varint

V4, V5 = pk.MQTT_311, pk.MQTT_5


# ---------------------------------------------------------------- round trips
ROUND_TRIP = [
    pk.Connect("c1", V4, True, 30),
    pk.Connect(
        "c2",
        V4,
        False,
        0,
        "user",
        b"secret",
        pk.Will("status/c2", b"gone", 1, True),
    ),
    pk.Connect(
        "",
        V5,
        True,
        10,
        None,
        b"only-password-is-fine-in-v5",
        pk.Will("w", b"x", 2, False, {"will_delay_interval": 5, "content_type": "text/plain"}),
        {"session_expiry_interval": 60, "receive_maximum": 10, "user_property": [("a", "b")]},
    ),
    pk.Connack(True, 0),
    pk.Publish("a/b", b"payload", 0),
    pk.Publish("a/b", b"", 1, True, True, 7),
    pk.Publish("$aws/things/t/shadow/update", b"{}", 2, False, False, 65535),
    pk.Ack(pk.PUBACK, 1),
    pk.Ack(pk.PUBREC, 2),
    pk.Ack(pk.PUBREL, 3),
    pk.Ack(pk.PUBCOMP, 4),
    pk.Subscribe(5, [("a/+/c", pk.SubscriptionOptions(1)), ("#", pk.SubscriptionOptions(0))]),
    pk.Suback(5, [1, 0, 0x80]),
    pk.Unsubscribe(6, ["a/+/c", "#"]),
    pk.Unsuback(6),
    pk.PingReq(),
    pk.PingResp(),
    pk.Disconnect(),
]

ROUND_TRIP_V5 = [
    pk.Connack(False, 0x87, {"reason_string": "no", "assigned_client_identifier": "x"}),
    pk.Publish(
        "t",
        b"\x00\x01",
        1,
        False,
        False,
        9,
        {
            "payload_format_indicator": 0,
            "message_expiry_interval": 30,
            "topic_alias": 3,
            "response_topic": "reply/here",
            "correlation_data": b"\xff\x00",
            "content_type": "application/octet-stream",
            "user_property": [("k", "v"), ("k", "v2")],
            "subscription_identifier": [1, 268_435_455],
        },
    ),
    pk.Publish("", b"aliased", 0, properties={"topic_alias": 1}),
    pk.Ack(pk.PUBACK, 1, 0x10),
    pk.Ack(pk.PUBREC, 1, 0x80, {"reason_string": "nope"}),
    pk.Subscribe(
        9,
        [("x/#", pk.SubscriptionOptions(2, True, True, 2))],
        {"subscription_identifier": [42]},
    ),
    pk.Suback(9, [2, 0x8F], {"reason_string": "bad filter"}),
    pk.Unsuback(9, [0, 0x11]),
    pk.Disconnect(0x04, {"session_expiry_interval": 0}),
    pk.Disconnect(0x8E),
    pk.Auth(0x18, {"authentication_method": "SCRAM"}),
]


def _pairs() -> list[tuple[pk.Packet, int]]:
    """Every ROUND_TRIP packet at both levels; a CONNECT only at the level it names."""
    pairs: list[tuple[pk.Packet, int]] = []
    for packet in ROUND_TRIP:
        for version in (V4, V5):
            if isinstance(packet, pk.Connect) and packet.protocol_level != version:
                continue
            if isinstance(packet, pk.Unsuback) and version == V5:
                packet = pk.Unsuback(packet.packet_id, [0])  # MQTT 5 UNSUBACK has reason codes
            pairs.append((packet, version))
    return pairs


@pytest.mark.parametrize(
    "packet,version", _pairs(), ids=lambda x: type(x).__name__ if not isinstance(x, int) else str(x)
)
def test_every_packet_round_trips(packet: pk.Packet, version: int) -> None:
    assert pk.decode(pk.encode(packet, version), version) == packet


@pytest.mark.parametrize("packet", ROUND_TRIP_V5, ids=lambda p: type(p).__name__)
def test_mqtt5_packets_round_trip(packet: pk.Packet) -> None:
    assert pk.decode(pk.encode(packet, V5), V5) == packet


def test_known_wire_bytes() -> None:
    # 3.1.1 spec examples: PUBACK, PINGREQ, a CONNACK accepting with session present.
    assert pk.encode(pk.Ack(pk.PUBACK, 10), V4) == b"\x40\x02\x00\x0a"
    assert pk.encode(pk.Ack(pk.PUBREL, 10), V4) == b"\x62\x02\x00\x0a"
    assert pk.encode(pk.PingReq(), V4) == b"\xc0\x00"
    assert pk.encode(pk.Connack(True, 0), V4) == b"\x20\x02\x01\x00"
    # MQTT 5 short forms: PUBACK success without reason code, DISCONNECT 0 with length 0.
    assert pk.encode(pk.Ack(pk.PUBACK, 10), V5) == b"\x40\x02\x00\x0a"
    assert pk.encode(pk.Disconnect(), V5) == b"\xe0\x00"
    assert pk.decode(b"\x40\x03\x00\x0a\x10", V5) == pk.Ack(pk.PUBACK, 10, 0x10)


@pytest.mark.parametrize(
    "value,encoded",
    [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16_383, b"\xff\x7f"),
     (2_097_152, b"\x80\x80\x80\x01"), (268_435_455, b"\xff\xff\xff\x7f")],
)  # fmt: skip
def test_variable_byte_integer(value: int, encoded: bytes) -> None:
    assert varint(value) == encoded
    assert Reader(encoded).varint() == value


# ---------------------------------------------------------------- strict decoding
MALFORMED = {
    "reserved type 0": (b"\x00\x00", V4),
    "PUBACK flags": (b"\x41\x02\x00\x01", V4),
    "PUBREL without flag 2": (b"\x60\x02\x00\x01", V4),
    "SUBSCRIBE without flag 2": (b"\x80\x06\x00\x01\x00\x01a\x00", V4),
    "QoS 3 publish": (b"\x36\x05\x00\x01a\x00\x01", V4),
    "DUP on QoS 0": (b"\x38\x03\x00\x01a", V4),
    "packet id 0": (b"\x32\x05\x00\x01a\x00\x00", V4),
    "truncated topic": (b"\x30\x03\x00\x05a", V4),
    "wildcard in topic": (b"\x30\x05\x00\x03a/#", V4),
    "empty topic in 3.1.1": (b"\x30\x02\x00\x00", V4),
    "empty topic without alias": (b"\x30\x03\x00\x00\x00", V5),
    "null character in topic": (b"\x30\x03\x00\x01\x00", V4),
    "invalid UTF-8": (b"\x30\x03\x00\x01\xff", V4),
    "UTF-16 surrogate": (b"\x30\x05\x00\x03\xed\xa0\x80", V4),
    "remaining length mismatch": (b"\x40\x03\x00\x01", V4),
    "non-minimal length": (b"\xc0\x80\x00", V4),
    "PINGREQ with body": (b"\xc0\x01\x00", V4),
    "SUBSCRIBE without filters": (b"\x82\x02\x00\x01", V4),
    "3.1.1 subscription reserved bits": (b"\x82\x06\x00\x01\x00\x01a\x04", V4),
    "retain handling 3": (b"\x82\x07\x00\x01\x00\x00\x01a\x30", V5),
    "unknown property": (b"\x30\x06\x00\x01a\x02\x07\x00", V5),
    "property not allowed in packet": (b"\x30\x07\x00\x01a\x02\x11\x00\x00", V5),
    "duplicate property": (b"\x30\x08\x00\x01a\x04\x01\x00\x01\x01", V5),
    "property length beyond packet": (b"\x30\x05\x00\x01a\x09\x01", V5),
    "topic alias 0": (b"\x30\x07\x00\x01a\x03\x23\x00\x00", V5),
    "two subscription identifiers": (b"\x82\x0a\x00\x01\x04\x0b\x01\x0b\x02\x00\x01a\x00", V5),
    "AUTH in 3.1.1": (b"\xf0\x00", V4),
    "CONNECT reserved flag": (b"\x10\x0d\x00\x04MQTT\x04\x03\x00\x00\x00\x01c", V4),
    "will QoS without will flag": (b"\x10\x0d\x00\x04MQTT\x04\x0a\x00\x00\x00\x01c", V4),
    "password without user in 3.1.1": (
        b"\x10\x10\x00\x04MQTT\x04\x42\x00\x00\x00\x01c\x00\x01p",
        V4,
    ),
    "wrong protocol name": (b"\x10\x0d\x00\x04MQTX\x04\x02\x00\x00\x00\x01c", V4),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=str)
def test_malformed_packets_raise_protocol_error(case: str) -> None:
    data, version = MALFORMED[case]
    with pytest.raises(ProtocolError):
        pk.decode(data, version)


def test_unsupported_protocol_level_is_its_own_error() -> None:
    connect_v3 = b"\x10\x0f\x00\x06MQIsdp\x03\x02\x00\x00\x00\x01c"
    with pytest.raises(pk.UnsupportedProtocolLevel) as caught:
        pk.decode(connect_v3, V4)
    assert caught.value.level == 3


def test_malformed_is_reason_0x81_and_protocol_error_0x82() -> None:
    with pytest.raises(MalformedPacket) as bad:
        pk.decode(b"\x41\x02\x00\x01", V4)
    assert bad.value.reason_code == 0x81
    with pytest.raises(ProtocolError) as dup:
        props.decode(Reader(b"\x04\x01\x00\x01\x01"), props.PUBLISH)
    assert dup.value.reason_code == 0x82


# ---------------------------------------------------------------- fuzzing the decoder
_VALID = (
    [pk.encode(p, V4) for p in ROUND_TRIP if not isinstance(p, pk.Connect)]
    + [pk.encode(p, p.protocol_level) for p in ROUND_TRIP if isinstance(p, pk.Connect)]
    + [pk.encode(p, V5) for p in ROUND_TRIP_V5]
)


def _decode_or_protocol_error(data: bytes, version: int) -> None:
    with contextlib.suppress(ProtocolError):
        pk.decode(data, version)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=64), version=st.sampled_from([V4, V5]))
def test_fuzz_random_bytes_only_raise_protocol_error(data: bytes, version: int) -> None:
    _decode_or_protocol_error(data, version)


@settings(max_examples=400, deadline=None)
@given(
    index=st.integers(0, len(_VALID) - 1),
    edits=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=4),
    version=st.sampled_from([V4, V5]),
)
def test_fuzz_mutated_packets_only_raise_protocol_error(
    index: int, edits: list[tuple[int, int]], version: int
) -> None:
    data = bytearray(_VALID[index])
    for pos, value in edits:
        data[pos % len(data)] = value
    _decode_or_protocol_error(bytes(data), version)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=48), first=st.integers(0, 255), version=st.sampled_from([V4, V5]))
def test_fuzz_bodies_behind_every_header_byte(body: bytes, first: int, version: int) -> None:
    with contextlib.suppress(ProtocolError):
        pk.decode_body(first, body, version)


_topic_text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00+#/"))


@settings(max_examples=200, deadline=None)
@given(
    topic=st.lists(_topic_text, min_size=1, max_size=5).map("/".join).filter(bool),
    payload=st.binary(max_size=300),
    qos=st.integers(0, 2),
    retain=st.booleans(),
    user=st.lists(st.tuples(_topic_text, _topic_text), max_size=3),
)
def test_publish_round_trips_for_any_topic_and_payload(
    topic: str, payload: bytes, qos: int, retain: bool, user: list[tuple[str, str]]
) -> None:
    packet = pk.Publish(topic, payload, qos, retain, False, 1 if qos else 0)
    assert pk.decode(pk.encode(packet, V4), V4) == packet
    packet.properties = {"user_property": user} if user else {}
    assert pk.decode(pk.encode(packet, V5), V5) == packet


# ---------------------------------------------------------------- topics
@pytest.mark.parametrize(
    "topic_filter,topic,expected",
    [
        ("sport/tennis/player1/#", "sport/tennis/player1", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
        ("sport/#", "sport", True),
        ("#", "anything/at/all", True),
        ("sport/tennis/+", "sport/tennis/player1", True),
        ("sport/tennis/+", "sport/tennis/player1/ranking", False),
        ("sport/+", "sport", False),
        ("sport/+", "sport/", True),
        ("+/+", "/finance", True),
        ("/+", "/finance", True),
        ("+", "/finance", False),
        ("#", "$SYS/broker", False),
        ("+/monitor/Clients", "$SYS/monitor/Clients", False),
        ("$SYS/#", "$SYS/monitor/Clients", True),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
        ("#", "$aws/things/t/shadow/update", False),
        ("$aws/things/+/shadow/#", "$aws/things/t/shadow/update", True),
        ("a/b", "a/b", True),
        ("a/b", "a/B", False),
    ],
)
def test_filter_matching_follows_the_spec(topic_filter: str, topic: str, expected: bool) -> None:
    assert matches(topic_filter, topic) is expected
    tree: SubscriptionTree[int] = SubscriptionTree()
    tree.add(topic_filter, "c", 1)
    assert (list(tree.match(topic)) == [("c", 1)]) is expected


@pytest.mark.parametrize("bad", ["", "a/#/b", "a#", "a/b+", "+a", "##"])
def test_invalid_filters_are_named(bad: str) -> None:
    assert topic_filter_error(bad)


def test_topic_names_reject_wildcards_but_allow_dollar() -> None:
    assert topic_name_error("$aws/things/x") is None
    assert topic_name_error("a/+") and topic_name_error("#") and topic_name_error("")


_level = st.sampled_from(["a", "b", "$x", ""])


@settings(max_examples=200, deadline=None)
@given(
    filters=st.lists(
        st.lists(st.sampled_from(["a", "b", "+", "$x", ""]), min_size=1, max_size=3).flatmap(
            lambda levels: st.sampled_from([levels, levels + ["#"]])
        ),
        max_size=8,
    ),
    topics=st.lists(st.lists(_level, min_size=1, max_size=4), min_size=1, max_size=5),
)
def test_tree_agrees_with_filter_matching(
    filters: list[list[str]], topics: list[list[str]]
) -> None:
    tree: SubscriptionTree[str] = SubscriptionTree()
    names = ["/".join(f) for f in filters]
    for i, name in enumerate(names):
        tree.add(name, f"c{i}", name)
    for levels in topics:
        topic = "/".join(levels)
        if topic_name_error(topic):
            continue
        got = sorted(tree.match(topic))
        want = sorted((f"c{i}", n) for i, n in enumerate(names) if matches(n, topic))
        assert got == want
    for i, name in enumerate(names):
        assert tree.remove(name, f"c{i}")
    assert len(tree) == 0
    assert not tree._root.children  # pruned


def test_tree_replaces_a_clients_subscription() -> None:
    tree: SubscriptionTree[int] = SubscriptionTree()
    assert tree.add("a/#", "c", 0) is False
    assert tree.add("a/#", "c", 1) is True
    assert list(tree.match("a/b")) == [("c", 1)]
    assert tree.remove("a/#", "c") and not tree.remove("a/#", "c")
