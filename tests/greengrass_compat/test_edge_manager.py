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


def test_edge_manager_code_runs_unchanged(
    gg_local: Any, socket_dir: Path, deploy_and_wait: Callable[..., dict[str, Any]]
) -> None:
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
    edge_manager = {
        "componentVersion": "1.3.2",
        "configurationUpdate": {
            "merge": json.dumps(
                {
                    "DeviceFleetName": "compat-fleet",
                    "BucketName": capture_bucket,
                    "UnixSocketName": socket_name,
                }
            )
        },
    }
    row = deploy_and_wait(
        gg_local.gg,
        gg_local.thing_arn(device.thing_name),
        {
            "aws.greengrass.SageMakerEdgeManager": edge_manager,
            "com.example.EdgeManagerClient": "1.0.0",
        },
        timeout=120,
    )
    client_log = component_log(device, "com.example.EdgeManagerClient")
    agent_log = component_log(device, "aws.greengrass.SageMakerEdgeManager")
    assert row["coreDeviceExecutionStatus"] == "SUCCEEDED", (row, client_log, agent_log)

    # Wait for the client's last line (it runs after the deployment reports).
    deadline = time.monotonic() + 60
    while "CAPTURE " not in client_log and time.monotonic() < deadline:
        time.sleep(0.1)
        client_log = component_log(device, "com.example.EdgeManagerClient")
    agent_log = component_log(device, "aws.greengrass.SageMakerEdgeManager")
    assert f"agent socket: {socket_name}" in client_log, client_log
    line = next(x for x in client_log.splitlines() if "PREDICTION " in x)
    prediction = json.loads(line.split("PREDICTION ", 1)[1])
    assert prediction["name"] == "y"
    assert prediction["values"] == (2 * np.arange(4, dtype=np.float32) + 1).tolist()
    assert "WITHOUT signature verification" in agent_log  # a plain ONNX folder, said so

    line = next(x for x in client_log.splitlines() if "CAPTURE " in x)
    capture = json.loads(line.split("CAPTURE ", 1)[1])
    assert capture["status"] == "SUCCESS", (client_log, agent_log)
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=capture_bucket, Prefix="sme-capture/").get(
            "Contents", []
        )
    ]
    prefix = f"sme-capture/example-model/{capture['capture_id']}/"
    assert f"{prefix}capture.json" in keys, keys
    assert any(k.startswith(f"{prefix}input_tensors/") for k in keys), keys
