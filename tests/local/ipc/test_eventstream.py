"""The event-stream codec: exact wire layout, strict validation, and fuzzing of the decoder."""

from __future__ import annotations

import struct
import uuid
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit.local.ipc.eventstream import (
    MAX_HEADERS_SIZE,
    EventStreamProtocolError,
    FrameDecoder,
    Header,
    HeaderType,
    Message,
    decode,
    encode,
)


def _frame(headers_block: bytes, payload: bytes = b"", *, total: int | None = None) -> bytes:
    """Hand-built frame with correct CRCs around arbitrary header bytes."""
    if total is None:
        total = 12 + len(headers_block) + len(payload) + 4
    prefix = struct.pack(">II", total, len(headers_block))
    body = prefix + struct.pack(">I", zlib.crc32(prefix)) + headers_block + payload
    return body + struct.pack(">I", zlib.crc32(body))


def test_wire_layout_matches_the_specification() -> None:
    frame = encode([Header.int32(":stream-id", 7)], b"{}")
    total, headers_len, prelude_crc = struct.unpack(">III", frame[:12])
    assert total == len(frame)
    assert prelude_crc == zlib.crc32(frame[:8])
    # name length, name, type 4 (int32), big-endian value
    assert frame[12 : 12 + headers_len] == b"\x0a:stream-id\x04\x00\x00\x00\x07"
    assert frame[12 + headers_len : -4] == b"{}"
    assert struct.unpack(">I", frame[-4:])[0] == zlib.crc32(frame[:-4])


def test_every_header_type_round_trips() -> None:
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    headers = [
        Header("t", HeaderType.BOOL_TRUE, True),
        Header("f", HeaderType.BOOL_FALSE, False),
        Header("b", HeaderType.BYTE, -128),
        Header("s", HeaderType.INT16, 32767),
        Header("i", HeaderType.INT32, -(2**31)),
        Header("l", HeaderType.INT64, 2**63 - 1),
        Header("buf", HeaderType.BYTE_BUF, b"\x00\xff"),
        Header("str", HeaderType.STRING, "héllo"),
        Header("ts", HeaderType.TIMESTAMP, 1_700_000_000_123),
        Header("id", HeaderType.UUID, u),
    ]
    message = decode(encode(headers, b"payload"))
    assert message.headers == headers
    assert message.payload == b"payload"
    assert message.header("STR") == headers[7]  # lookup is case-insensitive


def test_incremental_feeding_byte_by_byte() -> None:
    frames = [encode([Header.string("operation", f"op{i}")], b"x" * i) for i in range(5)]
    decoder = FrameDecoder()
    got: list[Message] = []
    for byte in b"".join(frames):
        got.extend(decoder.feed(bytes([byte])))
    assert [m.header("operation").value for m in got] == [f"op{i}" for i in range(5)]  # type: ignore[union-attr]
    assert decoder.buffered == 0


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00\x00", "prelude CRC32"),
        (_frame(b"", total=15), "below the 16-byte minimum"),
        (_frame(b"", total=17 * 1024 * 1024), "exceeds"),
        (_frame(b"\x00"), "outside 1..127"),
        (_frame(b"\x80" + b"a" * 128 + b"\x07\x00\x00"), "outside 1..127"),
        (_frame(b"\x01a\x0a"), "unknown value type 10"),
        (_frame(b"\x01a\x04\x00\x00"), "runs past"),
        (_frame(b"\x01a\x07\x00\x05ab"), "runs past"),
        (_frame(b"\x01a\x07\x00\x02\xff\xfe"), "not valid UTF-8"),
        (_frame(b"\x02\xc3\x28\x00"), "not valid UTF-8"),
        (_frame(b"\x01a\x09" + b"\x00" * 15), "runs past"),
    ],
)
def test_malformed_frames_are_protocol_errors(frame: bytes, reason: str) -> None:
    with pytest.raises(EventStreamProtocolError, match=reason):
        FrameDecoder().feed(frame)


def test_headers_length_larger_than_the_message() -> None:
    prefix = struct.pack(">II", 20, 10)
    bad = prefix + struct.pack(">I", zlib.crc32(prefix)) + b"\x00" * 8
    with pytest.raises(EventStreamProtocolError, match="does not fit"):
        FrameDecoder().feed(bad)


def test_headers_block_over_128_kib() -> None:
    prefix = struct.pack(">II", MAX_HEADERS_SIZE + 100, MAX_HEADERS_SIZE + 1)
    with pytest.raises(EventStreamProtocolError, match="128 KiB"):
        FrameDecoder().feed(prefix + struct.pack(">I", zlib.crc32(prefix)))


def test_message_crc_mismatch_and_decoder_stays_failed() -> None:
    frame = bytearray(encode([Header.string("a", "b")], b"data"))
    frame[-5] ^= 0x01  # corrupt the payload, keep the prelude valid
    decoder = FrameDecoder()
    with pytest.raises(EventStreamProtocolError, match="message CRC32"):
        decoder.feed(bytes(frame))
    with pytest.raises(EventStreamProtocolError):
        decoder.feed(encode([], b""))


