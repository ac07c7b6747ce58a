"""What keeps a shared-memory Predict cheap: buffers reused across calls, client segments
created without a resource tracker and cleaned up after a killed client."""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgekit.agent.client import AgentClient
from edgekit.agent.server import AgentServer
from edgekit.agent.shm import BufferPool, PosixSegment, SharedMemoryPool, remove_orphans
from edgekit.agent.testing import SignedPackage, short_tempdir, signed_package

SHAPE = (1, 3, 64, 96)
DEV_SHM = Path("/dev/shm")


@pytest.fixture(scope="module")
def pkg() -> Iterator[SignedPackage]:
    work = short_tempdir("ek-perf-")
    yield signed_package(work)
    shutil.rmtree(work, ignore_errors=True)


@pytest.mark.integration
def test_predicts_reuse_one_buffer_per_input_and_stay_correct(pkg: SignedPackage) -> None:
    import onnxruntime as ort

    reference = ort.InferenceSession(str(pkg.model), providers=["CPUExecutionProvider"])
    sock = pkg.package.parent / "perf.sock"
    # POSIX segments, over gRPC: the fast socket's sealed segments are used in place.
    with (
        AgentServer(sock, pkg.public_key) as server,
        AgentClient(sock, fast_predict=False) as client,
    ):
        client.load_model("m", pkg.package)
        for seed in (1, 2, 1, 3):  # a reused buffer must never leak the previous input
            x = np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float32)
            got = client.predict("m", {"image": x}, shared_memory=True)
            for value, ref in zip(got.values(), reference.run(None, {"image": x}), strict=True):
                np.testing.assert_allclose(value, ref, rtol=1e-5, atol=1e-6)
        # Four sequential calls: one buffer, lent and returned each time.
        assert server.buffers.idle_bytes == x.nbytes


def test_buffer_pool_lends_returns_and_bounds_what_it_keeps() -> None:
    pool = BufferPool(per_size=2, max_idle_bytes=300)
    with pool.lease() as lease:
        a, b, _c = lease.take(100), lease.take(100), lease.take(100)
    assert pool.idle_bytes == 200  # per_size: the third is dropped
    with pool.lease() as lease:
        again = lease.take(100)
        assert again is a or again is b
    assert pool.idle_bytes == 200
    with pytest.raises(RuntimeError), pool.lease() as lease:
        lease.take(50)
        raise RuntimeError("the call failed")
    assert pool.idle_bytes == 250  # returned even when the call failed
    with pool.lease() as lease:
        lease.take(60)
    assert pool.idle_bytes == 250  # 310 would pass max_idle_bytes: dropped


def test_client_segments_are_private_and_unlinked_on_close() -> None:
    pool = SharedMemoryPool(prefix=f"ektest{secrets.token_hex(2)}")
    seg = pool.acquire(5000)
    path = DEV_SHM / seg.name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert seg.size >= 5000 and len(seg.buf) == seg.size
    pool.release(seg)
    assert pool.acquire(4000) is seg  # reused, not a new segment
    pool.close()
    assert not path.exists()


def test_segments_of_a_dead_client_are_removed_by_the_next_pool() -> None:
    prefix = f"ektest{secrets.token_hex(2)}"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(dead.stdout)
    orphan = PosixSegment(f"{prefix}-{dead_pid}-abcdef-1", 4096)
    alive = PosixSegment(f"{prefix}-{os.getpid()}-abcdef-1", 4096)
    other = PosixSegment(f"{prefix}x-{dead_pid}-abcdef-1", 4096)
    try:
        pool = SharedMemoryPool(prefix=prefix)
        assert not (DEV_SHM / orphan.name).exists()
        assert (DEV_SHM / alive.name).exists()  # its process still runs
        assert (DEV_SHM / other.name).exists()  # another prefix
        assert remove_orphans(prefix) == []
        pool.close()
    finally:
        for seg in (orphan, alive, other):
            seg.close()
            if (DEV_SHM / seg.name).exists():
                seg.unlink()


