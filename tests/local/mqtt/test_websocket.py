"""MQTT over WebSocket on the local broker: real paho clients, a raw RFC 6455 client, fuzzing.

The raw client does what real clients avoid (unmasked frames, text frames,
bad handshakes, oversized frames) and checks that only its own connection is
closed, with the HTTP status or Close code RFC 6455 asks for.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

paho = pytest.importorskip("paho.mqtt.client")

from edgekit.errors import LocalBackendError  # noqa: E402
from edgekit.local.mqtt import Broker, BrokerLimits  # noqa: E402
from edgekit.local.mqtt import packets as pk  # noqa: E402
from edgekit.local.mqtt.websocket import (  # noqa: E402
    MAX_HANDSHAKE_BYTES,
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Frame,
    FrameDecoder,
    HandshakeError,
    WebSocketError,
    accept_key,
    encode_frame,
    parse_close,
    parse_handshake,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

MASK = b"\x37\xfa\x21\x3d"


def presign(path: str, host: str) -> str:
    """``path`` presigned as AWS IoT Core wants (awscrt's signer, the local credentials)."""
    from awscrt import auth, http

    request = http.HttpRequest("GET", path, http.HttpHeaders([("Host", host)]))
    config = auth.AwsSigningConfig(
        algorithm=auth.AwsSigningAlgorithm.V4,
        signature_type=auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS,
        credentials_provider=auth.AwsCredentialsProvider.new_static("testing", "testing"),
        region="us-east-1",
        service="iotdevicegateway",
    )
    auth.aws_sign_request(request, config).result(5)
    return request.path


@pytest.fixture
def broker() -> Iterator[Broker]:
    b = Broker(port=0, websocket_port=0).start()
    yield b
    b.stop()


# --- a raw websocket client ----------------------------------------------------------------------


def _request(
    port: int, *, path: str = "/mqtt", drop: str = "", extra: str = "", **headers: str
) -> bytes:
    fields = {
        "Host": f"127.0.0.1:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Protocol": "mqtt",
    }
    fields.update({k.replace("_", "-"): v for k, v in headers.items()})
    fields.pop(drop, None)
    if "Host" in fields and path.startswith("/"):
        path = presign(path, fields["Host"])  # the broker checks SigV4 after the handshake
    head = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return (head + extra + "\r\n").encode()


class RawWs:
    """A blocking websocket client: a socket, our frame codec, and server-side decoding."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        self.decoder = FrameDecoder(1 << 24, require_mask=False)  # server frames are unmasked
        self.stream = b""  # MQTT bytes received in binary frames
        self.pending: list[Frame] = []

    def handshake(self, request: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send ``request``; (status, headers, body-or-rest) of the server's reply."""
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self.buf = rest
        return status, headers, rest

    def upgrade(self, **kwargs: str) -> dict[str, str]:
        status, headers, _ = self.handshake(_request(self.sock.getpeername()[1], **kwargs))
        assert status == 101, status
        return headers

    def send_frame(self, opcode: int, payload: bytes = b"", *, fin: bool = True) -> None:
        self.sock.sendall(encode_frame(opcode, payload, fin=fin, mask=MASK))

    def send_mqtt(self, packet: pk.Packet, version: int = pk.MQTT_311) -> None:
        self.send_frame(OP_BINARY, pk.encode(packet, version))

    def frames(self, timeout: float = 5.0) -> list[tuple[int, bytes]]:
        """Frames until the server closes the TCP connection (or ``timeout``)."""
        got = [(f.opcode, f.payload) for f in self.pending]
        self.pending = []
        self.sock.settimeout(timeout)
        data = self.buf
        self.buf = b""
        while True:
            for f in self.decoder.feed(data):
                got.append((f.opcode, f.payload))
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                return got
            if not data:
                return got

    def next_frame(self, timeout: float = 5.0) -> tuple[int, bytes]:
        self.sock.settimeout(timeout)
        while True:
            self.pending += self.decoder.feed(self.buf)
            self.buf = b""
            if self.pending:
                frame = self.pending.pop(0)
                return frame.opcode, frame.payload
            chunk = self.sock.recv(65536)
            assert chunk, "the server closed the connection"
            self.buf = chunk

    def mqtt(self, version: int = pk.MQTT_311) -> pk.Packet:
        """The next MQTT packet from the binary frames."""
        while True:
            if len(self.stream) >= 2:
                try:
                    return self._split(version)
                except ValueError:
                    pass
            opcode, payload = self.next_frame()
            assert opcode == OP_BINARY, opcode
            self.stream += payload

    def _split(self, version: int) -> pk.Packet:
        from edgekit.local.mqtt.wire import decode_varint

        try:
            length, pos = decode_varint(self.stream, 1, len(self.stream))
        except Exception as exc:
            raise ValueError from exc
        if len(self.stream) < pos + length:
            raise ValueError
        raw, self.stream = self.stream[: pos + length], self.stream[pos + length :]
        return pk.decode(raw, version)

    def close(self) -> None:
        self.sock.close()


def _connected(port: int, version: int = pk.MQTT_311) -> RawWs:
    ws = RawWs(port)
    ws.upgrade()
    ws.send_mqtt(pk.Connect(f"raw-{uuid.uuid4().hex[:8]}", version, True, 30), version)
    connack = ws.mqtt(version)
    assert isinstance(connack, pk.Connack) and connack.reason_code == 0
    return ws


class Paho:
    """A paho client over websockets (or TCP) that records what it receives."""

    def __init__(self, port: int, *, transport: str = "websockets", protocol: int = 4) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.cond = threading.Condition()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=f"p-{uuid.uuid4().hex[:8]}",
            transport=transport,
            protocol=paho.MQTTv5 if protocol == 5 else paho.MQTTv311,
        )
        if transport == "websockets":
            path = presign("/mqtt?probe=1&who=edge%20kit", f"127.0.0.1:{port}")
            self.client.ws_set_options(path=path)
        connected = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: connected.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        assert connected.wait(5), "no CONNACK over websockets"

    def _on_message(self, client: object, userdata: object, msg: paho.MQTTMessage) -> None:
        with self.cond:
            self.got.append((msg.topic, msg.payload))
            self.cond.notify_all()

    def subscribe(self, topic: str, qos: int = 1) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        self.client.subscribe(topic, qos)
        assert done.wait(5), "no SUBACK"

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.client.publish(topic, payload, qos=qos).wait_for_publish(5)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[str, bytes]]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.got) >= count, timeout)
            return list(self.got)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# --- real clients ----------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [4, 5], ids=["mqtt311", "mqtt5"])
