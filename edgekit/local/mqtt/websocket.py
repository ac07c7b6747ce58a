"""MQTT over WebSocket (RFC 6455, MQTT 5.0 section 6): the way IoT Core serves IAM clients.

A notebook holding IAM credentials reaches AWS IoT Core through a websocket
whose upgrade request is SigV4-signed. This module gives the local broker the
same door, so the AWS transport runs end to end on loopback (TLS aside). After
the HTTP/1.1 upgrade, the payloads of binary frames form the MQTT byte stream
(a frame may hold several packets or part of one); `WebSocketStream` turns an
upgraded connection into the reader/transport pair the TCP listener's
`Connection` already serves, so both listeners share one MQTT implementation.

What is enforced, each violation closing only its own connection:
- the handshake: ``GET`` over HTTP/1.1, ``Host``, ``Upgrade: websocket``,
  ``Connection: Upgrade``, version 13, a 16-byte ``Sec-WebSocket-Key``, the
  ``mqtt`` subprotocol offered, at most `MAX_HANDSHAKE_BYTES`; refused with an
  HTTP error status and a one-line reason; with an ``authenticate`` check (the
  broker's `sigv4.SigV4Verifier`), a refused signature is answered 403.
- frames: masked (client to server), no RSV bits (no extension is negotiated),
  known opcodes, minimal length encodings, control frames unfragmented and at
  most 125 bytes, continuation only inside a fragmented message, binary data
  only (MQTT forbids text frames), a payload limit (the broker's maximum packet
  size), well-formed Close frames. Violations raise `WebSocketError` (a
  `ProtocolError`) carrying the close code the server answers with.

No extension (permessage-deflate) is negotiated; the server never fragments.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from edgekit.local.mqtt.wire import PROTOCOL_ERROR, ProtocolError

log = logging.getLogger("edgekit.local.mqtt")

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
SUBPROTOCOL = "mqtt"  # MQTT 5.0 section 6.0 (also 3.1.1)
MAX_HANDSHAKE_BYTES = 16 * 1024  # a SigV4 query with an STS session token fits easily
READ_CHUNK = 64 * 1024

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
_OPCODES = {OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG}

# Close codes (RFC 6455 section 7.4.1).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_MESSAGE_TOO_BIG = 1009
_NOT_ON_THE_WIRE = {1004, 1005, 1006, 1015}  # reserved, or only for local reporting

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 token (header names)


class WebSocketError(ProtocolError):
    """A peer broke RFC 6455 or MQTT's use of it; ``close_code`` is what the server answers."""

    def __init__(self, message: str, close_code: int = CLOSE_PROTOCOL_ERROR) -> None:
        super().__init__(f"websocket: {message}", PROTOCOL_ERROR)
        self.close_code = close_code


