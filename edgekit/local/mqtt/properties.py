"""MQTT 5.0 properties (spec 2.2.2): decode and encode with per-packet validation.

Properties are kept as a plain dict keyed by snake_case name
(``{"session_expiry_interval": 60, "user_property": [("k", "v")]}``). Every
identifier of the spec is parsed by its data type, so properties the broker
does not act on (content type, correlation data, ...) are carried through
intact. An identifier the spec does not define cannot be skipped (its length
is unknown), so it makes the packet malformed, as do a property that is not
allowed in the packet at hand, a repeated single-valued property, and a value
out of its range.
"""

from __future__ import annotations

from typing import Any

from edgekit.local.mqtt.wire import (
    MAX_VARIABLE_INT,
    MalformedPacket,
    ProtocolError,
    Reader,
    binary,
    u16,
    u32,
    utf8,
    varint,
)

Properties = dict[str, Any]

# Where a property may appear. WILL stands for the will properties inside CONNECT.
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH, WILL = 8, 9, 10, 11, 14, 15, 99

_ACKS = frozenset({PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK})
_MESSAGE = frozenset({PUBLISH, WILL})

# id: (name, type, packets). Types: byte, u16, u32, varint, utf8, binary, pair.
_TABLE: dict[int, tuple[str, str, frozenset[int]]] = {
    0x01: ("payload_format_indicator", "byte", _MESSAGE),
    0x02: ("message_expiry_interval", "u32", _MESSAGE),
    0x03: ("content_type", "utf8", _MESSAGE),
    0x08: ("response_topic", "utf8", _MESSAGE),
    0x09: ("correlation_data", "binary", _MESSAGE),
    0x0B: ("subscription_identifier", "varint", frozenset({PUBLISH, SUBSCRIBE})),
    0x11: ("session_expiry_interval", "u32", frozenset({CONNECT, CONNACK, DISCONNECT})),
    0x12: ("assigned_client_identifier", "utf8", frozenset({CONNACK})),
    0x13: ("server_keep_alive", "u16", frozenset({CONNACK})),
    0x15: ("authentication_method", "utf8", frozenset({CONNECT, CONNACK, AUTH})),
    0x16: ("authentication_data", "binary", frozenset({CONNECT, CONNACK, AUTH})),
    0x17: ("request_problem_information", "byte", frozenset({CONNECT})),
    0x18: ("will_delay_interval", "u32", frozenset({WILL})),
    0x19: ("request_response_information", "byte", frozenset({CONNECT})),
    0x1A: ("response_information", "utf8", frozenset({CONNACK})),
    0x1C: ("server_reference", "utf8", frozenset({CONNACK, DISCONNECT})),
    0x1F: ("reason_string", "utf8", _ACKS | {CONNACK, DISCONNECT, AUTH}),
    0x21: ("receive_maximum", "u16", frozenset({CONNECT, CONNACK})),
    0x22: ("topic_alias_maximum", "u16", frozenset({CONNECT, CONNACK})),
    0x23: ("topic_alias", "u16", frozenset({PUBLISH})),
    0x24: ("maximum_qos", "byte", frozenset({CONNACK})),
    0x25: ("retain_available", "byte", frozenset({CONNACK})),
    0x26: ("user_property", "pair", frozenset(range(1, 16)) | {WILL}),
    0x27: ("maximum_packet_size", "u32", frozenset({CONNECT, CONNACK})),
    0x28: ("wildcard_subscription_available", "byte", frozenset({CONNACK})),
    0x29: ("subscription_identifier_available", "byte", frozenset({CONNACK})),
    0x2A: ("shared_subscription_available", "byte", frozenset({CONNACK})),
}
_IDS = {name: (pid, kind) for pid, (name, kind, _) in _TABLE.items()}

# Repeatable properties are lists; subscription_identifier repeats only server -> client.
_MULTI = {"user_property", "subscription_identifier"}
_BOOLEAN = {
    "payload_format_indicator",
    "request_problem_information",
    "request_response_information",
    "maximum_qos",
    "retain_available",
    "wildcard_subscription_available",
    "subscription_identifier_available",
    "shared_subscription_available",
}
_NONZERO = {"receive_maximum", "maximum_packet_size", "topic_alias", "subscription_identifier"}


def decode(reader: Reader, packet: int) -> Properties:
    """Read a property length and the properties after it, valid for ``packet``."""
    length = reader.varint("property length")
    if length > reader.remaining:
        raise MalformedPacket(f"property length {length} exceeds the {reader.remaining} bytes left")
    sub = Reader(reader.data, reader.pos, reader.pos + length)
    reader.pos += length
    props: Properties = {}
    while sub.remaining:
        pid = sub.varint("property identifier")
        entry = _TABLE.get(pid)
        if entry is None:
            raise MalformedPacket(f"unknown property identifier 0x{pid:02x}")
        name, kind, allowed = entry
        if packet not in allowed:
            raise MalformedPacket(f"property {name} (0x{pid:02x}) is not allowed here")
        value = _read(sub, kind, name)
        if name in _BOOLEAN and value not in (0, 1):
            raise ProtocolError(f"property {name} must be 0 or 1, got {value}")
        if name in _NONZERO and value == 0:
            raise ProtocolError(f"property {name} must not be 0")
        if name in _MULTI:
            if name == "subscription_identifier" and packet == SUBSCRIBE and name in props:
                raise ProtocolError("SUBSCRIBE carries more than one subscription identifier")
            props.setdefault(name, []).append(value)
        elif name in props:
            raise ProtocolError(f"property {name} appears more than once")
        else:
            props[name] = value
    return props


def _read(reader: Reader, kind: str, name: str) -> Any:
    if kind == "byte":
        return reader.u8(name)
    if kind == "u16":
        return reader.u16(name)
    if kind == "u32":
        return reader.u32(name)
    if kind == "varint":
        return reader.varint(name)
    if kind == "utf8":
        return reader.utf8(name)
    if kind == "binary":
        return reader.binary(name)
    return (reader.utf8(f"{name} key"), reader.utf8(f"{name} value"))


def encode(props: Properties | None) -> bytes:
    """Property length plus properties; ``None`` or ``{}`` encodes as a single zero byte."""
    if not props:
        return b"\x00"
    body = bytearray()
    for name, value in props.items():
        try:
            pid, kind = _IDS[name]
        except KeyError:
            raise ValueError(f"unknown MQTT 5 property {name!r}") from None
        values = value if name in _MULTI else [value]
        for item in values:
            body += varint(pid)
            body += _write(kind, item)
    return varint(len(body)) + bytes(body)


def _write(kind: str, value: Any) -> bytes:
    if kind == "byte":
        return bytes([value])
    if kind == "u16":
        return u16(value)
    if kind == "u32":
        return u32(value)
    if kind == "varint":
        if not 1 <= value <= MAX_VARIABLE_INT:
            raise ValueError(f"variable byte integer {value} out of range")
        return varint(value)
    if kind == "utf8":
        return utf8(value)
    if kind == "binary":
        return binary(value)
    key, val = value
    return utf8(key) + utf8(val)
