"""The MQTT 3.1.1 (protocol level 4) and 5.0 (level 5) packet codec.

`decode_body` turns one packet's fixed-header byte and body into a dataclass;
`encode` does the reverse for either version. Decoding is strict: reserved
flag bits, lengths, UTF-8, packet identifiers, QoS values and property
placement are all checked, and anything wrong raises `ProtocolError` (or its
subclass `MalformedPacket`) and nothing else. The codec is symmetric (client
packets encode too), which the tests and `mqtt_ping` use.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from edgekit.local.mqtt import properties as P
from edgekit.local.mqtt.properties import Properties
from edgekit.local.mqtt.topics import topic_name_error
from edgekit.local.mqtt.wire import (
    MAX_VARIABLE_INT,
    PACKET_TOO_LARGE,
    MalformedPacket,
    ProtocolError,
    Reader,
    binary,
    decode_varint,
    u16,
    utf8,
    varint,
)

MQTT_311 = 4
MQTT_5 = 5

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)

NAMES = {
    CONNECT: "CONNECT",
    CONNACK: "CONNACK",
    PUBLISH: "PUBLISH",
    PUBACK: "PUBACK",
    PUBREC: "PUBREC",
    PUBREL: "PUBREL",
    PUBCOMP: "PUBCOMP",
    SUBSCRIBE: "SUBSCRIBE",
    SUBACK: "SUBACK",
    UNSUBSCRIBE: "UNSUBSCRIBE",
    UNSUBACK: "UNSUBACK",
    PINGREQ: "PINGREQ",
    PINGRESP: "PINGRESP",
    DISCONNECT: "DISCONNECT",
    AUTH: "AUTH",
}
# Fixed-header flag nibble each type must carry (PUBLISH's flags are its own).
_FLAGS = {t: 0 for t in NAMES} | {PUBREL: 2, SUBSCRIBE: 2, UNSUBSCRIBE: 2}


class UnsupportedProtocolLevel(ProtocolError):
    """CONNECT named a protocol level other than 4 or 5; answer CONNACK 0x01 and close."""

    def __init__(self, level: int) -> None:
        super().__init__(f"MQTT protocol level {level} is not supported (only 4 and 5)", 0x84)
        self.level = level


# ---------------------------------------------------------------- packet types
@dataclass
class Will:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties = field(default_factory=dict)


@dataclass
class Connect:
    client_id: str
    protocol_level: int = MQTT_311
    clean_start: bool = True
    keep_alive: int = 60
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    properties: Properties = field(default_factory=dict)
    protocol_name: str = "MQTT"


@dataclass
class Connack:
    session_present: bool = False
    reason_code: int = 0
    properties: Properties = field(default_factory=dict)


@dataclass
class Publish:
    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int = 0
    properties: Properties = field(default_factory=dict)


@dataclass
class Ack:
    """PUBACK, PUBREC, PUBREL or PUBCOMP (``kind`` says which)."""

    kind: int
    packet_id: int
    reason_code: int = 0
    properties: Properties = field(default_factory=dict)


@dataclass(frozen=True)
class SubscriptionOptions:
    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0  # 0 send retained, 1 only for a new subscription, 2 never

    def byte(self) -> int:
        return (
            self.qos
            | (self.no_local << 2)
            | (self.retain_as_published << 3)
            | (self.retain_handling << 4)
        )


@dataclass
class Subscribe:
    packet_id: int
    subscriptions: list[tuple[str, SubscriptionOptions]]
    properties: Properties = field(default_factory=dict)


@dataclass
class Suback:
    packet_id: int
    reason_codes: list[int]
    properties: Properties = field(default_factory=dict)


@dataclass
class Unsubscribe:
    packet_id: int
    filters: list[str]
    properties: Properties = field(default_factory=dict)


@dataclass
class Unsuback:
    packet_id: int
    reason_codes: list[int] = field(default_factory=list)  # empty for 3.1.1
    properties: Properties = field(default_factory=dict)


@dataclass
class PingReq:
    pass


@dataclass
class PingResp:
    pass


@dataclass
class Disconnect:
    reason_code: int = 0
    properties: Properties = field(default_factory=dict)


@dataclass
class Auth:
    reason_code: int = 0
    properties: Properties = field(default_factory=dict)


Packet = (
    Connect
    | Connack
    | Publish
    | Ack
    | Subscribe
    | Suback
    | Unsubscribe
    | Unsuback
    | PingReq
    | PingResp
    | Disconnect
    | Auth
)


# ---------------------------------------------------------------- framing
async def read_packet(
    reader: asyncio.StreamReader, max_size: int, expect: int | None = None
) -> tuple[int, bytes]:
    """Read one packet off a stream: (fixed-header byte, body).

    Raises `ProtocolError` (0x95) before reading a body larger than ``max_size``
    allows, or before reading anything more when the packet type is not
    ``expect`` (if given), and `asyncio.IncompleteReadError` when the peer
    closes mid-packet.
    """
    first = (await reader.readexactly(1))[0]
    if expect is not None and first >> 4 != expect:
        got = NAMES.get(first >> 4, "a reserved packet type")
        raise ProtocolError(f"expected {NAMES[expect]}, got {got}")
    length = 0
    for i in range(4):
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if i > 0 and byte == 0:
                raise MalformedPacket("remaining length is not in its shortest encoding")
            break
    else:
        raise MalformedPacket("remaining length is longer than four bytes")
    total = 1 + len(varint(length)) + length
    if total > max_size:
        raise ProtocolError(
            f"{NAMES.get(first >> 4, 'packet')} of {total} bytes exceeds the maximum packet "
            f"size of {max_size} bytes",
            PACKET_TOO_LARGE,
        )
    body = await reader.readexactly(length) if length else b""
    return first, body


def split_packet(data: bytes) -> tuple[int, bytes]:
    """(fixed-header byte, body) of exactly one whole packet held in ``data``."""
    if not data:
        raise MalformedPacket("empty packet")
    length, pos = decode_varint(data, 1, len(data), "remaining length")
    if pos + length != len(data):
        raise MalformedPacket(
            f"remaining length {length} does not match the {len(data) - pos} bytes present"
        )
    return data[0], data[pos:]


def decode(data: bytes, version: int) -> Packet:
    """Decode exactly one whole packet (fixed header included)."""
    first, body = split_packet(data)
    return decode_body(first, body, version)


# ---------------------------------------------------------------- decoding
def decode_body(first: int, body: bytes, version: int) -> Packet:
    """Decode one packet body; ``version`` is the connection's level (CONNECT sets its own)."""
    kind, flags = first >> 4, first & 0x0F
    name = NAMES.get(kind)
    if name is None:
        raise MalformedPacket("packet type 0 is reserved")
    if kind == AUTH and version != MQTT_5:
        raise MalformedPacket("AUTH exists only in MQTT 5")
    if kind != PUBLISH and flags != _FLAGS[kind]:
        raise MalformedPacket(f"{name} has reserved flag bits 0x{flags:x} (must be {_FLAGS[kind]})")
    r = Reader(body)
    v5 = version == MQTT_5
    if kind == CONNECT:
        return _decode_connect(r)
    if kind == PUBLISH:
        return _decode_publish(r, flags, v5)
    if kind in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        return _decode_ack(r, kind, name, v5)
    if kind == SUBSCRIBE:
        return _decode_subscribe(r, v5)
    if kind == UNSUBSCRIBE:
        packet_id = _packet_id(r, name)
        props = P.decode(r, P.UNSUBSCRIBE) if v5 else {}
        filters = []
        while r.remaining:
            filters.append(r.utf8("topic filter"))
        if not filters:
            raise ProtocolError("UNSUBSCRIBE lists no topic filter")
        return Unsubscribe(packet_id, filters, props)
    if kind in (PINGREQ, PINGRESP):
        r.expect_end(name)
        return PingReq() if kind == PINGREQ else PingResp()
    if kind == DISCONNECT:
        if not v5:
            r.expect_end(name)
            return Disconnect()
        code = r.u8("reason code") if r.remaining else 0
        props = P.decode(r, P.DISCONNECT) if r.remaining else {}
        r.expect_end(name)
        return Disconnect(code, props)
    if kind == AUTH:
        code = r.u8("reason code") if r.remaining else 0
        props = P.decode(r, P.AUTH) if r.remaining else {}
        r.expect_end(name)
        return Auth(code, props)
    if kind == CONNACK:
        flags_byte = r.u8("connect acknowledge flags")
        if flags_byte & 0xFE:
            raise MalformedPacket("CONNACK has reserved acknowledge flag bits set")
        code = r.u8("reason code")
        props = P.decode(r, P.CONNACK) if v5 else {}
        r.expect_end(name)
        return Connack(bool(flags_byte & 1), code, props)
    if kind == SUBACK:
        packet_id = _packet_id(r, name)
        props = P.decode(r, P.SUBACK) if v5 else {}
        codes = list(r.rest())
        if not codes:
            raise MalformedPacket("SUBACK has no reason codes")
        return Suback(packet_id, codes, props)
    # UNSUBACK
    packet_id = _packet_id(r, name)
    if not v5:
        r.expect_end(name)
        return Unsuback(packet_id)
    props = P.decode(r, P.UNSUBACK)
    codes = list(r.rest())
    if not codes:
        raise MalformedPacket("UNSUBACK has no reason codes")
    return Unsuback(packet_id, codes, props)