def test_paho_round_trip_over_websockets(broker: Broker, protocol: int) -> None:
    ws = Paho(broker.websocket_port, protocol=protocol)
    tcp = Paho(broker.port, transport="tcp", protocol=protocol)
    try:
        ws.subscribe("ws/#")
        tcp.subscribe("tcp/#")
        big = os.urandom(300_000)  # spans many TCP reads, one websocket frame
        tcp.publish("ws/big", big)
        ws.publish("ws/self", b"echo")
        ws.publish("tcp/from-ws", b"over the bridge")
        got = ws.wait_for(2)
        assert sorted(got) == sorted([("ws/big", big), ("ws/self", b"echo")])
        assert tcp.wait_for(1) == [("tcp/from-ws", b"over the bridge")]
    finally:
        ws.close()
        tcp.close()
    seen = broker.websocket_handshakes()[-1]
    assert seen.path == "/mqtt"
    assert (seen.query["probe"], seen.query["who"]) == (["1"], ["edge kit"])
    assert seen.target.startswith("/mqtt?probe=1&who=edge%20kit&X-Amz-")  # kept as sent
    assert seen.subprotocols == ["mqtt"]


def test_websocket_port_needs_the_listener() -> None:
    with Broker(port=0) as b, pytest.raises(LocalBackendError, match="websocket_port=0"):
        _ = b.websocket_port


