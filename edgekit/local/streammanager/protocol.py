"""The Stream Manager wire protocol, as the public ``stream_manager`` SDKs speak it.

A connection starts with one byte, the connect version (1), then frames in both
directions. A frame is a 4-byte signed big-endian length (of what follows: the
operation byte and the payload), one operation byte, and a CBOR map with camelCase
keys (``requestId``, ``status``, ``errorMessage``...). The server answers the connect
version byte, then a ``ConnectResponse`` frame; afterwards each request frame gets one
response frame carrying the same ``requestId``. Enumerations travel as integers.

This module is the codec and the constants only: no sockets, no streams.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import cbor2

from edgekit.errors import LocalBackendError

__all__ = [
    "CONNECT_VERSION",
    "LENGTH",
    "PROTOCOL_VERSION",
    "SUPPORTED_PROTOCOL_VERSIONS",
    "Frame",
    "Op",
    "ProtocolError",
    "Status",
    "decode_payload",
    "encode_frame",
    "parse_header",
    "peek_request_id",
    "response_op",
]

CONNECT_VERSION = 1
PROTOCOL_VERSION = "1.1.0"
SUPPORTED_PROTOCOL_VERSIONS = ("1.1.0", "1.0.0")
LENGTH = struct.Struct(">iB")  # frame length (operation byte + payload), operation


class Op(IntEnum):
    """Operation byte of a frame (the SDK's ``Operation``)."""

    Unknown = 0
    Connect = 1
    CreateMessageStream = 2
    DeleteMessageStream = 3
    AppendMessage = 4
    ReadMessages = 5
    ConnectResponse = 6
    CreateMessageStreamResponse = 7
    DeleteMessageStreamResponse = 8
    AppendMessageResponse = 9
    ReadMessagesResponse = 10
    ListStreams = 11
    ListStreamsResponse = 12
    DescribeMessageStream = 13
    DescribeMessageStreamResponse = 14
    UpdateMessageStream = 15
    UpdateMessageStreamResponse = 16
    UnknownOperationError = 17


class Status(IntEnum):
    """``status`` of a response (the SDK's ``ResponseStatusCode``)."""

    Success = 0
    UnknownFailure = 1
    Unauthorized = 2
    InvalidRequest = 3
    RequestPayloadTooLarge = 4
    ResourceNotFound = 5
    ServerTimeout = 6
    ResponsePayloadTooLarge = 7
    UnsupportedConnectVersion = 8
    UnexpectedOperation = 9
    UnsupportedProtocolVersion = 10
    InvalidProtocolVersion = 11
    FailedToConnect = 12
    NotEnoughMessages = 13
    MessageStoreReadError = 14
    OutOfMemoryError = 15
    UpdateFailed = 16
    UpdateNotAllowed = 17
    UnknownOperation = 18


_RESPONSES = {
    Op.Connect: Op.ConnectResponse,
    Op.CreateMessageStream: Op.CreateMessageStreamResponse,
    Op.DeleteMessageStream: Op.DeleteMessageStreamResponse,
    Op.AppendMessage: Op.AppendMessageResponse,
    Op.ReadMessages: Op.ReadMessagesResponse,
    Op.ListStreams: Op.ListStreamsResponse,
    Op.DescribeMessageStream: Op.DescribeMessageStreamResponse,
    Op.UpdateMessageStream: Op.UpdateMessageStreamResponse,
}


class ProtocolError(LocalBackendError):
    """A frame the server cannot take; ``status`` is what the client is told (internal:
    it becomes a response or ends the connection)."""

    def __init__(self, message: str, status: Status = Status.InvalidRequest) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Frame:
    op: int
    payload: bytes


def response_op(op: int) -> Op | None:
    """The response operation of request ``op``; None when ``op`` is not a request."""
    try:
        return _RESPONSES.get(Op(op))
    except ValueError:
        return None


def encode_frame(op: int, body: dict[str, Any]) -> bytes:
    """One frame: length, operation byte, CBOR of ``body``."""
    payload = cbor2.dumps(body)
    return LENGTH.pack(len(payload) + 1, int(op)) + payload


def parse_header(header: bytes) -> tuple[int, int]:
    """(payload length, operation) of a 5-byte frame header; a length below 1 is an error."""
    length, op = LENGTH.unpack(header)
    if length < 1:
        raise ProtocolError(f"frame length {length} is not positive")
    return length - 1, op


def decode_payload(payload: bytes) -> dict[str, Any]:
    """The CBOR map of a request; ProtocolError (InvalidRequest) for anything else."""
    try:
        body = cbor2.loads(payload)
    except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError, RecursionError) as exc:
        raise ProtocolError(f"the request payload is not valid CBOR: {exc}") from exc
    if not isinstance(body, dict):
        raise ProtocolError(f"the request payload is a CBOR {type(body).__name__}, not a map")
    return body


def peek_request_id(prefix: bytes) -> str:
    """The ``requestId`` of a request from the first bytes of its payload, or "".

    For a request too large to read whole: the SDKs write ``requestId`` first, so a
    RequestPayloadTooLarge answer can still reach the caller that waits for it.
    """
    try:
        first = prefix[0]
        if 0xA1 <= first <= 0xB7:
            pos = 1
        elif first == 0xB8:
            pos = 2
        elif first == 0xBF:  # indefinite-length map
            pos = 1
        else:
            return ""
        key, pos = _text(prefix, pos)
        if key != "requestId":
            return ""
        value, _ = _text(prefix, pos)
        return value
    except (IndexError, UnicodeDecodeError, ValueError):
        return ""


def _text(data: bytes, pos: int) -> tuple[str, int]:
    head = data[pos]
    if head >> 5 != 3:
        raise ValueError("not a text string")
    info = head & 0x1F
    pos += 1
    if info < 24:
        size = info
    elif info == 24:
        size = data[pos]
        pos += 1
    elif info == 25:
        size = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
    else:
        raise ValueError("text too long to peek")
    raw = data[pos : pos + size]
    if len(raw) != size:
        raise ValueError("truncated")
    return raw.decode("utf-8"), pos + size