def _packet_id(r: Reader, name: str) -> int:
    packet_id = r.u16(f"{name} packet identifier")
    if packet_id == 0:
        raise MalformedPacket(f"{name} packet identifier must not be 0")
    return packet_id


def _qos(value: int, what: str) -> int:
    if value > 2:
        raise MalformedPacket(f"{what} QoS {value} is not 0, 1 or 2")
    return value


def _decode_connect(r: Reader) -> Connect:
    protocol_name = r.utf8("protocol name")
    level = r.u8("protocol level")
    if protocol_name not in ("MQTT", "MQIsdp"):
        raise MalformedPacket(f"protocol name {protocol_name!r} is not 'MQTT'")
    if level not in (MQTT_311, MQTT_5) or protocol_name != "MQTT":
        raise UnsupportedProtocolLevel(level)
    v5 = level == MQTT_5
    flags = r.u8("connect flags")
    if flags & 0x01:
        raise MalformedPacket("CONNECT reserved flag bit 0 is set")
    has_user, has_password = bool(flags & 0x80), bool(flags & 0x40)
    will_retain, will_qos, has_will = bool(flags & 0x20), (flags >> 3) & 3, bool(flags & 0x04)
    if not has_will and (will_qos or will_retain):
        raise MalformedPacket("CONNECT sets will QoS or will retain without the will flag")
    _qos(will_qos, "will")
    if has_password and not has_user and not v5:
        raise MalformedPacket("CONNECT has a password without a user name (MQTT 3.1.1)")
    keep_alive = r.u16("keep alive")
    props = P.decode(r, P.CONNECT) if v5 else {}
    client_id = r.utf8("client identifier")
    will = None
    if has_will:
        will_props = P.decode(r, P.WILL) if v5 else {}
        topic = r.utf8("will topic")
        problem = topic_name_error(topic)
        if problem:
            raise ProtocolError(f"will topic {topic!r}: {problem}")
        will = Will(topic, r.binary("will payload"), will_qos, will_retain, will_props)
    username = r.utf8("user name") if has_user else None
    password = r.binary("password") if has_password else None
    r.expect_end("CONNECT")
    return Connect(
        client_id=client_id,
        protocol_level=level,
        clean_start=bool(flags & 0x02),
        keep_alive=keep_alive,
        username=username,
        password=password,
        will=will,
        properties=props,
        protocol_name=protocol_name,
    )