def test_truncated_frame_waits_then_decode_reports_it() -> None:
    frame = encode([Header.string("a", "b")], b"data")
    decoder = FrameDecoder()
    assert decoder.feed(frame[:-3]) == []
    assert decoder.buffered == len(frame) - 3
    with pytest.raises(EventStreamProtocolError, match="leftover"):
        decode(frame[:-3])
    with pytest.raises(EventStreamProtocolError, match="leftover"):
        decode(frame + b"\x00")


def test_encoder_refuses_values_the_wire_cannot_carry() -> None:
    with pytest.raises(ValueError, match="INT32"):
        encode([Header.int32("x", 2**31)])
    with pytest.raises(ValueError, match="1..127"):
        encode([Header.string("n" * 128, "v")])
    with pytest.raises(ValueError, match="65535"):
        encode([Header.string("n", "v" * 70000)])


# ---------------------------------------------------------------- property tests and fuzzing

_names = st.text(min_size=1, max_size=20).filter(lambda s: 1 <= len(s.encode()) <= 127)
_header = st.one_of(
    st.builds(Header.boolean, _names, st.booleans()),
    st.builds(lambda n, v: Header(n, HeaderType.BYTE, v), _names, st.integers(-128, 127)),
    st.builds(
        lambda n, v: Header(n, HeaderType.INT16, v), _names, st.integers(-(2**15), 2**15 - 1)
    ),
    st.builds(Header.int32, _names, st.integers(-(2**31), 2**31 - 1)),
    st.builds(
        lambda n, v: Header(n, HeaderType.INT64, v), _names, st.integers(-(2**63), 2**63 - 1)
    ),
    st.builds(lambda n, v: Header(n, HeaderType.BYTE_BUF, v), _names, st.binary(max_size=64)),
    st.builds(Header.string, _names, st.text(max_size=64)),
    st.builds(lambda n, v: Header(n, HeaderType.TIMESTAMP, v), _names, st.integers(0, 2**62)),
    st.builds(lambda n, v: Header(n, HeaderType.UUID, v), _names, st.uuids()),
)
_messages = st.tuples(st.lists(_header, max_size=8), st.binary(max_size=256))


@settings(max_examples=200, deadline=None)
@given(_messages)
def test_round_trip_property(msg: tuple[list[Header], bytes]) -> None:
    headers, payload = msg
    decoded = decode(encode(headers, payload))
    assert decoded.headers == headers
    assert decoded.payload == payload


def _feed_all(data: bytes, chunk: int) -> list[Message] | EventStreamProtocolError:
    """Messages decoded from ``data`` fed in chunks, or the protocol error; anything else raises."""
    decoder = FrameDecoder()
    out: list[Message] = []
    try:
        for i in range(0, len(data), chunk):
            out.extend(decoder.feed(data[i : i + chunk]))
    except EventStreamProtocolError as exc:
        return exc
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048), st.integers(1, 64))
def test_fuzz_random_bytes_only_raise_protocol_errors(data: bytes, chunk: int) -> None:
    result = _feed_all(data, chunk)
    if isinstance(result, list):  # whatever decoded must be exactly what was sent
        assert sum(len(encode(m.headers, m.payload)) for m in result) <= len(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    _messages,
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, 3),
    st.integers(1, 64),
)
def test_fuzz_mutated_valid_frames(
    msg: tuple[list[Header], bytes],
    mutations: list[tuple[int, int]],
    mode: int,
    chunk: int,
) -> None:
    """Flip, overwrite, truncate or extend real frames: the decoder never raises anything else."""
    frame = bytearray(encode(*msg))
    for pos, value in mutations:
        i = pos % len(frame)
        if mode == 0:
            frame[i] ^= value or 1
        elif mode == 1:
            frame[i] = value
        elif mode == 2:
            del frame[i:]
            if not frame:
                frame = bytearray(b"\x00")
        else:
            frame[i:i] = bytes([value])
    result = _feed_all(bytes(frame), chunk)
    if isinstance(result, list) and bytes(frame) == encode(*msg):
        assert [(m.headers, m.payload) for m in result] == [msg]


@settings(max_examples=200, deadline=None)
@given(_messages, st.integers(0, 1 << 30))
def test_fuzz_mutated_header_blocks_with_valid_crcs(
    msg: tuple[list[Header], bytes], seed: int
) -> None:
    """Corrupt only the headers block and recompute both CRCs, so header parsing itself is hit."""
    headers, payload = msg
    frame = encode(headers, payload)
    headers_len = struct.unpack(">I", frame[4:8])[0]
    block = bytearray(frame[12 : 12 + headers_len]) or bytearray(b"\x01")
    block[seed % len(block)] = (seed >> 8) & 0xFF
    result = _feed_all(_frame(bytes(block), payload), 4096)
    if isinstance(result, list):
        assert len(result) == 1 and result[0].payload == payload