class HandshakeError(WebSocketError):
    """The upgrade request is not an MQTT websocket handshake; answered with HTTP ``status``."""

    def __init__(
        self, message: str, status: int = 400, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(f"handshake refused: {message}")
        self.reason = message
        self.status = status
        self.headers = headers

    def response(self) -> bytes:
        """The HTTP error reply: status line, the reason as a plain-text body, then close."""
        body = f"{self.reason}\n".encode()
        phrase = _STATUS_PHRASES.get(self.status, "Error")
        lines = [
            f"HTTP/1.1 {self.status} {phrase}",
            "Content-Type: text/plain; charset=utf-8",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in self.headers),
            "Connection: close",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


_STATUS_PHRASES = {
    400: "Bad Request",
    403: "Forbidden",
    405: "Method Not Allowed",
    426: "Upgrade Required",
    431: "Request Header Fields Too Large",
    505: "HTTP Version Not Supported",
}


# ------------------------------------------------------------------ handshake


@dataclass(frozen=True)
class Handshake:
    """One accepted upgrade request, kept as the client sent it (tests inspect SigV4 queries)."""

    method: str
    target: str  # the request target: path and query string, still percent-encoded
    headers: tuple[tuple[str, str], ...]  # in order, names as sent
    peer: str = ""

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query_string(self) -> str:
        return urlsplit(self.target).query

    @property
    def query(self) -> dict[str, list[str]]:
        """The decoded query parameters (e.g. ``X-Amz-Signature``), each a list of values."""
        return parse_qs(self.query_string, keep_blank_values=True)

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive), repeated ones joined with ``, ``."""
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None

    @property
    def key(self) -> str:
        return self.header("Sec-WebSocket-Key") or ""

    @property
    def subprotocols(self) -> list[str]:
        return _tokens(self.header("Sec-WebSocket-Protocol") or "")


def _tokens(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (RFC 6455 section 4.2.2)."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()  # noqa: S324 - the RFC's choice
    return base64.b64encode(digest).decode("ascii")


_SINGLE = ("host", "sec-websocket-key", "sec-websocket-version")


def parse_handshake(raw: bytes, peer: str = "") -> Handshake:
    """Validate an upgrade request (bytes up to and including the blank line).

    Raises `HandshakeError` with the HTTP status to answer; never anything else.
    """
    if len(raw) > MAX_HANDSHAKE_BYTES:
        raise HandshakeError(f"request head exceeds {MAX_HANDSHAKE_BYTES} bytes", 431)
    if not raw.endswith(b"\r\n\r\n"):
        raise HandshakeError("request head does not end with an empty line (CRLF CRLF)")
    try:
        text = raw[:-4].decode("ascii")
    except UnicodeDecodeError:
        raise HandshakeError("request head is not ASCII") from None
    lines = text.split("\r\n")
    if any("\n" in line or "\r" in line for line in lines):
        raise HandshakeError("request head has a bare CR or LF; lines must end with CRLF")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise HandshakeError(f"malformed request line {lines[0][:80]!r}")
    method, target, version = parts
    if version != "HTTP/1.1":
        if re.fullmatch(r"HTTP/\d\.\d", version):
            raise HandshakeError(f"{version} cannot upgrade; websockets need HTTP/1.1", 505)
        raise HandshakeError(f"malformed request line {lines[0][:80]!r}")
    if method != "GET":
        raise HandshakeError(
            f"method {method[:20]!r} cannot upgrade; use GET", 405, (("Allow", "GET"),)
        )
    if not target.startswith("/") or any(c <= " " or c == "\x7f" for c in target):
        raise HandshakeError(f"request target {target[:80]!r} is not a path (origin-form)")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line or line[0] in " \t":
            raise HandshakeError("folded or empty header line (obsolete line folding)")
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.match(name):
            raise HandshakeError(f"malformed header line {line[:80]!r}")
        headers.append((name, value.strip(" \t")))
    hs = Handshake(method, target, tuple(headers), peer)
    for name in _SINGLE:
        count = sum(1 for k, _ in headers if k.lower() == name)
        if count > 1:
            raise HandshakeError(f"header {name} appears {count} times")
    if not hs.header("Host"):
        raise HandshakeError("no Host header")
    if "websocket" not in [t.lower() for t in _tokens(hs.header("Upgrade") or "")]:
        raise HandshakeError("not a websocket upgrade: needs 'Upgrade: websocket'", 426)
    if "upgrade" not in [t.lower() for t in _tokens(hs.header("Connection") or "")]:
        raise HandshakeError("not a websocket upgrade: needs 'Connection: Upgrade'", 426)
    if hs.header("Sec-WebSocket-Version") != "13":
        raise HandshakeError(
            f"Sec-WebSocket-Version {hs.header('Sec-WebSocket-Version')!r} unsupported; use 13",
            426,
            (("Sec-WebSocket-Version", "13"),),
        )
    try:
        key = base64.b64decode(hs.key.encode("ascii"), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 16:
        raise HandshakeError("Sec-WebSocket-Key must be 16 random bytes in base64")
    if SUBPROTOCOL not in hs.subprotocols:
        offered = hs.header("Sec-WebSocket-Protocol")
        raise HandshakeError(
            f"the client must offer the websocket subprotocol {SUBPROTOCOL!r} "
            f"(MQTT section 6); it offered {offered!r}"
        )
    if (hs.header("Content-Length") or "0") != "0" or hs.header("Transfer-Encoding"):
        raise HandshakeError("an upgrade request must not have a body")
    return hs


def handshake_response(handshake: Handshake) -> bytes:
    """The ``101 Switching Protocols`` reply selecting the ``mqtt`` subprotocol."""
    return (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(handshake.key)}\r\n"
        f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n"
        "\r\n"
    ).encode("ascii")


async def read_request_head(reader: asyncio.StreamReader, max_bytes: int) -> bytes:
    """The request head up to the blank line; `HandshakeError` (431) past ``max_bytes``.

    Raises `asyncio.IncompleteReadError` if the peer closes first.
    """
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise HandshakeError(f"request head exceeds {max_bytes} bytes", 431) from None
    if len(raw) > max_bytes:
        raise HandshakeError(f"request head exceeds {max_bytes} bytes", 431)
    return raw


# ------------------------------------------------------------------ frames


@dataclass(frozen=True)
class Frame:
    fin: bool
    opcode: int
    payload: bytes


def unmask(payload: bytes | bytearray | memoryview, mask: bytes) -> bytes:
    """XOR ``payload`` with the repeating 4-byte ``mask`` (one big-int XOR, fast for 1 MB)."""
    n = len(payload)
    if n == 0:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def encode_frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bytes | None = None
) -> bytes:
    """One frame; the server sends unmasked frames, a client (tests) passes a 4-byte ``mask``."""
    n = len(payload)
    head = bytearray([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if mask is not None else 0
    if n < 126:
        head.append(mask_bit | n)
    elif n < 1 << 16:
        head.append(mask_bit | 126)
        head += n.to_bytes(2, "big")
    else:
        head.append(mask_bit | 127)
        head += n.to_bytes(8, "big")
    if mask is None:
        return bytes(head) + payload
    return bytes(head) + mask + unmask(payload, mask)


def close_payload(code: int, reason: str = "") -> bytes:
    """A Close frame's body: the code and a UTF-8 reason cut to fit 125 bytes."""
    raw = reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
    return code.to_bytes(2, "big") + raw