def _decode_publish(r: Reader, flags: int, v5: bool) -> Publish:
    qos = _qos((flags >> 1) & 3, "PUBLISH")
    dup = bool(flags & 0x08)
    if dup and qos == 0:
        raise MalformedPacket("PUBLISH with QoS 0 must not set DUP")
    topic = r.utf8("topic name")
    packet_id = _packet_id(r, "PUBLISH") if qos else 0
    props = P.decode(r, P.PUBLISH) if v5 else {}
    if topic or not v5 or "topic_alias" not in props:
        problem = topic_name_error(topic)
        if problem:
            raise ProtocolError(f"PUBLISH topic {topic!r}: {problem}")
    return Publish(topic, r.rest(), qos, bool(flags & 0x01), dup, packet_id, props)


def _decode_ack(r: Reader, kind: int, name: str, v5: bool) -> Ack:
    packet_id = _packet_id(r, name)
    code, props = 0, {}
    if v5 and r.remaining:
        code = r.u8("reason code")
        if r.remaining:
            props = P.decode(r, kind)
    r.expect_end(name)
    return Ack(kind, packet_id, code, props)


def _decode_subscribe(r: Reader, v5: bool) -> Subscribe:
    packet_id = _packet_id(r, "SUBSCRIBE")
    props = P.decode(r, P.SUBSCRIBE) if v5 else {}
    subs: list[tuple[str, SubscriptionOptions]] = []
    while r.remaining:
        topic_filter = r.utf8("topic filter")
        opts = r.u8("subscription options")
        if opts & (0xC0 if v5 else 0xFC):
            raise MalformedPacket(f"subscription options 0x{opts:02x} set reserved bits")
        retain_handling = (opts >> 4) & 3
        if retain_handling == 3:
            raise MalformedPacket("retain handling 3 is reserved")
        subs.append(
            (
                topic_filter,
                SubscriptionOptions(
                    _qos(opts & 3, "subscription"),
                    bool(opts & 0x04),
                    bool(opts & 0x08),
                    retain_handling,
                ),
            )
        )
    if not subs:
        raise ProtocolError("SUBSCRIBE lists no topic filter")
    return Subscribe(packet_id, subs, props)