def test_handshake_reply_and_raw_mqtt_stream(broker: Broker) -> None:
    ws = RawWs(broker.websocket_port)
    try:
        key = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3's example
        status, headers, _ = ws.handshake(_request(broker.websocket_port, Sec_WebSocket_Key=key))
        assert status == 101
        assert headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        assert headers["sec-websocket-protocol"] == "mqtt"
        assert headers["upgrade"].lower() == "websocket"
        # CONNECT split over a binary frame and two continuations; then two packets in one frame
        connect = pk.encode(pk.Connect("raw-frag", pk.MQTT_311, True, 30), pk.MQTT_311)
        ws.send_frame(OP_BINARY, connect[:3], fin=False)
        ws.send_frame(OP_PING, b"mid-message ping")  # control frames may interleave
        ws.send_frame(OP_CONTINUATION, connect[3:7], fin=False)
        ws.send_frame(OP_CONTINUATION, connect[7:], fin=True)
        assert ws.next_frame() == (OP_PONG, b"mid-message ping")
        assert isinstance(ws.mqtt(), pk.Connack)
        sub = pk.encode(pk.Subscribe(1, [("raw/t", pk.SubscriptionOptions(qos=1))]), pk.MQTT_311)
        pub = pk.encode(pk.Publish("raw/t", b"hi", 0), pk.MQTT_311)
        ws.send_frame(OP_BINARY, sub + pub)
        assert isinstance(ws.mqtt(), pk.Suback)
        got = ws.mqtt()
        assert isinstance(got, pk.Publish) and (got.topic, got.payload) == ("raw/t", b"hi")
        ws.send_frame(OP_PONG, b"unsolicited")  # allowed, ignored
        ws.send_frame(OP_CLOSE, (1000).to_bytes(2, "big") + b"bye")
        assert ws.frames() == [(OP_CLOSE, (1000).to_bytes(2, "big"))]  # echoed, then TCP closed
    finally:
        ws.close()


# --- malformed handshakes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_kwargs", "status", "reason"),
    [
        ({"drop": "Sec-WebSocket-Protocol"}, 400, "subprotocol 'mqtt'"),
        ({"Sec_WebSocket_Protocol": "mqttv3.1, wamp"}, 400, "subprotocol 'mqtt'"),
        ({"Sec_WebSocket_Version": "8"}, 426, "use 13"),
        ({"Sec_WebSocket_Key": "c2hvcnQ="}, 400, "16 random bytes"),
        ({"drop": "Upgrade"}, 426, "Upgrade: websocket"),
        ({"Connection": "keep-alive"}, 426, "Connection: Upgrade"),
        ({"drop": "Host"}, 400, "no Host"),
        ({"path": "http://example.com/mqtt"}, 400, "origin-form"),
        ({"extra": "Content-Length: 5\r\n"}, 400, "body"),
        ({"extra": "X-Long: " + "a" * MAX_HANDSHAKE_BYTES + "\r\n"}, 431, "exceeds"),
    ],
)
def test_a_bad_handshake_is_refused_with_an_http_status(
    broker: Broker, request_kwargs: dict[str, str], status: int, reason: str
) -> None:
    other = _connected(broker.websocket_port)
    ws = RawWs(broker.websocket_port)
    try:
        got, headers, body = ws.handshake(_request(broker.websocket_port, **request_kwargs))
        assert got == status
        while len(body) < int(headers["content-length"]):
            body += ws.sock.recv(4096)
        assert reason in body.decode()
        assert ws.sock.recv(10) == b""  # closed after the reply
        if status == 426 and "Version" in str(request_kwargs):
            assert headers["sec-websocket-version"] == "13"
        # the other client is untouched
        other.send_mqtt(pk.PingReq())
        assert isinstance(other.mqtt(), pk.PingResp)
    finally:
        ws.close()
        other.close()


@pytest.mark.parametrize(
    ("first_line", "status"),
    [("POST /mqtt HTTP/1.1", 405), ("GET /mqtt HTTP/1.0", 505), ("GARBAGE", 400)],
)
def test_bad_request_lines(broker: Broker, first_line: str, status: int) -> None:
    ws = RawWs(broker.websocket_port)
    try:
        request = _request(broker.websocket_port).split(b"\r\n", 1)[1]
        got, headers, _ = ws.handshake(first_line.encode() + b"\r\n" + request)
        assert got == status
        if status == 405:
            assert headers["allow"] == "GET"
    finally:
        ws.close()


# --- malformed frames -------------------------------------------------------------------------


