"""The agent's fast Predict socket (issue 16, item 4): shared-memory Predicts without gRPC.

AgentClient sends shared-memory Predicts over ``<socket>.predict`` when the agent has
it, and gRPC otherwise; the answers and the errors are the same either way. Which
transport served a call is seen by counting the servicer's entry points, never by time.
"""

from __future__ import annotations

import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgekit.agent import client as client_module
from edgekit.agent import fastpath
from edgekit.agent.client import AgentClient
from edgekit.agent.fastpath import FastPredictServer, fast_socket_path
from edgekit.agent.protos import agent_pb2
from edgekit.agent.sealed import MappedSegments, SealedSegment
from edgekit.agent.server import AgentServer, AgentServicer
from edgekit.agent.status import AgentStatusError
from edgekit.agent.testing import SignedPackage, signed_package
from edgekit.errors import AgentError

pytestmark = pytest.mark.integration

SHAPE = (1, 3, 64, 96)


@pytest.fixture(scope="module")
def server(workdir: Path, pkg: SignedPackage) -> Iterator[AgentServer]:
    srv = AgentServer(workdir / "agent.sock", pkg.public_key, max_workers=2).start()
    with AgentClient(srv.socket_path) as c:
        c.load_model("m", pkg.package)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def reference(pkg: SignedPackage):
    import onnxruntime as ort

    return ort.InferenceSession(str(pkg.model), providers=["CPUExecutionProvider"])


