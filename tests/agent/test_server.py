"""The model agent over real gRPC on a unix socket: load, verify, predict, refuse."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from edgekit.agent import agent_pb2, agent_pb2_grpc
from edgekit.agent.client import AgentClient
from edgekit.agent.server import AgentServer
from edgekit.agent.status import AgentStatusError
from edgekit.agent.testing import SignedPackage, signed_package
from edgekit.errors import AgentError

pytestmark = pytest.mark.integration

INPUT = "image"
SHAPE = (1, 3, 64, 96)


@pytest.fixture(scope="module")
def server(workdir: Path, pkg: SignedPackage) -> Iterator[AgentServer]:
    srv = AgentServer(workdir / "agent.sock", pkg.public_key, max_workers=8).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server: AgentServer) -> Iterator[AgentClient]:
    with AgentClient(server.socket_path) as c:
        yield c


@pytest.fixture(scope="module")
def reference(pkg: SignedPackage):
    import onnxruntime as ort

    return ort.InferenceSession(str(pkg.model), providers=["CPUExecutionProvider"])


@pytest.fixture()
def loaded(
    client: AgentClient, pkg: SignedPackage, request: pytest.FixtureRequest
) -> Iterator[str]:
    name = "m" + str(abs(hash(request.node.name)) % 10**8)
    client.load_model(name, pkg.package)
    yield name
    try:
        client.unload_model(name)
    except AgentStatusError as exc:
        assert exc.code == "NOT_FOUND"


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float32)


def _expected(reference, x: np.ndarray) -> dict[str, np.ndarray]:
    names = [o.name for o in reference.get_outputs()]
    return dict(zip(names, reference.run(names, {INPUT: x}), strict=True))


def _refused(code: str, fn, *args, **kwargs) -> str:
    with pytest.raises(AgentStatusError) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, str(info.value)
    assert isinstance(info.value, AgentError)
    return info.value.details


def test_load_list_describe_unload(client: AgentClient, pkg: SignedPackage) -> None:
    model = client.load_model("detector", pkg.package)
    assert model.name == "detector" and model.url == str(pkg.package)
    assert [(t.name, str(t.dtype), t.shape) for t in model.inputs] == [(INPUT, "float32", SHAPE)]
    assert [t.name for t in model.outputs] == ["heatmap", "size", "offset"]
    assert model.outputs[0].shape == (1, 1, 16, 24)
    assert "detector" in [m.name for m in client.list_models()]
    assert client.describe_model("detector") == model
    client.unload_model("detector")
    assert "detector" not in [m.name for m in client.list_models()]
    _refused("NOT_FOUND", client.describe_model, "detector")
    _refused("NOT_FOUND", client.unload_model, "detector")


def test_load_from_folder_and_file_url(
    client: AgentClient, pkg: SignedPackage, workdir: Path
) -> None:
    folder = workdir / "unpacked"
    if not folder.exists():
        with tarfile.open(pkg.package) as tar:
            tar.extractall(folder, filter="data")
    client.load_model("from-folder", folder)
    client.load_model("from-url", pkg.package.as_uri())
    x = _image(3)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(
            client.predict("from-folder", {INPUT: x}).values(),
            client.predict("from-url", {INPUT: x}).values(),
            strict=True,
        )
    )
    client.unload_model("from-folder")
    client.unload_model("from-url")


@pytest.mark.parametrize("shared_memory", [False, True], ids=["bytes", "shm"])
def test_predict_matches_in_process_onnxruntime(
    client: AgentClient,
    loaded: str,
    reference,
    shared_memory: bool,
) -> None:
    for seed in range(3):
        x = _image(seed)
        got = client.predict(loaded, {INPUT: x}, shared_memory=shared_memory)
        want = _expected(reference, x)
        assert list(got) == list(want)
        for name in want:
            assert got[name].dtype == want[name].dtype
            np.testing.assert_array_equal(got[name], want[name])


def test_shared_memory_segment_reuse_sees_new_data(client: AgentClient, loaded: str) -> None:
    """The agent caches its mapping; a reused segment must still deliver this call's data."""
    a = client.predict(loaded, {INPUT: _image(1)}, shared_memory=True)
    b = client.predict(loaded, {INPUT: _image(2)}, shared_memory=True)
    again = client.predict(loaded, {INPUT: _image(1)}, shared_memory=True)
    assert not np.array_equal(a["heatmap"], b["heatmap"])
    np.testing.assert_array_equal(a["heatmap"], again["heatmap"])