def parse_close(payload: bytes) -> tuple[int | None, str]:
    """(code or None, reason) of a received Close frame; `WebSocketError` if malformed."""
    if not payload:
        return None, ""
    if len(payload) == 1:
        raise WebSocketError("a Close frame body of 1 byte (needs a 2-byte code)")
    code = int.from_bytes(payload[:2], "big")
    if code < 1000 or code >= 5000 or code in _NOT_ON_THE_WIRE or 1016 <= code < 3000:
        raise WebSocketError(f"close code {code} is not allowed on the wire")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise WebSocketError("Close reason is not UTF-8", CLOSE_INVALID_PAYLOAD) from None
    return code, reason


class FrameDecoder:
    """Incremental decoder of client frames: feed bytes, get whole, unmasked frames.

    It keeps the fragmentation state, so a continuation outside a message or a
    new data frame inside one is caught here. Raises only `WebSocketError`.
    """

    def __init__(self, max_payload: int, *, require_mask: bool = True) -> None:
        self.max_payload = max_payload
        self.require_mask = require_mask
        self._buffer = bytearray()
        self._in_message = False
        self.closed = False  # a Close frame was decoded; nothing may follow

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        pos = 0
        buf = self._buffer
        while True:
            frame, used = self._next(buf, pos)
            if frame is None:
                break
            pos += used
            frames.append(frame)
        if pos:
            del buf[:pos]
        return frames

    def _next(self, buf: bytearray, pos: int) -> tuple[Frame | None, int]:
        available = len(buf) - pos
        if available < 2:
            return None, 0
        if self.closed:
            raise WebSocketError("data after the Close frame")
        b0, b1 = buf[pos], buf[pos + 1]
        fin, rsv, opcode = bool(b0 & 0x80), b0 & 0x70, b0 & 0x0F
        masked, length = bool(b1 & 0x80), b1 & 0x7F
        if rsv:
            raise WebSocketError("RSV bits set but no extension was negotiated")
        if opcode not in _OPCODES:
            raise WebSocketError(f"reserved opcode 0x{opcode:x}")
        if self.require_mask and not masked:
            raise WebSocketError("a client frame is not masked (RFC 6455 section 5.1)")
        if not self.require_mask and masked:
            raise WebSocketError("a server frame is masked")
        control = opcode >= 0x8
        if control and not fin:
            raise WebSocketError(f"control frame 0x{opcode:x} is fragmented")
        if control and length > 125:
            raise WebSocketError(f"control frame 0x{opcode:x} longer than 125 bytes")
        header = 2
        if length == 126:
            if available < 4:
                return None, 0
            length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
            header = 4
            if length < 126:
                raise WebSocketError("payload length not in its shortest encoding")
        elif length == 127:
            if available < 10:
                return None, 0
            length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
            header = 10
            if length >> 63:
                raise WebSocketError("payload length has its most significant bit set")
            if length < 1 << 16:
                raise WebSocketError("payload length not in its shortest encoding")
        if length > self.max_payload:
            raise WebSocketError(
                f"frame of {length} bytes exceeds the limit of {self.max_payload} bytes",
                CLOSE_MESSAGE_TOO_BIG,
            )
        if opcode == OP_TEXT:
            raise WebSocketError(
                "a text frame: MQTT travels in binary frames only (MQTT section 6)",
                CLOSE_UNSUPPORTED_DATA,
            )
        if opcode == OP_CONTINUATION and not self._in_message:
            raise WebSocketError("a continuation frame outside a fragmented message")
        if opcode == OP_BINARY and self._in_message:
            raise WebSocketError("a new data frame inside an unfinished fragmented message")
        mask_len = 4 if masked else 0
        total = header + mask_len + length
        if available < total:
            return None, 0
        start = pos + header + mask_len
        mask = bytes(buf[pos + header : start])
        with memoryview(buf)[start : start + length] as body:  # released before `del buf[:n]`
            payload = unmask(body, mask) if masked else bytes(body)
        if not control:
            self._in_message = not fin
        elif opcode == OP_CLOSE:
            self.closed = True
        return Frame(fin, opcode, payload), total