class Calls:
    """How many Predicts each transport served (by the name of the thread that ran it)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.grpc = 0
        self.fast = 0
        self.sealed: list[bool] = []
        """Per fast call: whether its connection had sealed segments registered."""
        predict = AgentServicer.predict
        answer = FastPredictServer._answer

        def counted(servicer, request, sealed=None):  # type: ignore[no-untyped-def]
            if not threading.current_thread().name.startswith("edgekit-agent-fast"):
                self.grpc += 1
            return predict(servicer, request, sealed)

        def counted_fast(server, kind, body, fds, segments):  # type: ignore[no-untyped-def]
            if kind == fastpath.PREDICT:
                self.fast += 1
                self.sealed.append(segments is not None and len(segments._maps) > 0)
            return answer(server, kind, body, fds, segments)

        monkeypatch.setattr(AgentServicer, "predict", counted)
        monkeypatch.setattr(FastPredictServer, "_answer", counted_fast)


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float32)


def _expected(reference, x: np.ndarray) -> dict[str, np.ndarray]:
    names = [o.name for o in reference.get_outputs()]
    return dict(zip(names, reference.run(names, {"image": x}), strict=True))


def _same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6)


def test_shared_memory_predicts_go_over_the_fast_socket(
    server: AgentServer, reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls(monkeypatch)
    mode = stat.S_IMODE(server.fast_path.stat().st_mode)
    assert server.fast_path == fast_socket_path(server.socket_path)
    assert mode == 0o660
    with AgentClient(server.socket_path) as client:
        for seed in range(3):
            x = _image(seed)
            _same(client.predict("m", {"image": x}, shared_memory=True), _expected(reference, x))
        assert (calls.fast, calls.grpc) == (3, 0)
        # Every fast call ran on the client's sealed segments, mapped by the agent.
        assert calls.sealed == [True, True, True]
        # Inline tensors still go over gRPC.
        _same(client.predict("m", {"image": _image(9)}), _expected(reference, _image(9)))
        assert (calls.fast, calls.grpc) == (3, 1)


def _error(client: AgentClient, name: str, inputs: dict[str, np.ndarray]) -> tuple[str, str]:
    with pytest.raises(AgentStatusError) as info:
        client.predict(name, inputs, shared_memory=True)
    assert info.value.method == "Predict"
    return info.value.code, info.value.details


def test_errors_are_the_same_as_over_grpc(
    server: AgentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls(monkeypatch)
    cases = [
        ("nope", {"image": _image()}),  # NOT_FOUND
        ("m", {"image": np.zeros((1, 3, 32, 32), np.float32)}),  # wrong shape
        ("m", {"other": _image()}),  # no such input
    ]
    with (
        AgentClient(server.socket_path) as fast,
        AgentClient(server.socket_path, fast_predict=False) as slow,
    ):
        for name, inputs in cases:
            over_fast = _error(fast, name, inputs)
            over_grpc = _error(slow, name, inputs)
            assert over_fast == over_grpc
    assert (calls.fast, calls.grpc) == (3, 3)
    assert over_fast[0] == "INVALID_ARGUMENT" and "has no input named 'other'" in over_fast[1]


def test_an_agent_without_the_fast_socket_is_served_over_grpc(
    workdir: Path, pkg: SignedPackage, reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls(monkeypatch)
    with AgentServer(workdir / "plain.sock", pkg.public_key, fast_predict=False) as srv:
        assert not fast_socket_path(srv.socket_path).exists()
        with AgentClient(srv.socket_path) as client:
            client.load_model("m", pkg.package)
            x = _image(3)
            _same(client.predict("m", {"image": x}, shared_memory=True), _expected(reference, x))
    assert (calls.fast, calls.grpc) == (0, 1)


def test_connections_over_the_limit_and_broken_ones_fall_back_to_grpc(
    server: AgentServer, reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls(monkeypatch)
    x = _image(4)
    want = _expected(reference, x)
    clients = [AgentClient(server.socket_path) for _ in range(3)]  # the server takes 2
    try:
        for client in clients:
            _same(client.predict("m", {"image": x}, shared_memory=True), want)
        assert (calls.fast, calls.grpc) == (2, 1)
        # The agent side of a connection goes away (a restart): that call uses gRPC,
        # the next one connects again.
        fast = clients[0]._fast
        assert fast is not None and fast._sock is not None
        fast._sock.shutdown(socket.SHUT_RDWR)
        _same(clients[0].predict("m", {"image": x}, shared_memory=True), want)
        assert (calls.fast, calls.grpc) == (2, 2)
        monkeypatch.setattr(fastpath, "RETRY_INTERVAL", 0.0)
        _same(clients[0].predict("m", {"image": x}, shared_memory=True), want)
        assert (calls.fast, calls.grpc) == (3, 2)
    finally:
        for client in clients:
            client.close()


def test_concurrent_callers_of_one_client_all_get_answers(
    server: AgentServer, reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls(monkeypatch)
    images = [_image(10 + i) for i in range(8)]
    results: dict[int, dict[str, np.ndarray]] = {}
    with AgentClient(server.socket_path) as client:
        start = threading.Barrier(4)

        def work(k: int) -> None:
            start.wait()
            for i in range(k, len(images), 4):
                results[i] = client.predict("m", {"image": images[i]}, shared_memory=True)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    for i, x in enumerate(images):
        _same(results[i], _expected(reference, x))
    assert calls.fast + calls.grpc == len(images) and calls.fast >= 1


def _frame(sock: socket.socket) -> tuple[int, bytes]:
    header = fastpath._recv_exact(sock, fastpath.HEADER.size)
    assert header is not None
    size, kind = fastpath.HEADER.unpack(header)
    body = fastpath._recv_exact(sock, size) if size else bytearray()
    return kind, bytes(body or b"")


def test_a_request_that_is_not_a_predict_is_refused_and_the_connection_closed(
    server: AgentServer,
) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(server.fast_path))
        sock.sendall(fastpath._frame(fastpath.PREDICT, b"\xff\xff not protobuf"))
        kind, body = _frame(sock)
        assert kind == fastpath.ERROR
        assert body.decode().startswith("INVALID_ARGUMENT\n")
        sock.sendall(fastpath._frame(7, b""))
        kind, body = _frame(sock)
        assert kind == fastpath.ERROR and b"is not a Predict" in body
        assert sock.recv(1) == b""  # closed


def test_a_live_server_on_the_fast_socket_is_not_replaced(workdir: Path) -> None:
    path = workdir / "busy.sock.predict"
    first = FastPredictServer(path, lambda body, segments: body, max_connections=1).start()
    try:
        with pytest.raises(AgentError, match="has a live server"):
            FastPredictServer(path, lambda body, segments: body, max_connections=1).start()
    finally:
        first.stop()
    assert not path.exists()


# ---------------------------------------------------------------- sealed segments
def test_a_sealed_segment_cannot_change_size_so_the_agent_may_map_it() -> None:
    seg = SealedSegment("t-sealed", 8192)
    try:
        with pytest.raises(PermissionError):
            os.ftruncate(seg.fd, 0)  # what would make a mapping SIGBUS
        with pytest.raises(PermissionError):
            os.ftruncate(seg.fd, 16384)
        segments = MappedSegments()
        segments.add("k", os.dup(seg.fd))
        seg.buf[:4] = b"abcd"
        handle = agent_pb2.SharedMemoryHandle(segment_name="k", offset=0, size=4)
        assert bytes(segments.read(handle, what="input 'x'")) == b"abcd"  # in place
        placed = segments.write(
            agent_pb2.SharedMemoryHandle(segment_name="k", offset=100, size=8000),
            [memoryview(b"out1"), memoryview(b"out2")],
            what="output_shared_memory",
        )
        assert placed == [(128, 4), (192, 4)]
        assert bytes(seg.buf[128:132]) == b"out1" and bytes(seg.buf[192:196]) == b"out2"
        outside = agent_pb2.SharedMemoryHandle(segment_name="k", offset=8000, size=500)
        with pytest.raises(AgentStatusError, match="lie outside sealed segment 'k'"):
            segments.read(outside, what="input 'x'")
        segments.close()
    finally:
        seg.close()


def test_the_agent_refuses_a_descriptor_that_is_not_a_sealed_memfd(tmp_path: Path) -> None:
    segments = MappedSegments()
    unsealed = os.memfd_create("t-unsealed", os.MFD_CLOEXEC)
    os.ftruncate(unsealed, 4096)
    with pytest.raises(AgentStatusError, match="must be sealed against shrinking") as info:
        segments.add("a", unsealed)
    assert info.value.code == "INVALID_ARGUMENT"
    file = os.open(tmp_path / "plain", os.O_CREAT | os.O_RDWR)
    with pytest.raises(AgentStatusError, match="sealed segment 'b'"):
        segments.add("b", file)
    assert "a" not in segments and "b" not in segments
    for fd in (unsealed, file):  # add() closed them
        with pytest.raises(OSError):
            os.fstat(fd)


def test_registering_an_unsealed_memfd_is_refused_and_the_connection_keeps_serving(
    server: AgentServer,
) -> None:
    unsealed = os.memfd_create("t-unsealed", os.MFD_CLOEXEC)
    os.ftruncate(unsealed, 4096)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(server.fast_path))
        socket.send_fds(sock, [fastpath._frame(fastpath.REGISTER, b"seg")], [unsealed])
        kind, body = _frame(sock)
        assert kind == fastpath.ERROR and body.startswith(b"INVALID_ARGUMENT\n")
        assert b"must be sealed" in body
        request = agent_pb2.PredictRequest(name="nope")
        sock.sendall(fastpath._frame(fastpath.PREDICT, request.SerializeToString()))
        kind, body = _frame(sock)
        assert kind == fastpath.ERROR and body.startswith(b"NOT_FOUND\n")
    os.close(unsealed)


def test_a_repeated_request_is_decoded_once_and_reads_the_new_image_every_time(
    server: AgentServer, reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inference app sends the same bytes for every image (its input lives in one
    segment): the agent decodes and checks them once per connection, and every call
    still runs on what the segment holds now."""
    decoded = []
    feeds = AgentServicer._feeds

    def counted(servicer, *args, **kwargs):  # type: ignore[no-untyped-def]
        decoded.append(threading.current_thread().name)
        return feeds(servicer, *args, **kwargs)

    monkeypatch.setattr(AgentServicer, "_feeds", counted)
    built = []
    request = client_module._predict_request

    def counted_request(*args):  # type: ignore[no-untyped-def]
        built.append(args[0])
        return request(*args)

    monkeypatch.setattr(client_module, "_predict_request", counted_request)
    with AgentClient(server.socket_path) as client:
        held = client.shared_array(SHAPE, np.float32)
        for seed in range(4):
            held[...] = _image(20 + seed)
            got = client.predict("m", {"image": held}, shared_memory=True)
            _same(got, _expected(reference, _image(20 + seed)))
        # Call 1 answers inline (the client learns the output size), call 2 is the
        # first with an output segment: built and decoded; calls 3 and 4 reuse both.
        assert len(decoded) == 2
        assert built == ["m", "m"]


