"""MQTT's primitive data types (spec section 1.5 / 2.1) and the protocol error type.

Every decoder in this package reads through `Reader`, so a truncated or
malformed byte string can only ever raise `ProtocolError` (never IndexError,
UnicodeDecodeError or struct.error): the broker relies on that to close just
the offending connection.
"""

from __future__ import annotations

from edgekit.errors import EdgekitError

# Reason codes the codec and the broker raise with (MQTT 5.0 table 2-6); for a
# 3.1.1 client they only choose the log line, since 3.1.1 just closes the socket.
MALFORMED_PACKET = 0x81
PROTOCOL_ERROR = 0x82
PACKET_TOO_LARGE = 0x95
TOPIC_ALIAS_INVALID = 0x94

MAX_VARIABLE_INT = 268_435_455  # four 7-bit groups
MAX_UINT16 = 0xFFFF
MAX_UINT32 = 0xFFFF_FFFF


class ProtocolError(EdgekitError):
    """A peer broke the MQTT protocol; the connection that sent it must be closed.

    ``reason_code`` is the MQTT 5 reason the broker puts in its DISCONNECT
    (0x81 malformed packet, 0x82 protocol error, 0x95 packet too large, ...).
    """

    def __init__(self, message: str, reason_code: int = PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.reason_code = reason_code


class MalformedPacket(ProtocolError):
    """The bytes do not decode as the packet they claim to be (reason 0x81)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, MALFORMED_PACKET)


class Reader:
    """Reads MQTT primitives from a packet body, raising `MalformedPacket` on any shortfall."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes | memoryview, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def _take(self, n: int, what: str) -> bytes:
        if n > self.end - self.pos:
            raise MalformedPacket(
                f"{what} needs {n} bytes at offset {self.pos}, only {self.end - self.pos} left"
            )
        chunk = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return chunk

    def u8(self, what: str = "byte") -> int:
        if self.pos >= self.end:
            raise MalformedPacket(f"{what} missing at offset {self.pos}")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def u16(self, what: str = "two-byte integer") -> int:
        return int.from_bytes(self._take(2, what), "big")

    def u32(self, what: str = "four-byte integer") -> int:
        return int.from_bytes(self._take(4, what), "big")

    def varint(self, what: str = "variable byte integer") -> int:
        value, self.pos = decode_varint(self.data, self.pos, self.end, what)
        return value

    def binary(self, what: str = "binary data") -> bytes:
        return self._take(self.u16(f"length of {what}"), what)

    def utf8(self, what: str = "UTF-8 string") -> str:
        return decode_utf8(self._take(self.u16(f"length of {what}"), what), what)

    def rest(self) -> bytes:
        chunk = bytes(self.data[self.pos : self.end])
        self.pos = self.end
        return chunk

    def expect_end(self, what: str) -> None:
        if self.pos != self.end:
            raise MalformedPacket(f"{self.end - self.pos} unexpected trailing bytes in {what}")


def decode_varint(
    data: bytes | memoryview, pos: int, end: int, what: str = "variable byte integer"
) -> tuple[int, int]:
    """(value, new position); at most four bytes, and the shortest form only."""
    value = 0
    for i in range(4):
        if pos >= end:
            raise MalformedPacket(f"{what} is truncated")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if i > 0 and byte == 0:
                raise MalformedPacket(f"{what} is not in its shortest encoding")
            return value, pos
    raise MalformedPacket(f"{what} is longer than four bytes")


def decode_utf8(raw: bytes, what: str = "UTF-8 string") -> str:
    """Well-formed UTF-8 without U+0000 (spec 1.5.4); surrogates are rejected by the codec."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedPacket(f"{what} is not well-formed UTF-8: {exc.reason}") from None
    if "\x00" in text:
        raise MalformedPacket(f"{what} contains the null character U+0000")
    return text


def varint(value: int) -> bytes:
    if not 0 <= value <= MAX_VARIABLE_INT:
        raise ValueError(f"{value} does not fit an MQTT variable byte integer")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def u16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def binary(value: bytes) -> bytes:
    if len(value) > MAX_UINT16:
        raise ValueError(f"binary field of {len(value)} bytes exceeds 65535")
    return u16(len(value)) + value


def utf8(value: str) -> bytes:
    return binary(value.encode("utf-8"))
