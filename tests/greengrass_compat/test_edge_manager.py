"""Code written for SageMaker Edge Manager runs unchanged against the local device's stand-in.

``components/com.example.EdgeManagerClient`` was written from the AWS documentation and
the Edge Manager samples only: it depends on ``aws.greengrass.SageMakerEdgeManager``,
generates its gRPC stubs from ``agent.proto`` at install (the proto edgekit ships is
uploaded as its artifact, as the samples ship the agent's), reads ``UnixSocketName`` with
IPC GetConfiguration, loads the folder the model component unpacked, predicts, captures
the inference and waits for the capture upload. It is deployed with plain boto3; the test
checks what the user sees: the prediction in the component's log equals the model's
output, and the capture landed in the configured bucket of the emulated S3.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROTO = Path(__file__).resolve().parents[2] / "edgekit" / "agent" / "protos" / "agent.proto"
PYTHON = {"python3 ": f"{sys.executable} "}  # the recipe's python3: this test's interpreter


def tiny_onnx() -> bytes:
    """y = 2 * x + 1 on a float32 [1, 4] input, built with onnx.helper."""
    import onnx
    from onnx import TensorProto, helper

    two = helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0])
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "two"], ["t"]),
            helper.make_node("Add", ["t", "one"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=[two, one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def model_archive(onnx_bytes: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("model.onnx")
        info.size = len(onnx_bytes)
        tar.addfile(info, io.BytesIO(onnx_bytes))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def socket_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="sme-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def component_log(device: Any, name: str) -> str:
    path = device.layout.component_log(name)
    return path.read_text() if path.exists() else ""


@dataclass
class Deployed:
    device: Any
    socket_name: str
    capture_bucket: str
    row: dict[str, Any]


def edge_manager_spec(**config: str) -> dict[str, Any]:
    return {
        "componentVersion": "1.3.2",
        "configurationUpdate": {"merge": json.dumps({"DeviceFleetName": "compat-fleet", **config})},
    }


@pytest.fixture(scope="module")
def deployed(
    gg_local: Any, socket_dir: Path, deploy_and_wait: Callable[..., dict[str, Any]]
) -> Deployed:
    """The client component and the Edge Manager stand-in, deployed to one device."""
    s3 = gg_local.s3
    capture_bucket = f"sagemaker-compat-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=capture_bucket)
    s3.put_object(
        Bucket=gg_local.bucket,
        Key="com.example.EdgeManagerModel/model.tar.gz",
        Body=model_archive(tiny_onnx()),
    )
    s3.put_object(
        Bucket=gg_local.bucket,
        Key="com.example.EdgeManagerClient/agent.proto",
        Body=PROTO.read_bytes(),
    )
    gg_local.publish("com.example.EdgeManagerModel")
    gg_local.publish("com.example.EdgeManagerClient", replace=PYTHON)
    device = gg_local.start_device()
    socket_name = str(socket_dir / "sme.sock")  # not the /tmp default: runs may share a host
    row = deploy_and_wait(
        gg_local.gg,
        gg_local.thing_arn(device.thing_name),
        {
            "aws.greengrass.SageMakerEdgeManager": edge_manager_spec(
                BucketName=capture_bucket, UnixSocketName=socket_name
            ),
            "com.example.EdgeManagerClient": "1.0.0",
        },
        timeout=120,
    )
    return Deployed(device, socket_name, capture_bucket, row)


def wait_for_line(device: Any, name: str, marker: str) -> str:
    """The component's log once ``marker`` is in it (or after 60 s, for the assertion)."""
    deadline = time.monotonic() + 60
    text = component_log(device, name)
    while marker not in text and time.monotonic() < deadline:
        time.sleep(0.1)
        text = component_log(device, name)
    return text


