"""CaptureData over gRPC: files on disk, background upload to S3 (moto), status, retries."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import grpc
import numpy as np
import pytest

from edgekit.agent import agent_pb2, agent_pb2_grpc
from edgekit.agent.capture import CaptureUploader
from edgekit.agent.client import AgentClient
from edgekit.agent.server import AgentServer
from edgekit.agent.status import AgentStatusError
from edgekit.agent.testing import SignedPackage, short_tempdir, signed_package

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3(moto_url: str):
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )


@pytest.fixture()
def workdir() -> Iterator[Path]:
    path = short_tempdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def keys_dir() -> Iterator[Path]:
    path = short_tempdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def pkg(keys_dir: Path) -> SignedPackage:
    return signed_package(keys_dir)


def _wait_for(predicate: Callable[[], object], timeout: float = 15.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


def _agent(workdir: Path, pkg: SignedPackage, uploader: CaptureUploader | None) -> AgentServer:
    return AgentServer(
        workdir / "a.sock",
        pkg.public_key,
        capture_dir=workdir / "captures",
        capture_uploader=uploader,
    )


def test_capture_stores_files_and_uploads(
    workdir: Path,
    pkg: SignedPackage,
    s3,
    moto_url: str,
) -> None:
    s3.create_bucket(Bucket="captures-ok")
    uploader = CaptureUploader(s3, "captures-ok", "fleet/dev1", base_delay=0.05)
    with _agent(workdir, pkg, uploader) as server, AgentClient(server.socket_path) as client:
        client.load_model("det", pkg.package)
        x = np.random.default_rng(0).standard_normal((1, 3, 64, 96)).astype(np.float32)
        outputs = client.predict("det", {"image": x})
        when = time.time() - 1.5
        client.capture_data(
            "det",
            "3f2b6c1e-0000-4000-8000-000000000001",
            inputs={"image": x},
            outputs=outputs,
            aux_inputs={"camera": ("JSON", b'{"exposure": 12}')},
            aux_outputs={"verdict": ("CSV", b"defect,0.93\n")},
            inference_time=when,
        )
        capture_id = "3f2b6c1e-0000-4000-8000-000000000001"
        _wait_for(lambda: client.capture_status(capture_id) == "SUCCESS")

        folder = workdir / "captures" / capture_id
        record = json.loads((folder / "capture.json").read_text())
        assert record["model_name"] == "det"
        assert record["upload"]["status"] == "SUCCESS" and record["upload"]["attempts"] == 1
        assert record["inference_timestamp"].startswith(
            time.strftime("%Y-%m-%dT%H:%M", time.gmtime(when))
        )
        (image,) = record["input_tensors"]
        assert (image["name"], image["data_type"], image["shape"]) == (
            "image",
            "FLOAT32",
            [1, 3, 64, 96],
        )
        np.testing.assert_array_equal(np.load(folder / image["file"]), x)
        assert [t["name"] for t in record["output_tensors"]] == ["heatmap", "size", "offset"]
        assert (folder / record["inputs"][0]["file"]).read_bytes() == b'{"exposure": 12}'
        assert record["outputs"][0]["file"].endswith(".csv")

        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="captures-ok")["Contents"])
        prefix = f"fleet/dev1/det/{capture_id}/"
        assert all(k.startswith(prefix) for k in keys)
        assert prefix + "capture.json" in keys and prefix + image["file"] in keys
        assert len(keys) == 1 + len(record["files"])
        body = s3.get_object(Bucket="captures-ok", Key=prefix + image["file"])["Body"].read()
        assert body == (folder / image["file"]).read_bytes()
        uploaded = json.loads(
            s3.get_object(Bucket="captures-ok", Key=prefix + "capture.json")["Body"].read()
        )
        assert uploaded["capture_id"] == capture_id and "upload" not in uploaded


def test_failed_upload_retries_then_succeeds(
    workdir: Path,
    pkg: SignedPackage,
    s3,
) -> None:
    """The bucket does not exist at first: real NoSuchBucket errors, then success."""
    uploader = CaptureUploader(
        s3, "captures-late", "", max_attempts=20, base_delay=0.1, max_delay=0.3
    )
    with _agent(workdir, pkg, uploader) as server, AgentClient(server.socket_path) as client:
        client.capture_data("det", "late-1", inputs={"x": np.arange(6, dtype=np.int64)})
        record_path = workdir / "captures" / "late-1" / "capture.json"
        assert client.capture_status("late-1") == "IN_PROGRESS"
        _wait_for(lambda: json.loads(record_path.read_text())["upload"]["attempts"] >= 2)
        record = json.loads(record_path.read_text())
        assert "NoSuchBucket" in record["upload"]["last_error"]
        assert client.capture_status("late-1") == "IN_PROGRESS"

        s3.create_bucket(Bucket="captures-late")
        _wait_for(lambda: client.capture_status("late-1") == "SUCCESS")
        record = json.loads(record_path.read_text())
        assert record["upload"]["attempts"] >= 3 and record["upload"]["uploaded_at"]
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="captures-late")["Contents"]]
        assert "det/late-1/capture.json" in keys


def test_upload_gives_up_after_max_attempts(
    workdir: Path,
    pkg: SignedPackage,
    s3,
) -> None:
    uploader = CaptureUploader(s3, "captures-never", max_attempts=2, base_delay=0.05)
    with _agent(workdir, pkg, uploader) as server, AgentClient(server.socket_path) as client:
        client.capture_data("det", "doomed", aux_inputs={"note": ("NONE", b"x")})
        _wait_for(lambda: client.capture_status("doomed") == "FAILURE")
        record = json.loads((workdir / "captures" / "doomed" / "capture.json").read_text())
        assert record["upload"]["attempts"] == 2
        # The data stays on the device.
        assert (workdir / "captures" / "doomed" / record["inputs"][0]["file"]).read_bytes() == b"x"


def test_pending_uploads_resume_after_restart(
    workdir: Path,
    pkg: SignedPackage,
    s3,
) -> None:
    uploader = CaptureUploader(
        s3, "captures-restart", max_attempts=50, base_delay=0.2, max_delay=0.2
    )
    with _agent(workdir, pkg, uploader) as server, AgentClient(server.socket_path) as client:
        client.capture_data("det", "survivor", inputs={"x": np.ones((2, 2), np.float32)})
        assert client.capture_status("survivor") == "IN_PROGRESS"
    s3.create_bucket(Bucket="captures-restart")
    uploader = CaptureUploader(s3, "captures-restart", base_delay=0.05)
    with _agent(workdir, pkg, uploader) as server, AgentClient(server.socket_path) as client:
        _wait_for(lambda: client.capture_status("survivor") == "SUCCESS")
        with pytest.raises(AgentStatusError) as info:
            client.capture_data("det", "survivor")
        assert info.value.code == "ALREADY_EXISTS"


def test_capture_refusals_use_the_api_codes(workdir: Path, pkg: SignedPackage) -> None:
    with _agent(workdir, pkg, None) as server, AgentClient(server.socket_path) as client:
        client.capture_data("det", "local-only", inputs={"x": np.zeros(3, np.uint8)})
        assert client.capture_status("local-only") == "SUCCESS"  # stored; nothing to upload

        def code(fn: Callable[[], object]) -> str:
            with pytest.raises(AgentStatusError) as info:
                fn()
            return info.value.code

        assert code(lambda: client.capture_data("det", "local-only")) == "ALREADY_EXISTS"
        assert code(lambda: client.capture_data("det", "../escape")) == "INVALID_ARGUMENT"
        assert code(lambda: client.capture_data("det", "")) == "INVALID_ARGUMENT"
        future = time.time() + 3600
        assert code(lambda: client.capture_data("det", "f1", inference_time=future)) == (
            "OUT_OF_RANGE"
        )
        assert code(lambda: client.capture_status("never-seen")) == "NOT_FOUND"
        assert (
            code(lambda: client.capture_data("det", "enc", aux_inputs={"a": ("XML", b"")}))
            == "INVALID_ARGUMENT"
        )


def test_capture_without_a_capture_dir_is_failed_precondition(
    workdir: Path, pkg: SignedPackage
) -> None:
    with AgentServer(workdir / "n.sock", pkg.public_key) as server:
        stub = agent_pb2_grpc.AgentStub(grpc.insecure_channel(server.target))
        with pytest.raises(grpc.RpcError) as info:
            stub.CaptureData(agent_pb2.CaptureDataRequest(model_name="det", capture_id="c1"))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "--capture-dir" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            stub.GetCaptureDataStatus(agent_pb2.GetCaptureDataStatusRequest(capture_id="c1"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_raw_stub_capture_with_shared_memory_and_untyped_tensor(
    workdir: Path, pkg: SignedPackage
) -> None:
    """Tensors without metadata are kept as raw bytes; aux data may come through shm."""
    from multiprocessing import shared_memory

    seg = shared_memory.SharedMemory(create=True, size=64)
    try:
        seg.buf[:5] = b"hello"
        with _agent(workdir, pkg, None) as server:
            stub = agent_pb2_grpc.AgentStub(grpc.insecure_channel(server.target))
            request = agent_pb2.CaptureDataRequest(model_name="det", capture_id="raw-1")
            request.input_tensors.add(byte_data=b"\x01\x02\x03")
            aux = request.inputs.add(name="greeting", encoding=agent_pb2.NONE)
            aux.shared_memory_handle.segment_name = seg.name.lstrip("/")
            aux.shared_memory_handle.size = 5
            stub.CaptureData(request)
            status = stub.GetCaptureDataStatus(
                agent_pb2.GetCaptureDataStatusRequest(capture_id="raw-1")
            )
            assert status.status == agent_pb2.SUCCESS
        folder = workdir / "captures" / "raw-1"
        record = json.loads((folder / "capture.json").read_text())
        (tensor,) = record["input_tensors"]
        assert tensor["file"].endswith(".bin") and tensor["data_type"] is None
        assert (folder / tensor["file"]).read_bytes() == b"\x01\x02\x03"
        assert (folder / record["inputs"][0]["file"]).read_bytes() == b"hello"
    finally:
        seg.close()
        seg.unlink()