# ------------------------------------------------------------------ one upgraded connection


class WebSocketTransport(asyncio.Transport):
    """The MQTT side's transport: each write becomes one binary frame on the TCP transport.

    It also receives the flow-control calls of the MQTT `StreamReader` it feeds
    (``pause_reading``/``resume_reading``), which hold the frame pump.
    """

    def __init__(self, tcp: asyncio.WriteTransport) -> None:
        super().__init__()
        self.tcp = tcp
        self._closing = False
        self.reading = asyncio.Event()
        self.reading.set()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or not data:
            return
        self.tcp.write(encode_frame(OP_BINARY, bytes(data)))

    def send_control(self, opcode: int, payload: bytes) -> None:
        if not self._closing:
            self.tcp.write(encode_frame(opcode, payload))

    def close_with(self, code: int, reason: str = "") -> None:
        """Send a Close frame (once), then close the TCP connection after the buffer drains."""
        if self._closing:
            return
        self._closing = True
        if not self.tcp.is_closing():
            self.tcp.write(encode_frame(OP_CLOSE, close_payload(code, reason)))
            self.tcp.close()

    def close(self) -> None:
        self.close_with(CLOSE_NORMAL)

    def abort(self) -> None:
        self._closing = True
        self.tcp.abort()

    def is_closing(self) -> bool:
        return self._closing or self.tcp.is_closing()

    def get_write_buffer_size(self) -> int:
        return self.tcp.get_write_buffer_size()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.tcp.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self.reading.clear()

    def resume_reading(self) -> None:
        self.reading.set()

    def is_reading(self) -> bool:
        return self.reading.is_set()