def _unmasked(opcode: int, payload: bytes) -> bytes:
    return encode_frame(opcode, payload)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (_unmasked(OP_BINARY, b"\xc0\x00"), 1002),  # a client frame must be masked
        (encode_frame(OP_TEXT, b"hello", mask=MASK), 1003),  # MQTT is binary only
        (encode_frame(0x3, b"", mask=MASK), 1002),  # reserved opcode
        (bytes([0xC2]) + encode_frame(OP_BINARY, b"x", mask=MASK)[1:], 1002),  # RSV1 set
        (encode_frame(OP_PING, b"", fin=False, mask=MASK), 1002),  # fragmented control frame
        (encode_frame(OP_PING, b"p" * 126, mask=MASK), 1002),  # control frame > 125 bytes
        (encode_frame(OP_CONTINUATION, b"x", mask=MASK), 1002),  # nothing to continue
        (bytes([0x82, 0xFE, 0x00, 0x05]) + MASK + b"12345", 1002),  # non-minimal length
        (encode_frame(OP_BINARY, b"x" * 5000, mask=MASK), 1009),  # over the size limit
        (encode_frame(OP_CLOSE, b"\x03", mask=MASK), 1002),  # 1-byte close body
        (encode_frame(OP_CLOSE, (1005).to_bytes(2, "big"), mask=MASK), 1002),  # reserved code
        (encode_frame(OP_CLOSE, b"\x03\xe8\xff", mask=MASK), 1007),  # reason not UTF-8
    ],
    ids=[
        "unmasked",
        "text",
        "reserved-opcode",
        "rsv1",
        "fragmented-ping",
        "long-ping",
        "stray-continuation",
        "non-minimal-length",
        "too-big",
        "short-close",
        "close-1005",
        "close-bad-utf8",
    ],
)
def test_a_bad_frame_closes_only_its_connection(raw: bytes, code: int) -> None:
    limits = BrokerLimits(max_packet_size=4096)
    with Broker(port=0, websocket_port=0, limits=limits) as broker:
        other = _connected(broker.websocket_port)
        victim = _connected(broker.websocket_port)
        try:
            victim.sock.sendall(raw)
            frames = victim.frames()
            assert frames, "the server sent no Close frame"
            opcode, payload = frames[-1]
            assert opcode == OP_CLOSE
            assert int.from_bytes(payload[:2], "big") == code
            other.send_mqtt(pk.PingReq())
            assert isinstance(other.mqtt(), pk.PingResp)
            deadline = time.monotonic() + 5
            while broker.call(lambda: broker.server.connection_count) != 1:
                assert time.monotonic() < deadline, "the bad connection was not dropped"
                time.sleep(0.02)
        finally:
            victim.close()
            other.close()


def test_new_data_frame_inside_a_fragmented_message_is_refused(broker: Broker) -> None:
    ws = _connected(broker.websocket_port)
    try:
        ws.send_frame(OP_BINARY, b"\xc0", fin=False)
        ws.send_frame(OP_BINARY, b"\x00")
        opcode, payload = ws.frames()[-1]
        assert (opcode, payload[:2]) == (OP_CLOSE, (1002).to_bytes(2, "big"))
        assert b"inside an unfinished fragmented message" in payload
    finally:
        ws.close()


