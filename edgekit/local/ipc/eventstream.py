"""The AWS event-stream binary framing (``application/vnd.amazon.eventstream``).

Greengrass IPC runs over this framing on a unix socket. One message on the wire::

    total length    uint32 big-endian  (whole message, both CRCs included)
    headers length  uint32 big-endian
    prelude CRC     uint32             CRC32 of the 8 bytes above
    headers         headers-length bytes
    payload         total - headers - 16 bytes
    message CRC     uint32             CRC32 of everything before it (prelude included)

A header is ``name length (uint8) | name (utf-8) | type (uint8) | value`` with the
value types of `HeaderType`; byte buffers and strings carry a uint16 length.
Limits follow aws-c-event-stream: 16 MiB per message, 128 KiB of headers,
header names of 1..127 bytes.

`FrameDecoder` parses incrementally (bytes arrive in arbitrary chunks) and
validates strictly: anything malformed raises `EventStreamProtocolError` and
nothing else, so a connection handler can drop exactly the offending peer.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from edgekit.errors import LocalBackendError

MAX_MESSAGE_SIZE = 16 * 1024 * 1024
MAX_HEADERS_SIZE = 128 * 1024
MAX_HEADER_NAME_LEN = 127
PRELUDE_SIZE = 12
MIN_MESSAGE_SIZE = PRELUDE_SIZE + 4

_PRELUDE = struct.Struct(">III")
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_INT_FORMATS = {
    2: struct.Struct(">b"),
    3: struct.Struct(">h"),
    4: struct.Struct(">i"),
    5: struct.Struct(">q"),
}


class EventStreamProtocolError(LocalBackendError):
    """Bytes on an IPC connection are not a valid event-stream message."""


class HeaderType(IntEnum):
    """Header value types, numbered as on the wire."""

    BOOL_TRUE = 0
    BOOL_FALSE = 1
    BYTE = 2
    INT16 = 3
    INT32 = 4
    INT64 = 5
    BYTE_BUF = 6
    STRING = 7
    TIMESTAMP = 8  # int64 milliseconds since the epoch; kept as the raw int
    UUID = 9


_INT_RANGES = {
    HeaderType.BYTE: (-(2**7), 2**7 - 1),
    HeaderType.INT16: (-(2**15), 2**15 - 1),
    HeaderType.INT32: (-(2**31), 2**31 - 1),
    HeaderType.INT64: (-(2**63), 2**63 - 1),
    HeaderType.TIMESTAMP: (-(2**63), 2**63 - 1),
}


@dataclass(frozen=True)
class Header:
    name: str
    type: HeaderType
    value: Any

    @classmethod
    def string(cls, name: str, value: str) -> Header:
        return cls(name, HeaderType.STRING, value)

    @classmethod
    def int32(cls, name: str, value: int) -> Header:
        return cls(name, HeaderType.INT32, value)

    @classmethod
    def boolean(cls, name: str, value: bool) -> Header:
        return cls(name, HeaderType.BOOL_TRUE if value else HeaderType.BOOL_FALSE, bool(value))


@dataclass
class Message:
    headers: list[Header] = field(default_factory=list)
    payload: bytes = b""

    def header(self, name: str) -> Header | None:
        """The first header called ``name`` (case-insensitive, like the CRT client)."""
        lowered = name.lower()
        for h in self.headers:
            if h.name.lower() == lowered:
                return h
        return None


def _encode_header(h: Header) -> bytes:
    name = h.name.encode("utf-8")
    if not 1 <= len(name) <= MAX_HEADER_NAME_LEN:
        raise ValueError(f"event-stream header name {h.name!r} must be 1..127 bytes")
    t = HeaderType(h.type)
    head = bytes([len(name)]) + name + bytes([t])
    if t in (HeaderType.BOOL_TRUE, HeaderType.BOOL_FALSE):
        return head
    if t in _INT_RANGES:
        lo, hi = _INT_RANGES[t]
        if not isinstance(h.value, int) or not lo <= h.value <= hi:
            raise ValueError(f"event-stream header {h.name!r}: {h.value!r} does not fit {t.name}")
        fmt = _INT_FORMATS[5 if t == HeaderType.TIMESTAMP else int(t)]
        return head + fmt.pack(h.value)
    if t in (HeaderType.BYTE_BUF, HeaderType.STRING):
        raw = h.value.encode("utf-8") if t == HeaderType.STRING else bytes(h.value)
        if len(raw) > 0xFFFF:
            raise ValueError(f"event-stream header {h.name!r} value is longer than 65535 bytes")
        return head + _U16.pack(len(raw)) + raw
    # UUID
    value = h.value.bytes if isinstance(h.value, uuid.UUID) else bytes(h.value)
    if len(value) != 16:
        raise ValueError(f"event-stream header {h.name!r}: a UUID is 16 bytes")
    return head + value


def encode(headers: list[Header], payload: bytes = b"") -> bytes:
    """One complete event-stream message."""
    header_bytes = b"".join(_encode_header(h) for h in headers)
    total = PRELUDE_SIZE + len(header_bytes) + len(payload) + 4
    if len(header_bytes) > MAX_HEADERS_SIZE:
        raise ValueError(
            f"event-stream headers are {len(header_bytes)} bytes; the limit is 128 KiB"
        )
    if total > MAX_MESSAGE_SIZE:
        raise ValueError(f"event-stream message is {total} bytes; the limit is 16 MiB")
    prefix = struct.pack(">II", total, len(header_bytes))
    prelude = prefix + _U32.pack(zlib.crc32(prefix))
    body = prelude + header_bytes + payload
    return body + _U32.pack(zlib.crc32(body))


def decode_headers(data: bytes) -> list[Header]:
    """Parse a complete headers block; raises EventStreamProtocolError on any defect."""
    headers: list[Header] = []
    pos, end = 0, len(data)
    while pos < end:
        name_len = data[pos]
        pos += 1
        if name_len == 0 or name_len > MAX_HEADER_NAME_LEN:
            raise EventStreamProtocolError(f"header name length {name_len} is outside 1..127")
        if pos + name_len + 1 > end:
            raise EventStreamProtocolError("header name runs past the end of the headers block")
        try:
            name = data[pos : pos + name_len].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EventStreamProtocolError("header name is not valid UTF-8") from exc
        pos += name_len
        type_byte = data[pos]
        pos += 1
        if type_byte > HeaderType.UUID:
            raise EventStreamProtocolError(f"header {name!r} has unknown value type {type_byte}")
        t = HeaderType(type_byte)
        value: Any
        if t == HeaderType.BOOL_TRUE:
            value = True
        elif t == HeaderType.BOOL_FALSE:
            value = False
        elif t in _INT_RANGES:
            fmt = _INT_FORMATS[5 if t == HeaderType.TIMESTAMP else int(t)]
            if pos + fmt.size > end:
                raise EventStreamProtocolError(f"header {name!r} value runs past the headers block")
            (value,) = fmt.unpack_from(data, pos)
            pos += fmt.size
        elif t in (HeaderType.BYTE_BUF, HeaderType.STRING):
            if pos + 2 > end:
                raise EventStreamProtocolError(
                    f"header {name!r} length runs past the headers block"
                )
            (length,) = _U16.unpack_from(data, pos)
            pos += 2
            if pos + length > end:
                raise EventStreamProtocolError(f"header {name!r} value runs past the headers block")
            raw = bytes(data[pos : pos + length])
            pos += length
            if t == HeaderType.STRING:
                try:
                    value = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise EventStreamProtocolError(f"header {name!r} is not valid UTF-8") from exc
            else:
                value = raw
        else:  # UUID
            if pos + 16 > end:
                raise EventStreamProtocolError(f"header {name!r} UUID runs past the headers block")
            value = uuid.UUID(bytes=bytes(data[pos : pos + 16]))
            pos += 16
        headers.append(Header(name, t, value))
    return headers


class FrameDecoder:
    """Incremental decoder: `feed` bytes as they arrive, get complete messages back.

    The prelude is checked as soon as its 12 bytes are in, so a bogus length is
    refused before any buffering. After an error the decoder stays failed.
    """

    def __init__(self, max_message_size: int = MAX_MESSAGE_SIZE) -> None:
        self._buf = bytearray()
        self._need: int | None = None  # total length of the message being read
        self._max = max_message_size
        self._failed: EventStreamProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet form a complete message."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Message]:
        """All messages completed by ``data`` (an error discards those before it; see iter_feed)."""
        return list(self.iter_feed(data))

    def iter_feed(self, data: bytes) -> Iterator[Message]:
        """Yield each message as soon as it is complete, then raise on the first defect.

        A caller that handles messages one by one thus acts on every valid message
        that preceded the bad bytes in the same chunk.
        """
        if self._failed is not None:
            raise self._failed
        self._buf += data
        try:
            while True:
                if self._need is None:
                    if len(self._buf) < PRELUDE_SIZE:
                        return
                    self._need = self._check_prelude()
                if len(self._buf) < self._need:
                    return
                frame = bytes(self._buf[: self._need])
                del self._buf[: self._need]
                self._need = None
                message = self._parse(frame)
                yield message
        except EventStreamProtocolError as exc:
            self._failed = exc
            raise

    def _check_prelude(self) -> int:
        total, headers_len, prelude_crc = _PRELUDE.unpack_from(self._buf, 0)
        if zlib.crc32(bytes(self._buf[:8])) != prelude_crc:
            raise EventStreamProtocolError("prelude CRC32 mismatch")
        if total < MIN_MESSAGE_SIZE:
            raise EventStreamProtocolError(f"message length {total} is below the 16-byte minimum")
        if total > self._max:
            raise EventStreamProtocolError(
                f"message length {total} exceeds the {self._max}-byte limit"
            )
        if headers_len > MAX_HEADERS_SIZE:
            raise EventStreamProtocolError(f"headers length {headers_len} exceeds 128 KiB")
        if headers_len > total - MIN_MESSAGE_SIZE:
            raise EventStreamProtocolError(
                f"headers length {headers_len} does not fit in a {total}-byte message"
            )
        return int(total)

    @staticmethod
    def _parse(frame: bytes) -> Message:
        (message_crc,) = _U32.unpack_from(frame, len(frame) - 4)
        if zlib.crc32(frame[:-4]) != message_crc:
            raise EventStreamProtocolError("message CRC32 mismatch")
        (headers_len,) = _U32.unpack_from(frame, 4)
        headers = decode_headers(frame[PRELUDE_SIZE : PRELUDE_SIZE + headers_len])
        payload = frame[PRELUDE_SIZE + headers_len : -4]
        return Message(headers, payload)


def decode(data: bytes) -> Message:
    """Decode exactly one complete message (trailing or missing bytes are errors)."""
    decoder = FrameDecoder()
    messages = decoder.feed(data)
    if len(messages) != 1 or decoder.buffered:
        raise EventStreamProtocolError(
            f"expected exactly one complete message, got {len(messages)} "
            f"and {decoder.buffered} leftover bytes"
        )
    return messages[0]