def test_edge_manager_code_runs_unchanged(gg_local: Any, deployed: Deployed) -> None:
    device = deployed.device
    client_log = wait_for_line(device, "com.example.EdgeManagerClient", "CAPTURE ")
    agent_log = component_log(device, "aws.greengrass.SageMakerEdgeManager")
    assert deployed.row["coreDeviceExecutionStatus"] == "SUCCEEDED", (
        deployed.row,
        client_log,
        agent_log,
    )
    assert f"agent socket: {deployed.socket_name}" in client_log, client_log
    line = next(x for x in client_log.splitlines() if "PREDICTION " in x)
    prediction = json.loads(line.split("PREDICTION ", 1)[1])
    assert prediction["name"] == "y"
    assert prediction["values"] == (2 * np.arange(4, dtype=np.float32) + 1).tolist()
    assert "WITHOUT signature verification" in agent_log  # a plain ONNX folder, said so

    line = next(x for x in client_log.splitlines() if "CAPTURE " in x)
    capture = json.loads(line.split("CAPTURE ", 1)[1])
    assert capture["status"] == "SUCCESS", (client_log, agent_log)
    listing = gg_local.s3.list_objects_v2(Bucket=deployed.capture_bucket, Prefix="sme-capture/")
    keys = [o["Key"] for o in listing.get("Contents", [])]
    prefix = f"sme-capture/example-model/{capture['capture_id']}/"
    assert f"{prefix}capture.json" in keys, keys
    assert any(k.startswith(f"{prefix}input_tensors/") for k in keys), keys


def installed_state(gg: Any, thing: str, name: str) -> str | None:
    rows = gg.list_installed_components(coreDeviceThingName=thing)["installedComponents"]
    return next((r["lifecycleState"] for r in rows if r["componentName"] == name), None)


def test_a_second_device_on_the_same_socket_breaks_naming_it(
    gg_local: Any, deployed: Deployed, deploy_and_wait: Callable[..., dict[str, Any]]
) -> None:
    name = "aws.greengrass.SageMakerEdgeManager"
    second = gg_local.start_device()
    deploy_and_wait(
        gg_local.gg,
        gg_local.thing_arn(second.thing_name),
        {
            name: edge_manager_spec(
                CaptureDataDestination="Disk", UnixSocketName=deployed.socket_name
            )
        },
        # Whether the agent breaks before or after the deployment ends is a race (an agent
        # that fails fast fails the deployment, and ROLLBACK would then stop it): keep it.
        policy="DO_NOTHING",
        timeout=120,
    )
    # As on a core device, the agent starts and then fails: ERRORED, retried, BROKEN.
    deadline = time.monotonic() + 60
    while installed_state(gg_local.gg, second.thing_name, name) != "BROKEN":
        assert time.monotonic() < deadline, component_log(second, name)
        time.sleep(0.1)
    log = component_log(second, name)
    assert f"UnixSocketName {deployed.socket_name} is in use" in log, log
    assert "set UnixSocketName in the configurationUpdate" in log
    # The first device's agent still serves its socket.
    assert installed_state(gg_local.gg, deployed.device.thing_name, name) == "RUNNING"
    assert Path(deployed.socket_name).exists()


def test_a_configuration_the_agent_cannot_use_fails_the_deployment(
    gg_local: Any, deployed: Deployed, deploy_and_wait: Callable[..., dict[str, Any]]
) -> None:
    third = gg_local.start_device()
    row = deploy_and_wait(
        gg_local.gg,
        gg_local.thing_arn(third.thing_name),
        {"aws.greengrass.SageMakerEdgeManager": edge_manager_spec(BucketName="")},
        timeout=120,
    )
    assert row["coreDeviceExecutionStatus"] == "FAILED", row
    log = component_log(third, "aws.greengrass.SageMakerEdgeManager")
    assert "BucketName is empty" in log, log


def test_a_new_unix_socket_name_moves_the_agent(
    gg_local: Any, socket_dir: Path, deploy_and_wait: Callable[..., dict[str, Any]]
) -> None:
    import grpc

    name = "aws.greengrass.SageMakerEdgeManager"
    device = gg_local.start_device()
    first, second = socket_dir / "move-a.sock", socket_dir / "move-b.sock"
    for path in (first, second):
        row = deploy_and_wait(
            gg_local.gg,
            gg_local.thing_arn(device.thing_name),
            {name: edge_manager_spec(CaptureDataDestination="Disk", UnixSocketName=str(path))},
            timeout=120,
        )
        assert row["coreDeviceExecutionStatus"] == "SUCCEEDED", row
        with grpc.insecure_channel(f"unix://{path}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)  # the agent serves there
    assert not first.exists(), component_log(device, name)
