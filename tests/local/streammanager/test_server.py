"""The server with the public SDK as the client, and with hostile clients."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import cbor2
import pytest
from stream_manager import (
    ExportDefinition,
    IoTAnalyticsConfig,
    MessageStreamDefinition,
    Persistence,
    ReadMessagesOptions,
    StrategyOnFull,
    StreamManagerClient,
)
from stream_manager.exceptions import (
    ConnectFailedException,
    InvalidRequestException,
    NotEnoughMessagesException,
    RequestPayloadTooLargeException,
    ResourceNotFoundException,
    UpdateNotAllowedException,
)

from edgekit.local.streammanager.protocol import (
    CONNECT_VERSION,
    LENGTH,
    Op,
    Status,
    encode_frame,
    parse_header,
)
from edgekit.local.streammanager.server import StreamManagerServer


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StreamManagerServer]:
    monkeypatch.delenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", raising=False)
    srv = StreamManagerServer(tmp_path / "store", max_request_bytes=64 * 1024).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(server: StreamManagerServer) -> Iterator[StreamManagerClient]:
    c = StreamManagerClient(port=server.port, request_timeout=30)
    try:
        yield c
    finally:
        c.close()


def create(client: StreamManagerClient, name: str = "s", **kw: object) -> None:
    client.create_message_stream(
        MessageStreamDefinition(name=name, strategy_on_full=StrategyOnFull.RejectNewData, **kw)
    )


def test_stream_lifecycle_through_the_sdk(client: StreamManagerClient) -> None:
    create(client, persistence=Persistence.Memory)
    assert client.list_streams() == ["s"]
    assert [client.append_message("s", b"%d" % i) for i in range(3)] == [0, 1, 2]
    messages = client.read_messages(
        "s",
        ReadMessagesOptions(
            desired_start_sequence_number=1, min_message_count=1, max_message_count=5
        ),
    )
    assert [m.payload for m in messages] == [b"1", b"2"]
    assert client.read_messages("s")[0].payload == b"0"  # no options: one message from 0
    info = client.describe_message_stream("s")
    assert info.storage_status.newest_sequence_number == 2
    assert info.definition.persistence == Persistence.Memory
    client.update_message_stream(
        MessageStreamDefinition(
            name="s",
            strategy_on_full=StrategyOnFull.OverwriteOldestData,
            persistence=Persistence.Memory,
        )
    )
    assert client.describe_message_stream("s").definition.strategy_on_full == (
        StrategyOnFull.OverwriteOldestData
    )
    with pytest.raises(UpdateNotAllowedException):
        client.update_message_stream(
            MessageStreamDefinition(name="s", strategy_on_full=StrategyOnFull.RejectNewData)
        )
    client.delete_message_stream("s")
    assert client.list_streams() == []


def test_errors_reach_the_sdk_as_its_exceptions(client: StreamManagerClient) -> None:
    with pytest.raises(ResourceNotFoundException):
        client.append_message("missing", b"x")
    with pytest.raises(ResourceNotFoundException):
        client.describe_message_stream("missing")
    create(client)
    with pytest.raises(InvalidRequestException, match="already exists"):
        create(client)
    with pytest.raises(NotEnoughMessagesException):
        client.read_messages("s", ReadMessagesOptions(min_message_count=1))
    with pytest.raises(InvalidRequestException, match="IoT Analytics"):
        create(
            client,
            "k",
            export_definition=ExportDefinition(
                iot_analytics=[IoTAnalyticsConfig(identifier="k", iot_channel="x")]
            ),
        )
    with pytest.raises(RequestPayloadTooLargeException):
        client.append_message("s", b"x" * (65 * 1024))
    assert client.append_message("s", b"still fine") == 0  # the connection goes on


def test_a_read_waits_for_messages_appended_later(
    server: StreamManagerServer, client: StreamManagerClient
) -> None:
    create(client)
    other = StreamManagerClient(port=server.port)
    waiting = threading.Event()
    result: list[list[bytes]] = []

    def reader() -> None:
        waiting.set()
        messages = client.read_messages(
            "s",
            ReadMessagesOptions(
                min_message_count=2, max_message_count=2, read_timeout_millis=20000
            ),
        )
        result.append([m.payload for m in messages])

    thread = threading.Thread(target=reader)
    thread.start()
    waiting.wait()
    other.append_message("s", b"a")
    other.append_message("s", b"b")
    thread.join(30)
    other.close()
    assert result == [[b"a", b"b"]]


def test_a_read_that_times_out_is_not_enough_messages(client: StreamManagerClient) -> None:
    create(client)
    client.append_message("s", b"only one")
    with pytest.raises(NotEnoughMessagesException):
        client.read_messages("s", ReadMessagesOptions(min_message_count=2, read_timeout_millis=50))


# --- raw sockets: what the SDK never sends -------------------------------------------------


def connect(
    port: int, version: int = CONNECT_VERSION, body: dict | None = None
) -> tuple[socket.socket, dict]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    body = body if body is not None else {"requestId": "c", "protocolVersion": "1.1.0"}
    sock.sendall(bytes([version]) + encode_frame(Op.Connect, body))
    assert recv_exact(sock, 1)[0] == CONNECT_VERSION
    return sock, read_frame(sock)[1]


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def read_frame(sock: socket.socket) -> tuple[int, dict]:
    length, op = parse_header(recv_exact(sock, LENGTH.size))
    return op, cbor2.loads(recv_exact(sock, length))


def closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionError:
        return True


def still_serving(server: StreamManagerServer) -> None:
    c = StreamManagerClient(port=server.port)
    try:
        assert isinstance(c.list_streams(), list)
    finally:
        c.close()


def test_connect_answers(server: StreamManagerServer) -> None:
    sock, response = connect(server.port)
    assert response["status"] == Status.Success and response["protocolVersion"] == "1.1.0"
    sock.close()
    sock, response = connect(server.port, body={"requestId": "c", "protocolVersion": "9.9.9"})
    assert response["status"] == Status.UnsupportedProtocolVersion
    assert closed(sock)
    sock, response = connect(server.port, version=7)
    assert response["status"] == Status.UnsupportedConnectVersion
    assert closed(sock)


def test_garbage_unknown_operations_and_missing_request_ids_get_answers(
    server: StreamManagerServer,
) -> None:
    sock, _ = connect(server.port)
    sock.sendall(LENGTH.pack(5, Op.AppendMessage) + b"\xff\xfe\xfd\xfc")
    op, body = read_frame(sock)
    assert op == Op.AppendMessageResponse and body["status"] == Status.InvalidRequest
    sock.sendall(encode_frame(99, {"requestId": "u1"}))
    op, body = read_frame(sock)
    assert op == Op.UnknownOperationError
    assert (body["requestId"], body["status"]) == ("u1", Status.UnknownOperation)
    sock.sendall(encode_frame(Op.ListStreams, {}))
    op, body = read_frame(sock)
    assert op == Op.ListStreamsResponse and body["status"] == Status.InvalidRequest
    sock.sendall(
        encode_frame(
            Op.ReadMessages,
            {
                "requestId": "r",
                "streamName": "s",
                "readMessagesOptions": {"minMessageCount": 5, "maxMessageCount": 1},
            },
        )
    )
    op, body = read_frame(sock)
    assert body["status"] == Status.InvalidRequest and "minMessageCount" in body["errorMessage"]
    sock.close()
    still_serving(server)


@pytest.mark.parametrize(
    "frame",
    [
        LENGTH.pack(2**31 - 1, Op.AppendMessage),  # over 1 GiB: not a client
        LENGTH.pack(-1, Op.AppendMessage),
        LENGTH.pack(100, Op.AppendMessage) + b"\xa1",  # truncated, then the client leaves
        b"\x00\x00",  # half a header
    ],
    ids=["oversize", "negative", "truncated", "half-header"],
)
def test_hostile_frames_end_only_their_connection(
    server: StreamManagerServer, frame: bytes
) -> None:
    sock, _ = connect(server.port)
    sock.sendall(frame)
    if frame.startswith(LENGTH.pack(100, Op.AppendMessage)) or len(frame) < LENGTH.size:
        sock.shutdown(socket.SHUT_WR)
    assert closed(sock)
    sock.close()
    still_serving(server)


def test_a_request_before_connect_is_refused(server: StreamManagerServer) -> None:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(bytes([CONNECT_VERSION]) + encode_frame(Op.ListStreams, {"requestId": "x"}))
    assert closed(sock)
    still_serving(server)


# --- authentication ------------------------------------------------------------------------


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[StreamManagerServer]:
    srv = StreamManagerServer(tmp_path / "auth", authenticate=lambda token: token == "good").start()
    try:
        yield srv
    finally:
        srv.stop()


def test_the_sdk_sends_the_container_token_and_only_good_ones_connect(
    auth_server: StreamManagerServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "good")
    client = StreamManagerClient(port=auth_server.port)
    assert client.list_streams() == []
    client.close()
    for token in ("bad", None):
        if token is None:
            monkeypatch.delenv("AWS_CONTAINER_AUTHORIZATION_TOKEN")
        else:
            monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", token)
        with pytest.raises(ConnectFailedException):
            StreamManagerClient(port=auth_server.port)


def test_an_authenticator_that_fails_refuses_the_client(tmp_path: Path) -> None:
    def broken(token: str) -> bool:
        raise RuntimeError("IPC unreachable")

    srv = StreamManagerServer(tmp_path, authenticate=broken).start()
    try:
        sock, response = connect(
            srv.port, body={"requestId": "c", "protocolVersion": "1.1.0", "authToken": "t"}
        )
        assert response["status"] == Status.Unauthorized
        assert "AWS_CONTAINER_AUTHORIZATION_TOKEN" in response["errorMessage"]
        sock.close()
    finally:
        srv.stop()
