"""Capture uploads from a child process: the agent itself never imports boto3.

`UploadProcess` runs ``python -m edgekit.agent.capture_upload`` while captures are due and
ends it when none is; failures come back as the child's exception text, are recorded in
``last_error`` and retried like in-process ones. The agent process (checked in a fresh
interpreter) has no boto3 or botocore after a capture was uploaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import numpy as np
import pytest

from edgekit.agent.capture import CapturedTensor, CaptureStore, CaptureUploader, UploadProcess
from edgekit.agent.testing import SignedPackage, short_tempdir, signed_package

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def child_env(moto_url: str) -> Iterator[dict[str, str]]:
    """The environment a device gives its components: endpoint, region, credentials."""
    saved = dict(os.environ)
    os.environ.update(
        AWS_ENDPOINT_URL=moto_url,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )
    yield dict(os.environ)
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def s3(child_env: dict[str, str]):
    return boto3.client("s3")


def _wait_for(predicate: Callable[[], object], timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


def _capture(store: CaptureStore, capture_id: str) -> None:
    store.capture(
        model_name="det",
        capture_id=capture_id,
        inference_time=None,
        input_tensors=[CapturedTensor("image", array=np.arange(6, dtype=np.float32))],
        output_tensors=[CapturedTensor("scores", raw=b"\x01\x02", data_type="x", shape=[2])],
        inputs=[],
        outputs=[],
    )


def test_uploads_through_the_child_and_ends_it_when_idle(tmp_path: Path, s3) -> None:
    s3.create_bucket(Bucket="captures-child")
    process = UploadProcess()
    store = CaptureStore(tmp_path, CaptureUploader(process, "captures-child", "fleet"))
    store.start()
    try:
        _capture(store, "c1")
        _capture(store, "c2")
        _wait_for(lambda: store.status("c1") == store.status("c2") == "SUCCESS")
        _wait_for(lambda: not process.running)  # nothing due: the child was ended
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="captures-child")["Contents"])
        assert "fleet/det/c1/capture.json" in keys and "fleet/det/c2/capture.json" in keys
        assert "fleet/det/c1/input_tensors/0-image.npy" in keys
        record = store.record("c1")
        assert record["upload"]["attempts"] == 1 and record["upload"]["last_error"] is None
    finally:
        store.stop()
    assert not process.running


def test_a_failure_in_the_child_is_recorded_retried_and_given_up(
    tmp_path: Path, child_env: dict[str, str]
) -> None:
    process = UploadProcess()
    uploader = CaptureUploader(process, "captures-missing", max_attempts=2, base_delay=0.05)
    store = CaptureStore(tmp_path, uploader)
    store.start()
    try:
        _capture(store, "doomed")
        _wait_for(lambda: store.status("doomed") == "FAILURE")
        upload = store.record("doomed")["upload"]
        assert upload["attempts"] == 2
        assert upload["last_error"].startswith("NoSuchBucket: ") or upload["last_error"].startswith(
            "ClientError: "
        )
        assert "NoSuchBucket" in upload["last_error"]
    finally:
        store.stop()


def test_a_child_that_cannot_start_fails_the_attempt_with_its_command(tmp_path: Path) -> None:
    process = UploadProcess("edgekit.no_such_module:factory")
    uploader = CaptureUploader(process, "b", max_attempts=1)
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(Exception) as info:
        uploader.upload(tmp_path, [("f", "f")], "p")
    assert "edgekit.agent.capture_upload" in str(info.value)
    assert "exited with code" in str(info.value)
    assert not process.running


@pytest.fixture(scope="module")
def package() -> Iterator[SignedPackage]:
    work = short_tempdir("ek-capproc-")
    yield signed_package(work)
    import shutil

    shutil.rmtree(work, ignore_errors=True)


def test_the_agent_uploads_captures_without_importing_boto3(
    package: SignedPackage, s3, child_env: dict[str, str]
) -> None:
    """As on the device: the agent modules, a capture uploaded, and no boto3 in the agent."""
    s3.create_bucket(Bucket="captures-lazy")
    work = package.package.parent
    code = f"""
        import json, sys, time
        import numpy as np
        import edgekit.agent.edge_manager_serve, edgekit.cli.cmd_agent
        from edgekit.agent.capture import CaptureUploader, UploadProcess
        from edgekit.agent.client import AgentClient
        from edgekit.agent.server import AgentServer

        uploader = CaptureUploader(
            UploadProcess("edgekit.cli.cmd_agent:capture_s3_client"), "captures-lazy", "p"
        )
        with AgentServer({str(work / "c.sock")!r}, {str(package.public_key)!r},
                         capture_dir={str(work / "captures")!r},
                         capture_uploader=uploader) as server:
            with AgentClient({str(work / "c.sock")!r}) as client:
                client.wait_ready()
                client.load_model("m", {str(package.package)!r})
                x = np.zeros((1, 3, 64, 96), np.float32)
                out = client.predict("m", {{"image": x}})
                client.capture_data("m", "cap-1", inputs={{"image": x}}, outputs=out)
                deadline = time.monotonic() + 60
                while client.capture_status("cap-1") != "SUCCESS":
                    assert time.monotonic() < deadline, "upload did not finish"
                    time.sleep(0.05)
        print(json.dumps({{"modules": sorted(sys.modules)}}))
    """
    env = dict(child_env, EDGEKIT_BACKEND="aws", EDGEKIT_REGION="us-east-1", EDGEKIT_QUIET="1")
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    modules = json.loads(out.stdout.strip().splitlines()[-1])["modules"]
    assert [m for m in modules if m.split(".")[0] in ("boto3", "botocore")] == []
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="captures-lazy")["Contents"]]
    assert "p/m/cap-1/capture.json" in keys
