"""The SageMaker Edge Manager stand-in: its recipe, its configuration, where it listens.

edgekit/agent/edge_manager.py (recipe + configuration) and edge_manager_serve.py (the Run
step). The end-to-end test with a component written from the AWS docs is
tests/greengrass_compat/test_edge_manager.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from edgekit.agent import agent_pb2, agent_pb2_grpc
from edgekit.agent.edge_manager import (
    COMPONENT_NAME,
    DEFAULT_CONFIGURATION,
    DEFAULT_SOCKET,
    ENV_PREFIX,
    WORK_ENV,
    builtin_recipe,
    read_config,
)
from edgekit.agent.edge_manager_serve import check_socket_path, serve
from edgekit.agent.testing import SignedPackage, short_tempdir, signed_package
from edgekit.errors import AgentError, ConfigurationError
from edgekit.local.device.provided import builtin_recipe as device_builtin_recipe
from edgekit.local.device.provided import provided_versions
from edgekit.recipes.provided import is_built_in


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = short_tempdir("sme-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def env(work: Path, **values: str) -> dict[str, str]:
    """The Run step's environment as the device's Setenv gives it (defaults + ``values``)."""
    out = {ENV_PREFIX + k: v for k, v in DEFAULT_CONFIGURATION.items()}
    out.update({ENV_PREFIX + k: v for k, v in values.items()})
    out[WORK_ENV] = str(work)
    return out


# -- recipe --------------------------------------------------------------------------------


def test_the_device_runs_it_from_its_recipe_at_every_public_version() -> None:
    assert is_built_in(COMPONENT_NAME)
    versions = provided_versions(COMPONENT_NAME)
    assert versions is not None and {"1.0.0", "1.1.0", "1.3.2"} <= set(versions)
    recipe = device_builtin_recipe(COMPONENT_NAME, "1.3.2")
    assert recipe is not None and recipe["ComponentVersion"] == "1.3.2"
    defaults = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    assert (
        defaults["UnixSocketName"]
        == DEFAULT_SOCKET
        == "/tmp/aws.greengrass.SageMakerEdgeManager.sock"
    )
    for key in ("DeviceFleetName", "BucketName", "CaptureDataBufferSize", "CaptureDataBatchSize",
                "CaptureDataPushPeriodSeconds", "CaptureDataBase64EmbedLimit",
                "CaptureDataPeriodicUpload", "CaptureDataPeriodicUploadPeriodSeconds",
                "CaptureDataDestination", "CaptureDataDiskPath", "FolderPrefix",
                "SagemakerEdgeLogVerbose"):  # fmt: skip
        assert key in defaults
    lifecycle = recipe["Manifests"][0]["Lifecycle"]
    assert lifecycle["Setenv"][ENV_PREFIX + "UnixSocketName"] == "{configuration:/UnixSocketName}"
    assert sys.executable in lifecycle["Run"]["Script"]
    assert "edgekit.agent.edge_manager_serve" in lifecycle["Run"]["Script"]
    assert "edgekit.agent.edge_manager --check" in lifecycle["Install"]["Script"]


def test_a_version_aws_never_published_fails() -> None:
    with pytest.raises(Exception, match="no public version 9.9.9"):
        device_builtin_recipe(COMPONENT_NAME, "9.9.9")


def test_builtin_recipe_is_fresh_each_time() -> None:
    a = builtin_recipe("1.0.0")
    a["ComponentConfiguration"]["DefaultConfiguration"]["BucketName"] = "changed"
    assert (
        builtin_recipe("1.0.0")["ComponentConfiguration"]["DefaultConfiguration"]["BucketName"]
        == ""
    )


# -- configuration -------------------------------------------------------------------------


def test_the_documented_defaults(tmp_path: Path) -> None:
    config = read_config(env(tmp_path, BucketName="sagemaker-b"))
    assert config.socket == Path(DEFAULT_SOCKET)
    assert config.destination == "Cloud" and config.uploads
    assert config.capture_dir == tmp_path / "capture" / "sme-capture"
    assert config.buffer_size == 30 and config.numbers["CaptureDataBatchSize"] == 10
    assert not config.verbose and config.public_key_pem == ""


def test_disk_destination_and_its_path(tmp_path: Path) -> None:
    config = read_config(
        env(
            tmp_path,
            CaptureDataDestination="disk",
            CaptureDataDiskPath=str(tmp_path / "d"),
            FolderPrefix="caps",
            SagemakerEdgeLogVerbose="True",
        )  # fmt: skip
    )
    assert config.destination == "Disk" and not config.uploads
    assert config.capture_dir == tmp_path / "d" / "caps" and config.verbose


def test_a_removed_key_falls_back_to_its_default(tmp_path: Path) -> None:
    values = env(tmp_path, BucketName="b")
    values[ENV_PREFIX + "UnixSocketName"] = "{configuration:/UnixSocketName}"
    assert read_config(values).socket == Path(DEFAULT_SOCKET)


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({}, "BucketName is empty"),
        ({"CaptureDataDestination": "Disk", "CaptureDataPeriodicUpload": "true"}, "BucketName"),
        ({"BucketName": "b", "CaptureDataDestination": "S3"}, "must be Cloud or Disk"),
        ({"BucketName": "b", "UnixSocketName": "relative.sock"}, "absolute path"),
        ({"BucketName": "b", "UnixSocketName": ""}, "absolute path"),
        ({"BucketName": "b", "CaptureDataBufferSize": "lots"}, "CaptureDataBufferSize is 'lots'"),
        ({"BucketName": "b", "CaptureDataBatchSize": "30"}, "less than CaptureDataBufferSize"),
        ({"BucketName": "b", "CaptureDataPeriodicUpload": "yes"}, '"true" or "false"'),
        ({"BucketName": "b", "FolderPrefix": "../up"}, "FolderPrefix"),
    ],
)
def test_configuration_refusals_name_the_key(
    tmp_path: Path, values: dict[str, str], says: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        read_config(env(tmp_path, **values))
    assert says in str(info.value) and COMPONENT_NAME in str(info.value)


def test_the_work_folder_is_required() -> None:
    with pytest.raises(ConfigurationError, match=WORK_ENV):
        read_config({})


# -- where it listens ----------------------------------------------------------------------


def test_a_socket_another_process_serves_is_never_taken(workdir: Path) -> None:
    path = workdir / "sme.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    try:
        with pytest.raises(AgentError) as info:
            check_socket_path(path)
    finally:
        listener.close()
    message = str(info.value)
    assert f"UnixSocketName {path} is in use" in message
    assert "another local device" in message and "set UnixSocketName" in message
    assert f"{workdir}/<thing name>/agent.sock" in message
    assert path.exists()


def test_a_stale_socket_is_replaced_and_a_file_is_not(workdir: Path) -> None:
    path = workdir / "sme.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()
    check_socket_path(path)
    assert not path.exists()
    path.write_text("not a socket")
    with pytest.raises(AgentError, match="is not a socket"):
        check_socket_path(path)


def test_a_folder_others_can_write_is_refused_unless_sticky(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shared = workdir / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(AgentError, match="other users can write"):
        check_socket_path(shared / "sme.sock")
    os.chmod(shared, 0o1777)  # like /tmp: the Edge Manager default works, with a warning
    with caplog.at_level("WARNING"):
        check_socket_path(shared / "sme.sock")
    assert "another user could take the name" in caplog.text
    link = workdir / "link"
    link.symlink_to(workdir)
    with pytest.raises(AgentError, match="symbolic link"):
        check_socket_path(link / "sme.sock")


# -- the agent it runs ---------------------------------------------------------------------


@pytest.fixture
def pkg(workdir: Path) -> SignedPackage:
    return signed_package(workdir / "pkg")


@pytest.mark.integration
def test_serve_on_unix_socket_name_with_disk_capture(workdir: Path, pkg: SignedPackage) -> None:
    model_dir = workdir / "model"
    model_dir.mkdir()
    shutil.copy(pkg.model, model_dir / "model.onnx")
    config = read_config(
        env(
            workdir / "work",
            CaptureDataDestination="Disk",
            UnixSocketName=str(workdir / "s.sock"),
            PublicKey=pkg.public_key.read_text(),
        )  # fmt: skip
    )
    stop = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            serve(config, stop)
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        channel = grpc.insecure_channel(f"unix://{config.socket}")
        grpc.channel_ready_future(channel).result(timeout=30)
        agent = agent_pb2_grpc.AgentStub(channel)
        plain = agent.LoadModel(agent_pb2.LoadModelRequest(url=str(model_dir), name="plain"))
        assert plain.model.package_sha256_source == "onnx-file"
        signed = agent.LoadModel(agent_pb2.LoadModelRequest(url=str(pkg.package), name="signed"))
        assert signed.model.key_fingerprint  # verified against PublicKey
        meta = plain.model.input_tensor_metadatas[0]
        x = np.zeros(list(meta.shape), np.float32)
        tensor = agent_pb2.Tensor(tensor_metadata=meta, byte_data=x.tobytes())
        reply = agent.Predict(agent_pb2.PredictRequest(name="plain", tensors=[tensor]))
        assert [t.tensor_metadata.name for t in reply.tensors] == ["heatmap", "size", "offset"]
        agent.CaptureData(
            agent_pb2.CaptureDataRequest(
                model_name="plain", capture_id="c1", input_tensors=[tensor]
            )
        )
        status = agent.GetCaptureDataStatus(agent_pb2.GetCaptureDataStatusRequest(capture_id="c1"))
        assert agent_pb2.CaptureDataStatus.Name(status.status) == "SUCCESS"
        assert (config.capture_dir / "c1" / "capture.json").is_file()
        with pytest.raises(grpc.RpcError) as info:
            neo = workdir / "neo"
            neo.mkdir()
            (neo / "compiled.so").write_bytes(b"")
            agent.LoadModel(agent_pb2.LoadModelRequest(url=str(neo), name="neo"))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert str(neo) in info.value.details() and "Neo-compiled" in info.value.details()
        channel.close()
    finally:
        stop.set()
        thread.join(30)
    assert not failures, failures
    assert not config.socket.exists()


@pytest.mark.parametrize(("bucket", "code"), [("sagemaker-b", 0), ("", 1)])
def test_the_install_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    bucket: str, code: int,
) -> None:  # fmt: skip
    from edgekit.agent.edge_manager import check

    for key, value in env(tmp_path, BucketName=bucket).items():
        monkeypatch.setenv(key, value)
    assert check() == code
    out = capsys.readouterr()
    assert ("BucketName is empty" in out.err) == bool(code)
    assert (DEFAULT_SOCKET in out.out) == (not code)


def test_a_missing_socket_folder_is_created_private(workdir: Path) -> None:
    path = workdir / "thing-1" / "agent.sock"
    check_socket_path(path)
    assert (path.parent.stat().st_mode & 0o777) == 0o700 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