def _closed(sock: socket.socket, timeout: float = 3.0) -> bool:
    """True once the peer closed ``sock`` (EOF or reset) within ``timeout``."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def test_mqtt_protocol_error_over_websocket_closes_with_a_close_frame(broker: Broker) -> None:
    ws = _connected(broker.websocket_port)
    try:
        ws.send_frame(OP_BINARY, b"\xf0\x00")  # AUTH... as 3.1.1: a reserved packet type
        frames = ws.frames()
        assert frames and frames[-1][0] == OP_CLOSE
    finally:
        ws.close()


def test_idle_handshake_times_out_and_stop_is_prompt() -> None:
    limits = BrokerLimits(connect_timeout=0.3)
    broker = Broker(port=0, websocket_port=0, limits=limits).start()
    idle = socket.create_connection(("127.0.0.1", broker.websocket_port), timeout=5)
    half = socket.create_connection(("127.0.0.1", broker.websocket_port), timeout=5)
    try:
        idle.sendall(b"GET /mqtt HTTP/1.1\r\n")  # never finishes the head
        assert _closed(idle)  # dropped after connect_timeout
        live = _connected(broker.websocket_port)
        half.sendall(b"GET /mqtt HTTP/1.1\r\n")  # mid-handshake when the broker stops
        time.sleep(0.1)
        started = time.monotonic()
        broker.stop()
        assert time.monotonic() - started < 3
        assert _closed(live.sock) and _closed(half)
        live.close()
    finally:
        idle.close()
        half.close()
        broker.stop()


# --- the process entry point ------------------------------------------------------------------


def test_module_entry_point_serves_websockets(tmp_path: Path) -> None:
    port_file, ws_file = tmp_path / "port", tmp_path / "ws-port"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgekit.local.mqtt",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--websocket-port",
            "0",
            "--websocket-port-file",
            str(ws_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "the broker did not write its port file"
            time.sleep(0.05)
        ws_port = int(ws_file.read_text())
        client = Paho(ws_port)
        client.subscribe("cli/#")
        client.publish("cli/x", b"ok")
        assert client.wait_for(1) == [("cli/x", b"ok")]
        client.close()
    finally:
        proc.terminate()
        proc.wait(10)


# --- pure codec: properties and fuzzing -------------------------------------------------------


def test_accept_key_matches_rfc_6455() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_parse_close() -> None:
    assert parse_close(b"") == (None, "")
    assert parse_close(b"\x03\xe8ok") == (1000, "ok")
    assert parse_close((4000).to_bytes(2, "big")) == (4000, "")
    codes = [c.to_bytes(2, "big") for c in (999, 1004, 1005, 1006, 1015, 2000, 5000)]
    for bad in [b"\x03", *codes]:
        with pytest.raises(WebSocketError):
            parse_close(bad)


@given(
    st.lists(
        st.tuples(
            st.sampled_from([OP_BINARY, OP_PING, OP_PONG]),
            st.binary(max_size=70_000),
            st.binary(min_size=4, max_size=4),
        ),
        max_size=6,
    ),
    st.lists(st.integers(min_value=1, max_value=40_000), min_size=1, max_size=8),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_frames_round_trip_however_they_are_chunked(
    frames: list[tuple[int, bytes, bytes]], cuts: list[int]
) -> None:
    frames = [(op, payload[:125] if op != OP_BINARY else payload, m) for op, payload, m in frames]
    wire = b"".join(encode_frame(op, payload, mask=m) for op, payload, m in frames)
    decoder = FrameDecoder(1 << 20)
    got = []
    pos, i = 0, 0
    while pos < len(wire):
        step = cuts[i % len(cuts)]
        got += decoder.feed(wire[pos : pos + step])
        pos += step
        i += 1
    assert [(f.opcode, f.payload) for f in got] == [(op, p) for op, p, _ in frames]


@given(st.binary(max_size=600), st.integers(min_value=1, max_value=64))
@settings(max_examples=400, deadline=None)
def test_frame_decoder_raises_only_websocket_errors(data: bytes, chunk: int) -> None:
    decoder = FrameDecoder(256)
    try:
        for pos in range(0, len(data), chunk):
            for frame in decoder.feed(data[pos : pos + chunk]):
                assert frame.opcode in (OP_BINARY, OP_CONTINUATION, OP_CLOSE, OP_PING, OP_PONG)
                assert len(frame.payload) <= 256
                if frame.opcode == OP_CLOSE:
                    parse_close(frame.payload)
    except WebSocketError:
        pass


@given(
    st.lists(
        st.sampled_from(
            [b"\x82", b"\x02", b"\x80", b"\x00", b"\x88", b"\x89", b"\x8a", b"\x81", b"\x83"]
        ),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.binary(max_size=12), min_size=1, max_size=6),
)
@settings(max_examples=300, deadline=None)
def test_frame_decoder_fuzz_with_plausible_headers(heads: list[bytes], tails: list[bytes]) -> None:
    """Valid-looking first bytes so the fuzzer reaches the length, mask and fragment checks."""
    data = b"".join(
        h + bytes([0x80 | len(t)]) + MASK + t for h, t in zip(heads, tails, strict=False)
    )
    with contextlib.suppress(WebSocketError):
        FrameDecoder(64).feed(data)


@given(st.binary(max_size=400))
@settings(max_examples=300, deadline=None)
def test_parse_handshake_raises_only_handshake_errors(data: bytes) -> None:
    for raw in (
        data,
        data + b"\r\n\r\n",
        _request(1).replace(b"\r\n\r\n", b"\r\n") + data + b"\r\n\r\n",
    ):
        try:
            parse_handshake(raw)
        except HandshakeError as exc:
            assert 400 <= exc.status < 600