def _stub(server: AgentServer) -> agent_pb2_grpc.AgentStub:
    channel = grpc.insecure_channel(server.target, options=(("grpc.enable_http_proxy", 0),))
    return agent_pb2_grpc.AgentStub(channel)


def test_unchanged_client_generated_stub(
    server: AgentServer, pkg: SignedPackage, reference
) -> None:
    """A client written against the original API (generated stub, no helper) works as is.

    The calls follow the original agent's Python example: LoadModel, ListModels to get
    the input metadata, Predict with byte_data and that metadata, UnLoadModel.
    """
    stub = _stub(server)
    load = agent_pb2.LoadModelRequest()
    load.url = str(pkg.package)
    load.name = "unchanged"
    reply = stub.LoadModel(load)
    assert reply.model.name == "unchanged"
    models = {m.name: m for m in stub.ListModels(agent_pb2.ListModelsRequest()).models}
    meta = models["unchanged"].input_tensor_metadatas[0]
    assert (meta.name, meta.data_type, list(meta.shape)) == (INPUT, agent_pb2.FLOAT32, [*SHAPE])

    x = _image(7)
    tensor = agent_pb2.Tensor()
    tensor.byte_data = x.tobytes()
    tensor.tensor_metadata.name = meta.name
    tensor.tensor_metadata.data_type = meta.data_type
    for dim in meta.shape:
        tensor.tensor_metadata.shape.append(dim)
    request = agent_pb2.PredictRequest()
    request.name = "unchanged"
    request.tensors.append(tensor)
    response = stub.Predict(request)
    want = _expected(reference, x)
    for out in response.tensors:
        assert out.WhichOneof("data") == "byte_data"
        assert out.tensor_metadata.data_type == agent_pb2.FLOAT32
        got = np.frombuffer(out.byte_data, np.float32).reshape(list(out.tensor_metadata.shape))
        np.testing.assert_array_equal(got, want[out.tensor_metadata.name])

    # Metadata is optional in a Predict request: the model's own is used.
    bare = agent_pb2.PredictRequest(
        name="unchanged", tensors=[agent_pb2.Tensor(byte_data=x.tobytes())]
    )
    assert stub.Predict(bare) == response

    with pytest.raises(grpc.RpcError) as info:
        stub.DescribeModel(agent_pb2.DescribeModelRequest(name="nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    stub.UnLoadModel(agent_pb2.UnLoadModelRequest(name="unchanged"))


@pytest.mark.skipif(not Path("/proc/sysvipc/shm").exists(), reason="needs Linux System V IPC")
def test_system_v_segment_id_like_the_original_cpp_client(
    server: AgentServer,
    loaded: str,
    reference,
) -> None:
    """The original API's segment_id: a shmget id, read at an offset."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
    libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
    libc.shmat.restype = ctypes.c_void_p
    libc.shmdt.argtypes = [ctypes.c_void_p]
    libc.shmctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    x = _image(11)
    offset = 128
    segment = libc.shmget(0, offset + x.nbytes, 0o1000 | 0o600)  # IPC_PRIVATE, IPC_CREAT
    assert segment >= 0, os.strerror(ctypes.get_errno())
    address = libc.shmat(segment, None, 0)
    try:
        ctypes.memmove(address + offset, x.tobytes(), x.nbytes)
        tensor = agent_pb2.Tensor()
        tensor.tensor_metadata.name = INPUT
        tensor.tensor_metadata.data_type = agent_pb2.FLOAT32
        tensor.tensor_metadata.shape.extend(SHAPE)
        tensor.shared_memory_handle.segment_id = segment
        tensor.shared_memory_handle.offset = offset
        tensor.shared_memory_handle.size = x.nbytes
        response = _stub(server).Predict(agent_pb2.PredictRequest(name=loaded, tensors=[tensor]))
        heat = response.tensors[0]
        got = np.frombuffer(heat.byte_data, np.float32).reshape(list(heat.tensor_metadata.shape))
        np.testing.assert_array_equal(got, _expected(reference, x)["heatmap"])

        tensor.shared_memory_handle.offset = offset + 8  # runs past the segment's end
        with pytest.raises(grpc.RpcError) as info:
            _stub(server).Predict(agent_pb2.PredictRequest(name=loaded, tensors=[tensor]))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "outside" in info.value.details()
    finally:
        libc.shmdt(address)
        libc.shmctl(segment, 0, None)  # IPC_RMID


def test_missing_shared_memory_segment_is_invalid_argument(
    server: AgentServer, loaded: str
) -> None:
    tensor = agent_pb2.Tensor()
    tensor.tensor_metadata.name = INPUT
    tensor.tensor_metadata.data_type = agent_pb2.FLOAT32
    tensor.tensor_metadata.shape.extend(SHAPE)
    tensor.shared_memory_handle.segment_name = "edgekit-no-such-segment"
    tensor.shared_memory_handle.size = int(np.prod(SHAPE)) * 4
    with pytest.raises(grpc.RpcError) as info:
        _stub(server).Predict(agent_pb2.PredictRequest(name=loaded, tensors=[tensor]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "edgekit-no-such-segment" in info.value.details()


def _copy_unpacked(pkg: SignedPackage, dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    with tarfile.open(pkg.package) as tar:
        tar.extractall(dest, filter="data")
    return dest


def test_tampered_package_is_refused_and_first_model_keeps_serving(
    client: AgentClient, loaded: str, pkg: SignedPackage, workdir: Path
) -> None:
    before = client.predict(loaded, {INPUT: _image(5)})

    folder = _copy_unpacked(pkg, workdir / "tampered-model")
    model_file = folder / "model.onnx"
    data = bytearray(model_file.read_bytes())
    data[-10] ^= 0xFF
    model_file.write_bytes(bytes(data))
    details = _refused("FAILED_PRECONDITION", client.load_model, "tampered", folder)
    assert "model.onnx" in details and "SHA-256" in details

    folder = _copy_unpacked(pkg, workdir / "tampered-manifest")
    manifest = folder / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"1.0.0"', '"9.9.9"'))
    details = _refused("FAILED_PRECONDITION", client.load_model, "tampered", folder)
    assert "manifest.json" in details

    # The same name as the serving model: still ALREADY_EXISTS, checked before anything else.
    _refused("ALREADY_EXISTS", client.load_model, loaded, folder)

    names = [m.name for m in client.list_models()]
    assert "tampered" not in names and loaded in names
    after = client.predict(loaded, {INPUT: _image(5)})
    np.testing.assert_array_equal(before["heatmap"], after["heatmap"])


def test_package_signed_with_another_key_is_refused(client: AgentClient, workdir: Path) -> None:
    other = signed_package(workdir / "other", name="other", key_dir=workdir / "other-keys")
    details = _refused("FAILED_PRECONDITION", client.load_model, "other", other.package)
    assert "signed with key" in details
    assert "other" not in [m.name for m in client.list_models()]


def test_a_package_for_another_runtime_is_refused_naming_the_field(
    client: AgentClient, pkg: SignedPackage, workdir: Path
) -> None:
    """The manifest's runtime field picks the runtime; one this agent lacks is refused."""
    import onnx

    from edgekit.compile.metadata import set_compile_info

    proto = onnx.load(str(pkg.model))
    set_compile_info(proto, {"runtime": "dlr", "target": "sagemaker-neo"})
    model = workdir / "dlr" / "model.onnx"
    model.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(model))
    dlr = signed_package(workdir / "dlr", name="dlr", model=model, key_dir=pkg.private_key.parent)
    details = _refused("FAILED_PRECONDITION", client.load_model, "dlr", dlr.package)
    assert "field 'runtime' is 'dlr'" in details and "known runtimes: onnxruntime" in details
    assert "dlr" not in [m.name for m in client.list_models()]


def test_wrong_shape_and_dtype_name_both(client: AgentClient, loaded: str) -> None:
    details = _refused(
        "INVALID_ARGUMENT", client.predict, loaded, {INPUT: np.zeros((1, 3, 32, 96), np.float32)}
    )
    assert repr(INPUT) in details
    assert "[1, 3, 32, 96]" in details and "[1, 3, 64, 96]" in details

    details = _refused(
        "INVALID_ARGUMENT", client.predict, loaded, {INPUT: np.zeros(SHAPE, np.float64)}
    )
    assert "FLOAT64" in details and "FLOAT32" in details and repr(INPUT) in details

    details = _refused("INVALID_ARGUMENT", client.predict, loaded, {"pixels": _image()})
    assert "'pixels'" in details and INPUT in details

    details = _refused(
        "INVALID_ARGUMENT", client.predict, loaded, {INPUT: np.zeros(SHAPE, np.bool_)}
    )
    assert "bool" in details


def test_byte_count_must_fit_the_declared_shape(server: AgentServer, loaded: str) -> None:
    tensor = agent_pb2.Tensor(byte_data=b"\0" * 100)
    tensor.tensor_metadata.name = INPUT
    tensor.tensor_metadata.data_type = agent_pb2.FLOAT32
    tensor.tensor_metadata.shape.extend(SHAPE)
    with pytest.raises(grpc.RpcError) as info:
        _stub(server).Predict(agent_pb2.PredictRequest(name=loaded, tensors=[tensor]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "100 bytes" in info.value.details()


def test_unknown_model_is_not_found(client: AgentClient) -> None:
    assert "ghost" in _refused("NOT_FOUND", client.predict, "ghost", {INPUT: _image()})
    _refused("NOT_FOUND", client.describe_model, "ghost")
    _refused("NOT_FOUND", client.unload_model, "ghost")


def test_duplicate_name_keeps_the_first_model(
    client: AgentClient, loaded: str, pkg: SignedPackage, workdir: Path
) -> None:
    other = signed_package(workdir / "dup", name="dup", key_dir=pkg.public_key.parent)
    _refused("ALREADY_EXISTS", client.load_model, loaded, other.package)
    assert client.describe_model(loaded).url == str(pkg.package)


def test_bad_name_and_url(client: AgentClient, pkg: SignedPackage, workdir: Path) -> None:
    _refused("INVALID_ARGUMENT", client.load_model, "bad_name", pkg.package)
    _refused("INVALID_ARGUMENT", client.load_model, "-lead", pkg.package)
    _refused("INVALID_ARGUMENT", client.load_model, "s3model", "s3://bucket/model.tar.gz")
    assert "no model package" in _refused(
        "NOT_FOUND", client.load_model, "absent", workdir / "absent.tar.gz"
    )
    garbage = workdir / "garbage.tar.gz"
    garbage.write_bytes(b"not an archive")
    _refused("FAILED_PRECONDITION", client.load_model, "garbage", garbage)


def test_several_models_and_concurrent_predicts(
    server: AgentServer,
    pkg: SignedPackage,
    reference,
) -> None:
    with AgentClient(server.socket_path) as c:
        c.load_model("left", pkg.package)
        c.load_model("right", pkg.package)
        inputs = [_image(100 + i) for i in range(4)]
        expected = [_expected(reference, x)["heatmap"] for x in inputs]
        errors: list[BaseException] = []
        calls = 0
        lock = threading.Lock()

        def worker(k: int) -> None:
            nonlocal calls
            try:
                for j in range(8):
                    i = (k + j) % len(inputs)
                    got = c.predict(
                        "left" if k % 2 else "right", {INPUT: inputs[i]}, shared_memory=j % 2 == 1
                    )
                    np.testing.assert_array_equal(got["heatmap"], expected[i])
                    with lock:
                        calls += 1
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors[0]
        assert calls == 6 * 8
        c.unload_model("left")
        c.unload_model("right")


def test_socket_rules(workdir: Path, pkg: SignedPackage, server: AgentServer) -> None:
    with pytest.raises(AgentError, match="longer than"):
        AgentServer("/tmp/" + "x" * 120 + ".sock", pkg.public_key)
    with pytest.raises(AgentError, match="another process is serving"):
        AgentServer(server.socket_path, pkg.public_key).start()
    # A socket file left by a dead agent is replaced.
    stale = workdir / "stale.sock"
    import socket

    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()
    with AgentServer(stale, pkg.public_key) as srv, AgentClient(srv.socket_path) as c:
        assert c.list_models() == []
    assert not stale.exists()


def test_client_reports_an_absent_agent(workdir: Path) -> None:
    with (
        AgentClient(workdir / "nobody.sock", timeout=2) as c,
        pytest.raises(AgentStatusError) as info,
    ):
        c.list_models()
    assert info.value.code == "UNAVAILABLE" and "nobody.sock" in str(info.value)


def test_cli_serve_until_sigterm(workdir: Path, pkg: SignedPackage) -> None:
    sock = workdir / "cli.sock"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgekit",
            "agent",
            "serve",
            "--socket",
            str(sock),
            "--public-key",
            str(pkg.public_key),
            "--workers",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with AgentClient(sock) as c:
            c.wait_ready(timeout=20)
            c.load_model("cli", pkg.package)
            out = subprocess.run(
                [sys.executable, "-m", "edgekit", "agent", "list", "--socket", str(sock)],
                capture_output=True,
                text=True,
                check=True,
            )
            assert '"name": "cli"' in out.stdout
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not sock.exists()
    assert "serving on" in proc.stderr.read()


def test_cli_refuses_an_unreadable_key(workdir: Path) -> None:
    bad = workdir / "bad.pem"
    bad.write_text("not a key")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgekit",
            "agent",
            "serve",
            "--socket",
            str(workdir / "k.sock"),
            "--public-key",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "bad.pem" in out.stderr and "Traceback" not in out.stderr


def _shm_tensor(name: str, nbytes: int) -> agent_pb2.Tensor:
    tensor = agent_pb2.Tensor()
    tensor.tensor_metadata.name = INPUT
    tensor.tensor_metadata.data_type = agent_pb2.FLOAT32
    tensor.tensor_metadata.shape.extend(SHAPE)
    tensor.shared_memory_handle.segment_name = name
    tensor.shared_memory_handle.size = nbytes
    return tensor


def test_client_truncating_its_segment_gets_an_error_and_the_agent_keeps_serving(
    workdir: Path, pkg: SignedPackage, reference
) -> None:
    """Issue 12 item 3: ftruncate(segment, 0) between two Predicts must not SIGBUS the agent.

    The agent runs in its own process so that a fault shows up as a dead agent, not a dead
    test run.
    """
    from multiprocessing import shared_memory

    sock = workdir / "shm.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekit", "agent", "serve", "--socket", str(sock),
         "--public-key", str(pkg.public_key), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    x = _image(5)
    segments = []
    try:
        with AgentClient(sock) as c:
            c.wait_ready(timeout=20)
            c.load_model("shm", pkg.package)
            stub = c.stub
            for _ in range(2):
                seg = shared_memory.SharedMemory(create=True, size=x.nbytes)
                segments.append(seg)
                np.ndarray(x.shape, x.dtype, buffer=seg.buf)[...] = x
            bad, good = segments
            name = bad.name.lstrip("/")
            request = agent_pb2.PredictRequest(name="shm", tensors=[_shm_tensor(name, x.nbytes)])
            first = stub.Predict(request)  # the agent has now seen (and may cache) the segment
            os.ftruncate(bad._fd, 0)  # noqa: SLF001 - what a hostile client does
            with pytest.raises(grpc.RpcError) as info:
                stub.Predict(request, timeout=20)
            assert proc.poll() is None, f"the agent died: {proc.returncode}"
            assert info.value.code() in (
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.FAILED_PRECONDITION,
            ), info.value
            details = info.value.details()
            assert name in details and "0 bytes" in details and str(x.nbytes) in details
            good_name = good.name.lstrip("/")
            third = stub.Predict(
                agent_pb2.PredictRequest(name="shm", tensors=[_shm_tensor(good_name, x.nbytes)])
            )
            assert third == first
            want = _expected(reference, x)
            got = c.predict("shm", {INPUT: x}, shared_memory=True)
            np.testing.assert_array_equal(got["heatmap"], want["heatmap"])
    finally:
        for seg in segments:
            seg.close()
            seg.unlink()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)