class WebSocketStream:
    """An upgraded connection as the (reader, writer) pair `Connection` serves.

    ``reader`` carries the MQTT byte stream from the client's binary frames;
    ``transport`` frames what the broker writes. `pump` (a task) reads frames,
    answers pings and the closing handshake, and ends the MQTT stream (EOF, or
    the `WebSocketError` that closed it).
    """

    def __init__(
        self,
        tcp_reader: asyncio.StreamReader,
        tcp_writer: asyncio.StreamWriter,
        handshake: Handshake,
        max_frame: int,
    ) -> None:
        self.handshake = handshake
        self.tcp_reader = tcp_reader
        self.transport = WebSocketTransport(tcp_writer.transport)
        self.reader = asyncio.StreamReader(limit=READ_CHUNK)
        self.reader.set_transport(self.transport)
        self.decoder = FrameDecoder(max_frame)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)

    async def pump(self) -> None:
        try:
            while True:
                await self.transport.reading.wait()
                chunk = await self.tcp_reader.read(READ_CHUNK)
                if not chunk:
                    log.debug("websocket %s: TCP closed without a Close frame", self.handshake.peer)
                    self.reader.feed_eof()
                    return
                if self._handle(self.decoder.feed(chunk)):
                    return
        except WebSocketError as exc:
            self.transport.close_with(exc.close_code, str(exc))
            self.reader.set_exception(exc)
        except ConnectionError:
            self.reader.feed_eof()

    def _handle(self, frames: list[Frame]) -> bool:
        """Act on decoded frames; True once the closing handshake ended the stream."""
        for frame in frames:
            if frame.opcode in (OP_BINARY, OP_CONTINUATION):
                if frame.payload:
                    self.reader.feed_data(frame.payload)
            elif frame.opcode == OP_PING:
                self.transport.send_control(OP_PONG, frame.payload)
            elif frame.opcode == OP_CLOSE:
                code, _reason = parse_close(frame.payload)
                log.debug("websocket %s: client sent Close %s", self.handshake.peer, code)
                self.transport.close_with(CLOSE_NORMAL if code is None else code)
                self.reader.feed_eof()
                return True
            # a Pong answers nothing we asked; RFC 6455 lets it be unsolicited
        return False


async def accept(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    max_frame: int,
    timeout: float,
    authenticate: Callable[[str, tuple[tuple[str, str], ...]], str | None] | None = None,
) -> WebSocketStream | None:
    """Run the server side of the handshake; None (connection closed) if it was refused.

    ``authenticate(target, headers)`` returns why the request may not connect, or None.
    """
    peername = writer.get_extra_info("peername")
    peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
    try:
        async with asyncio.timeout(timeout):
            raw = await read_request_head(reader, MAX_HANDSHAKE_BYTES)
        handshake = parse_handshake(raw, peer)
        refusal = authenticate(handshake.target, handshake.headers) if authenticate else None
        if refusal:
            log.warning("websocket %s: refused %s: %s", peer, handshake.path, refusal)
            raise HandshakeError(refusal, 403)
    except HandshakeError as exc:
        log.info("websocket %s: %s", peer, exc)
        writer.write(exc.response())
        writer.close()
        return None
    except TimeoutError:
        log.info("websocket %s: no complete upgrade request within %g s", peer, timeout)
        writer.transport.abort()
        return None
    except (asyncio.IncompleteReadError, ConnectionError):
        log.debug("websocket %s: closed during the handshake", peer)
        with contextlib.suppress(Exception):
            writer.transport.abort()
        return None
    writer.write(handshake_response(handshake))
    log.debug("websocket %s: upgraded %s", peer, handshake.path)
    return WebSocketStream(reader, writer, handshake, max_frame)


__all__ = [
    "CLOSE_MESSAGE_TOO_BIG", "CLOSE_PROTOCOL_ERROR", "CLOSE_UNSUPPORTED_DATA", "Frame",
    "FrameDecoder", "Handshake", "HandshakeError", "WebSocketError", "WebSocketStream", "accept",
    "accept_key", "encode_frame", "handshake_response", "parse_close", "parse_handshake",
]  # fmt: skip