def test_a_prepared_request_follows_the_model_loaded_under_its_name(
    workdir: Path, pkg: SignedPackage, reference
) -> None:
    """Unloading the model (NOT_FOUND) or loading another one under the same name
    (its outputs) is seen by the next call, as without the prepared request."""
    import onnxruntime as ort

    from edgekit.compile.testing import build_tiny_model

    other_model = build_tiny_model(
        workdir / "other-model" / "model.onnx", seed=5, height=SHAPE[2], width=SHAPE[3]
    )
    other = signed_package(workdir, name="other", model=other_model)
    other_ref = ort.InferenceSession(str(other_model), providers=["CPUExecutionProvider"])
    with (
        AgentServer(workdir / "prep.sock", pkg.public_key, max_workers=2) as srv,
        AgentClient(srv.socket_path) as client,
    ):
        client.load_model("r", pkg.package)
        held = client.shared_array(SHAPE, np.float32)
        held[...] = _image(30)
        for _ in range(3):
            _same(
                client.predict("r", {"image": held}, shared_memory=True),
                _expected(reference, _image(30)),
            )
        client.unload_model("r")
        assert _error(client, "r", {"image": held})[0] == "NOT_FOUND"
        client.load_model("r", other.package)
        for _ in range(2):
            _same(
                client.predict("r", {"image": held}, shared_memory=True),
                _expected(other_ref, _image(30)),
            )


