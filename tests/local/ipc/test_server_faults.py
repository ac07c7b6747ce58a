"""Faults: malformed frames, a fuzzed live server, a stuck subscriber, a broker restart.

Healthy components use the OFFICIAL SDK. The hand-written raw socket client is
used only to send what the SDK never would (malformed and fuzzed frames).
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import socket
import statistics
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("awsiot.greengrasscoreipc")

import awsiot.greengrasscoreipc  # noqa: E402
import paho.mqtt.client as paho  # noqa: E402
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2  # noqa: E402
from awsiot.greengrasscoreipc.model import (  # noqa: E402
    BinaryMessage,
    JsonMessage,
    PublishMessage,
    ServiceError,
    SubscribeToTopicRequest,
)

from edgekit.errors import LocalBackendError  # noqa: E402
from edgekit.local.ipc.eventstream import FrameDecoder, Header, Message, encode  # noqa: E402
from edgekit.local.ipc.memory_host import MemoryHost  # noqa: E402
from edgekit.local.ipc.rpc import SendQueuePolicy  # noqa: E402
from edgekit.local.ipc.server import IpcServer  # noqa: E402
from edgekit.local.mqtt import Broker  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

SOCKET_ENV = "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"
ALL_PUBSUB = {"aws.greengrass.ipc.pubsub": {"all": {"operations": ["*"], "resources": ["*"]}}}
ALL_MQTT = {"aws.greengrass.ipc.mqttproxy": {"all": {"operations": ["*"], "resources": ["*"]}}}


def _sdk_client(
    monkeypatch: pytest.MonkeyPatch, server: IpcServer, token: str, *, v2: bool = True
) -> Any:
    monkeypatch.setenv(SOCKET_ENV, str(server.socket_path))
    monkeypatch.setenv("SVCUID", token)
    return GreengrassCoreIPCClientV2() if v2 else awsiot.greengrasscoreipc.connect()


# ---------------------------------------------------------------- raw socket client (faults only)
def _rpc_frame(
    message_type: int,
    flags: int,
    stream_id: int,
    extra: list[Header] | None = None,
    payload: bytes = b"",
) -> bytes:
    headers = [
        Header.int32(":message-type", message_type),
        Header.int32(":message-flags", flags),
        Header.int32(":stream-id", stream_id),
    ]
    return encode(headers + (extra or []), payload)


def _connect_frame(token: str) -> bytes:
    return _rpc_frame(
        4, 0, 0, [Header.string(":version", "0.1.0")], json.dumps({"authToken": token}).encode()
    )


class RawClient:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(str(path))
        self.decoder = FrameDecoder()
        self.pending: list[Message] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_message(self) -> Message | None:
        """The next message, or None once the server has closed the connection."""
        while not self.pending:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return None
            if not data:
                return None
            self.pending.extend(self.decoder.feed(data))
        return self.pending.pop(0)

    def handshake(self, token: str) -> None:
        self.send(_connect_frame(token))
        ack = self.recv_message()
        assert ack is not None
        assert ack.header(":message-type").value == 5  # type: ignore[union-attr]
        assert ack.header(":message-flags").value == 1  # type: ignore[union-attr]

    def expect_protocol_error_and_close(self) -> str:
        message = self.recv_message()
        assert message is not None, "server closed without a PROTOCOL_ERROR"
        assert message.header(":message-type").value == 6  # type: ignore[union-attr]
        assert self.recv_message() is None, "server kept the connection open"
        return str(json.loads(message.payload)["message"])

    def close(self) -> None:
        self.sock.close()


# ---------------------------------------------------------------- malformed frames
@pytest.fixture
def pubsub_server(sockdir: Path) -> Iterator[tuple[IpcServer, MemoryHost]]:
    host = MemoryHost()
    with IpcServer(sockdir / "ipc.sock", host) as server:
        yield server, host


def _healthy_roundtrip(client: Any, got: queue.Queue[Any], n: int) -> None:
    client.publish_to_topic(
        topic="health", publish_message=PublishMessage(json_message=JsonMessage(message={"n": n}))
    )
    assert got.get(timeout=5).json_message.message == {"n": n}


def _prelude_ok_then(body: bytes) -> bytes:
    prefix = struct.pack(">II", 12 + len(body) + 4, 0)
    return prefix + struct.pack(">I", zlib.crc32(prefix)) + body + b"\x00\x00\x00\x00"


MALFORMED: dict[str, Callable[[str], bytes]] = {
    "garbage before connect": lambda t: b"GET / HTTP/1.1\r\n\r\n",
    "bad prelude crc": lambda t: b"\x00\x00\x00\x20\x00\x00\x00\x00\xde\xad\xbe\xef" + b"\x00" * 20,
    "bad message crc": lambda t: _prelude_ok_then(b"payload"),
    "message before connect": lambda t: _rpc_frame(0, 0, 1, [Header.string("operation", "x")]),
    "missing :message-type": lambda t: encode([Header.int32(":stream-id", 0)]),
    "wrong header type": lambda t: encode(
        [
            Header.string(":message-type", "4"),
            Header.int32(":message-flags", 0),
            Header.int32(":stream-id", 0),
        ]
    ),
    "after connect: app message on stream 0": lambda t: _connect_frame(t) + _rpc_frame(0, 0, 0),
    "after connect: second CONNECT": lambda t: _connect_frame(t) + _connect_frame(t),
    "after connect: new stream without operation": lambda t: (
        _connect_frame(t) + _rpc_frame(0, 0, 1)
    ),
    "after connect: unknown flags": lambda t: _connect_frame(t) + _rpc_frame(2, 0x10, 0),
    "after connect: unknown message type": lambda t: _connect_frame(t) + _rpc_frame(9, 0, 0),
    "after connect: negative stream id": lambda t: _connect_frame(t) + _rpc_frame(0, 0, -5),
    "after connect: oversized length": lambda t: (
        _connect_frame(t)
        + (lambda p: p + struct.pack(">I", zlib.crc32(p)))(struct.pack(">II", 64 * 1024 * 1024, 0))
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_frame_closes_only_that_connection(
    pubsub_server: tuple[IpcServer, MemoryHost], monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    server, host = pubsub_server
    token = host.add_component("com.example.Healthy", access_control=ALL_PUBSUB)
    client = _sdk_client(monkeypatch, server, token)
    got: queue.Queue[Any] = queue.Queue()
    try:
        client.subscribe_to_topic(topic="health", on_stream_event=got.put)
        _healthy_roundtrip(client, got, 1)

        raw = RawClient(server.socket_path)
        raw.send(MALFORMED[case](token))
        if case.startswith("after connect"):
            ack = raw.recv_message()
            assert ack is not None and ack.header(":message-type").value == 5  # type: ignore[union-attr]
        reason = raw.expect_protocol_error_and_close()
        assert reason
        raw.close()

        _healthy_roundtrip(client, got, 2)  # the other connection is untouched
    finally:
        client.close()


def test_truncated_frame_then_hangup_is_cleaned_up(
    pubsub_server: tuple[IpcServer, MemoryHost], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, host = pubsub_server
    token = host.add_component("com.example.A", access_control=ALL_PUBSUB)
    raw = RawClient(server.socket_path)
    raw.handshake(token)
    frame = _rpc_frame(
        0, 0, 1, [Header.string("operation", "aws.greengrass#PublishToTopic")], b"{}"
    )
    raw.send(frame[: len(frame) // 2])
    time.sleep(0.1)
    raw.close()
    deadline = time.monotonic() + 5
    while server.connection_count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.connection_count == 0
    client = _sdk_client(monkeypatch, server, token)
    try:
        assert client.get_configuration().component_name == "com.example.A"
    finally:
        client.close()


def test_ping_gets_a_ping_response(pubsub_server: tuple[IpcServer, MemoryHost]) -> None:
    server, host = pubsub_server
    raw = RawClient(server.socket_path)
    raw.handshake(host.add_component("com.example.A"))
    raw.send(_rpc_frame(2, 0, 0, payload=b"are you there"))
    pong = raw.recv_message()
    assert pong is not None
    assert pong.header(":message-type").value == 3  # type: ignore[union-attr]
    assert pong.payload == b"are you there"
    raw.close()


@pytest.mark.slow
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(min_size=1, max_size=512), after_connect=st.booleans())
def test_fuzz_live_server_with_random_frames(
    pubsub_server: tuple[IpcServer, MemoryHost], data: bytes, after_connect: bool
) -> None:
    """Whatever arrives, the server answers or hangs up promptly and stays up."""
    server, host = pubsub_server
    token = host.add_component("com.example.Fuzz", token="fuzz-token")
    raw = RawClient(server.socket_path)
    try:
        raw.sock.settimeout(0.2)
        payload = (_connect_frame(token) if after_connect else b"") + data
        raw.send(payload)
        try:
            while raw.recv_message() is not None:
                pass
        except TimeoutError:
            pass  # a frame still incomplete: the server is waiting for the rest, as it should
    finally:
        raw.close()
    probe = RawClient(server.socket_path)
    try:
        probe.handshake(token)
    finally:
        probe.close()


# ---------------------------------------------------------------- slow subscriber
def test_subscriber_that_stops_reading_does_not_block_publishers(
    sockdir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    host = MemoryHost()
    policy = SendQueuePolicy(max_messages=256, max_bytes=4 * 1024 * 1024, max_dropped=400)
    stuck_token = host.add_component("com.example.Stuck", access_control=ALL_PUBSUB)
    healthy_token = host.add_component("com.example.Healthy", access_control=ALL_PUBSUB)
    pub_token = host.add_component("com.example.Publisher", access_control=ALL_PUBSUB)
    release = threading.Event()
    caplog.set_level(logging.WARNING, logger="edgekit.local.ipc.rpc")

    with IpcServer(sockdir / "ipc.sock", host, send_queue=policy) as server:
        # The stuck subscriber blocks its SDK event-loop thread: it stops reading the socket.
        stuck = _sdk_client(monkeypatch, server, stuck_token, v2=False)

        class Stuck(awsiot.greengrasscoreipc.client.SubscribeToTopicStreamHandler):
            def on_stream_event(self, event: Any) -> None:
                release.wait(60)

        op = stuck.new_subscribe_to_topic(Stuck())
        op.activate(SubscribeToTopicRequest(topic="load")).result(5)
        op.get_response().result(5)

        # Classic client: callbacks run in arrival order on the SDK thread, so order is checkable.
        healthy = _sdk_client(monkeypatch, server, healthy_token, v2=False)
        received: list[int] = []
        done = threading.Event()
        total = 2000

        class Healthy(awsiot.greengrasscoreipc.client.SubscribeToTopicStreamHandler):
            def on_stream_event(self, event: Any) -> None:
                received.append(int.from_bytes(event.binary_message.message[:4], "big"))
                if len(received) == total:
                    done.set()

        healthy_op = healthy.new_subscribe_to_topic(Healthy())
        healthy_op.activate(SubscribeToTopicRequest(topic="load")).result(5)
        healthy_op.get_response().result(5)
        publisher = _sdk_client(monkeypatch, server, pub_token)
        try:
            latencies = []
            filler = b"x" * 4096
            started = time.monotonic()
            for i in range(total):
                t0 = time.perf_counter()
                publisher.publish_to_topic(
                    topic="load",
                    publish_message=PublishMessage(
                        binary_message=BinaryMessage(message=i.to_bytes(4, "big") + filler)
                    ),
                )
                latencies.append(time.perf_counter() - t0)
            elapsed = time.monotonic() - started

            assert done.wait(20), f"healthy subscriber got {len(received)}/{total}"
            assert received == list(range(total))  # in order, nothing lost
            # Publishing never waited on the stuck reader.
            assert elapsed < 30
            assert statistics.median(latencies) < 0.05, statistics.median(latencies)
            # The stuck connection was closed under the drop policy; the others stay.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                components = {c["component"] for c in server.connection_stats()}
                if "com.example.Stuck" not in components:
                    break
                time.sleep(0.05)
            assert components == {"com.example.Healthy", "com.example.Publisher"}
            assert "com.example.Stuck is not reading its events" in caplog.text
        finally:
            release.set()
            for c in (publisher, healthy, stuck):
                c.close()


# ---------------------------------------------------------------- broker restart
@pytest.mark.slow
def test_iot_core_subscriptions_survive_a_broker_restart(
    sockdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = Broker(host="127.0.0.1", port=0).start()
    port = broker.port
    host = MemoryHost(mqtt_endpoint=broker.endpoint)
    token = host.add_component("com.example.A", access_control=ALL_MQTT)
    server = IpcServer(sockdir / "ipc.sock", host, mqtt_reconnect_delay=(0.5, 1.0)).start()
    peer_messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
    peers: list[paho.Client] = []

    def start_peer() -> paho.Client:
        peer = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"peer-{len(peers)}")
        subscribed = threading.Event()
        peer.on_message = lambda c, u, m: peer_messages.put(m)
        peer.on_subscribe = lambda *a: subscribed.set()
        peer.connect("127.0.0.1", port)
        peer.loop_start()
        peer.subscribe("up/#", qos=1)
        assert subscribed.wait(5)
        peers.append(peer)
        return peer

    client = _sdk_client(monkeypatch, server, token)
    try:
        assert server.bridge is not None and server.bridge.wait_connected(5)
        got: queue.Queue[Any] = queue.Queue()
        client.subscribe_to_iot_core(topic_name="down/#", qos="0", on_stream_event=got.put)
        peer = start_peer()
        peer.publish("down/1", b"before", qos=0).wait_for_publish(5)
        assert got.get(timeout=5).message.payload == b"before"

        broker.stop()
        peer.loop_stop()
        deadline = time.monotonic() + 10
        while server.bridge.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not server.bridge.connected
        with pytest.raises(ServiceError) as offline:
            client.publish_to_iot_core(topic_name="up/qos0", qos="0", payload=b"lost")
        assert "not connected" in (offline.value.message or "")
        client.publish_to_iot_core(topic_name="up/qos1", qos="1", payload=b"queued")  # spooled

        broker = Broker(host="127.0.0.1", port=port).start()  # same port, fresh state
        peer = start_peer()
        assert server.bridge.wait_connected(10)
        # The queued QoS 1 message goes out after the reconnect.
        assert peer_messages.get(timeout=10).payload == b"queued"
        # The IPC subscription was restored on the new broker without the component doing anything.
        deadline = time.monotonic() + 10
        payload = None
        while payload is None and time.monotonic() < deadline:
            peer.publish("down/2", b"after", qos=0).wait_for_publish(5)
            try:
                payload = got.get(timeout=0.5).message.payload
            except queue.Empty:
                continue
        assert payload == b"after"
    finally:
        client.close()
        for p in peers:
            p.disconnect()
            p.loop_stop()
        server.stop()
        broker.stop()


# ---------------------------------------------------------------- send queue policy (unit)
def test_send_queue_drops_oldest_events_and_keeps_responses() -> None:
    """Without a writer draining it, the queue shows the policy exactly."""
    from edgekit.local.ipc.rpc import RpcConnection

    async def scenario() -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            reader, writer = await asyncio.open_unix_connection(sock=ours)
            policy = SendQueuePolicy(max_messages=4, max_bytes=1 << 20, max_dropped=5)
            conn = RpcConnection(reader, writer, router=None, policy=policy)  # type: ignore[arg-type]
            conn.enqueue(b"response-1", droppable=False)
            for i in range(3):
                conn.enqueue(f"event-{i}".encode(), droppable=True)
            conn.enqueue(b"event-3", droppable=True)  # full: drops event-0
            conn.enqueue(b"event-4", droppable=True)  # drops event-1
            assert [f for f, _ in conn._queue] == [
                b"response-1",
                b"event-2",
                b"event-3",
                b"event-4",
            ]
            assert conn.dropped_events == 2
            conn.enqueue(b"response-2", droppable=False)  # responses are never dropped
            assert conn._queue[-1] == (b"response-2", False)
            for i in range(5, 8):  # three more drops reach max_dropped: connection closed
                conn.enqueue(f"event-{i}".encode(), droppable=True)
            assert conn.dropped_events == 5
            assert conn.close_reason is not None and "not reading" in conn.close_reason
            conn.enqueue(b"late", droppable=True)  # ignored once closing
            assert conn.dropped_events == 5
            writer.close()
        finally:
            ours.close()
            theirs.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o722])
def test_the_ipc_server_refuses_a_socket_folder_other_users_can_write(
    sockdir: Path, mode: int
) -> None:
    """Whoever binds the IPC socket first is the nucleus to every component: the device
    listens only in a folder no other user can write (issue 12, item 4 sibling)."""
    folder = sockdir / "shared"
    folder.mkdir()
    folder.chmod(mode)
    server = IpcServer(folder / "ipc.sock", MemoryHost(mqtt_endpoint=None))
    with pytest.raises(LocalBackendError, match=rf"{folder} has mode 0{mode:o}: other users"):
        server.start()
    assert not (folder / "ipc.sock").exists()


def test_the_ipc_server_refuses_a_symlinked_socket_folder(sockdir: Path) -> None:
    real = sockdir / "real"
    real.mkdir()
    (sockdir / "link").symlink_to(real)
    server = IpcServer(sockdir / "link" / "ipc.sock", MemoryHost(mqtt_endpoint=None))
    with pytest.raises(LocalBackendError, match="is a symbolic link"):
        server.start()