# ---------------------------------------------------------------- encoding
def _frame(first: int, body: bytes) -> bytes:
    if len(body) > MAX_VARIABLE_INT:
        raise ValueError(f"packet body of {len(body)} bytes is too large for MQTT")
    return bytes([first]) + varint(len(body)) + body


def encode(packet: Packet, version: int) -> bytes:
    """The wire bytes of ``packet`` for a connection at protocol ``version``."""
    v5 = version == MQTT_5
    if isinstance(packet, Publish):
        return encode_publish(packet, v5)
    if isinstance(packet, Ack):
        body = u16(packet.packet_id)
        if v5 and (packet.reason_code or packet.properties):
            body += bytes([packet.reason_code])
            if packet.properties:
                body += P.encode(packet.properties)
        return _frame((packet.kind << 4) | _FLAGS[packet.kind], body)
    if isinstance(packet, Connack):
        body = bytes([int(packet.session_present), packet.reason_code])
        if v5:
            body += P.encode(packet.properties)
        return _frame(CONNACK << 4, body)
    if isinstance(packet, Suback):
        body = u16(packet.packet_id) + (P.encode(packet.properties) if v5 else b"")
        return _frame(SUBACK << 4, body + bytes(packet.reason_codes))
    if isinstance(packet, Unsuback):
        body = u16(packet.packet_id)
        if v5:
            body += P.encode(packet.properties) + bytes(packet.reason_codes)
        return _frame(UNSUBACK << 4, body)
    if isinstance(packet, PingReq):
        return b"\xc0\x00"
    if isinstance(packet, PingResp):
        return b"\xd0\x00"
    if isinstance(packet, Disconnect):
        body = b""
        if v5 and (packet.reason_code or packet.properties):
            body = bytes([packet.reason_code]) + (
                P.encode(packet.properties) if packet.properties else b""
            )
        return _frame(DISCONNECT << 4, body)
    if isinstance(packet, Auth):
        body = b""
        if packet.reason_code or packet.properties:
            body = bytes([packet.reason_code]) + (
                P.encode(packet.properties) if packet.properties else b""
            )
        return _frame(AUTH << 4, body)
    if isinstance(packet, Connect):
        return _encode_connect(packet)
    if isinstance(packet, Subscribe):
        head = u16(packet.packet_id) + (P.encode(packet.properties) if v5 else b"")
        subs = b"".join(utf8(f) + bytes([o.byte()]) for f, o in packet.subscriptions)
        return _frame((SUBSCRIBE << 4) | 2, head + subs)
    if isinstance(packet, Unsubscribe):
        head = u16(packet.packet_id) + (P.encode(packet.properties) if v5 else b"")
        return _frame((UNSUBSCRIBE << 4) | 2, head + b"".join(utf8(f) for f in packet.filters))
    raise TypeError(f"cannot encode {type(packet).__name__}")


def encode_publish(packet: Publish, v5: bool) -> bytes:
    first = (PUBLISH << 4) | (int(packet.dup) << 3) | (packet.qos << 1) | int(packet.retain)
    head = utf8(packet.topic)
    if packet.qos:
        head += u16(packet.packet_id)
    if v5:
        head += P.encode(packet.properties)
    return _frame(first, head + packet.payload)


def _encode_connect(packet: Connect) -> bytes:
    v5 = packet.protocol_level == MQTT_5
    flags = int(packet.clean_start) << 1
    if packet.will is not None:
        flags |= 0x04 | (packet.will.qos << 3) | (int(packet.will.retain) << 5)
    if packet.password is not None:
        flags |= 0x40
    if packet.username is not None:
        flags |= 0x80
    body = bytearray(utf8(packet.protocol_name))
    body += bytes([packet.protocol_level, flags]) + u16(packet.keep_alive)
    if v5:
        body += P.encode(packet.properties)
    body += utf8(packet.client_id)
    if packet.will is not None:
        if v5:
            body += P.encode(packet.will.properties)
        body += utf8(packet.will.topic) + binary(packet.will.payload)
    if packet.username is not None:
        body += utf8(packet.username)
    if packet.password is not None:
        body += binary(packet.password)
    return _frame(CONNECT << 4, bytes(body))