def test_a_call_whose_reply_is_lost_is_unavailable_and_not_run_again(
    workdir: Path, pkg: SignedPackage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent ran LoadModel, then its connection broke before the answer went out (it
    was stopped): the client says UNAVAILABLE and does not send it again over gRPC,
    where it would run a second time."""
    ran = []
    answer = FastPredictServer._answer

    def answer_then_break(server, kind, body, fds, segments):  # type: ignore[no-untyped-def]
        reply = answer(server, kind, body, fds, segments)
        if kind == fastpath.CALL:
            ran.append(body.partition(b"\n")[0].decode())
            raise ConnectionResetError("the agent went away before answering")
        return reply

    monkeypatch.setattr(FastPredictServer, "_answer", answer_then_break)
    with (
        AgentServer(workdir / "lost.sock", pkg.public_key, max_workers=2) as srv,
        AgentClient(srv.socket_path) as client,
        AgentClient(srv.socket_path, fast_predict=False) as over_grpc,
    ):
        client.wait_ready(timeout=30)
        with pytest.raises(AgentStatusError) as info:
            client.load_model("once", pkg.package)
        assert info.value.code == "UNAVAILABLE" and info.value.method == "LoadModel"
        assert "may have run it" in info.value.details
        assert ran == ["LoadModel"]
        assert [m.name for m in over_grpc.list_models()] == ["once"]


def test_a_restarted_agents_fast_socket_is_used_at_once(workdir: Path) -> None:
    """A client that found the fast socket gone (the agent restarting) connects again as
    soon as the socket is back, not after RETRY_INTERVAL: meanwhile its calls would go
    to gRPC, which the app does not otherwise load."""
    path = workdir / "restart.sock.predict"
    echo = FastPredictServer(path, lambda body, segments: body, max_connections=1).start()
    client = fastpath.FastPredictClient(path, timeout=5, check_peer=lambda sock, where: None)
    try:
        assert client.call(b"one") == b"one"
        echo.stop()
        assert client.call(b"two") is None  # the connection broke
        assert client.call(b"two") is None  # nothing listens
        echo = FastPredictServer(path, lambda body, segments: body, max_connections=1).start()
        assert client.call(b"three") == b"three"
    finally:
        client.close()
        echo.stop()