def test_model_sessions_do_not_spin_between_runs(pkg: SignedPackage) -> None:
    """The agent's sessions leave the CPU alone between images (no spin-waiting pool)."""
    from edgekit.runtimes import get_runtime

    session = get_runtime("onnxruntime").open(pkg.model)
    options = session.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    assert options.enable_mem_pattern is False


@pytest.fixture(scope="module")
def agent(pkg: SignedPackage) -> Iterator[tuple[AgentServer, Any]]:
    """A server with model ``m`` loaded and a raw stub (to see what goes over the wire)."""
    import grpc

    from edgekit.agent import agent_pb2_grpc

    sock = pkg.package.parent / "raw.sock"
    with AgentServer(sock, pkg.public_key) as server, AgentClient(sock) as client:
        client.load_model("m", pkg.package)
        with grpc.insecure_channel(server.target) as channel:
            yield server, agent_pb2_grpc.AgentStub(channel)


def _request(x: np.ndarray, out: PosixSegment | None, *, name: str = "", size: int = 0) -> Any:
    from edgekit.agent import agent_pb2

    request = agent_pb2.PredictRequest(name="m")
    tensor = request.tensors.add()
    tensor.tensor_metadata.name = "image"
    tensor.tensor_metadata.data_type = 5
    tensor.tensor_metadata.shape.extend(x.shape)
    tensor.byte_data = x.tobytes()
    if out is not None or name:
        target = request.output_shared_memory
        target.segment_name = name or out.name
        target.size = size or (out.size if out is not None else 0)
    return request


@pytest.mark.integration
def test_outputs_are_written_into_the_callers_segment(
    pkg: SignedPackage, agent: tuple[AgentServer, Any]
) -> None:
    import onnxruntime as ort

    _, stub = agent
    x = np.random.default_rng(5).standard_normal(SHAPE).astype(np.float32)
    ref = ort.InferenceSession(str(pkg.model), providers=["CPUExecutionProvider"]).run(
        None, {"image": x}
    )
    pool = SharedMemoryPool(prefix="ektest")
    try:
        out = pool.acquire(1 << 20)
        reply = stub.Predict(_request(x, out))
        assert [t.WhichOneof("data") for t in reply.tensors] == ["shared_memory_handle"] * 3
        for tensor, expected in zip(reply.tensors, ref, strict=True):
            handle = tensor.shared_memory_handle
            assert handle.segment_name == out.name and handle.offset % 64 == 0
            got = np.frombuffer(out.buf, np.float32, handle.size // 4, handle.offset)
            np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-5)
            del got
        small = pool.acquire(100)  # the outputs do not fit: sent inline, as before
        reply = stub.Predict(_request(x, small))
        assert [t.WhichOneof("data") for t in reply.tensors] == ["byte_data"] * 3
    finally:
        pool.close()


@pytest.mark.integration
def test_an_output_segment_that_does_not_exist_is_invalid_argument(
    agent: tuple[AgentServer, Any],
) -> None:
    import grpc

    _, stub = agent
    x = np.zeros(SHAPE, np.float32)
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(_request(x, None, name="edgekit-1-abcdef-404", size=1 << 20))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "does not exist" in err.value.details()


@pytest.mark.integration
def test_a_root_agent_writes_only_into_client_named_segments(
    agent: tuple[AgentServer, Any],
) -> None:
    """As root, a segment not named like a client's is never written (sent inline)."""
    _, stub = agent
    other = PosixSegment(f"ektest{secrets.token_hex(3)}", 1 << 20)
    try:
        reply = stub.Predict(_request(np.zeros(SHAPE, np.float32), other))
        expected = "byte_data" if os.geteuid() == 0 else "shared_memory_handle"
        assert {t.WhichOneof("data") for t in reply.tensors} == {expected}
    finally:
        other.close()
        other.unlink()
