"""aws.greengrass.StreamManager on a real local device, used through the public SDK.

``components/com.example.StreamManagerS3`` was written from the AWS developer guide's
stream manager pages only: it creates an export stream with an S3 task executor and a
status stream, appends an S3ExportTaskDefinition for a file it wrote, and reads the
status stream until Success. It is deployed with plain boto3 next to the stream manager
(on a port of its own: several local devices share the machine).
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SM = "aws.greengrass.StreamManager"
APP = "com.example.StreamManagerS3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def device(gg_local: Any) -> Any:
    return gg_local.start_device()


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture
def no_token(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "STREAM_MANAGER_SERVER_PORT"):
        monkeypatch.delenv(name, raising=False)
    yield


def sm_config(port: int, **more: str) -> dict[str, Any]:
    merge = {"STREAM_MANAGER_SERVER_PORT": str(port), **more}
    return {"componentVersion": "2.2.1", "configurationUpdate": {"merge": _json(merge)}}


def _json(value: Any) -> str:
    return json.dumps(value)


def test_component_exports_a_file_to_s3_and_reads_success_from_the_status_stream(
    gg_local: Any, device: Any, port: int, deploy_and_wait: Callable[..., dict[str, Any]]
) -> None:
    gg_local.publish(APP)
    row = deploy_and_wait(
        gg_local.gg,
        gg_local.thing_arn(device.thing_name),
        {
            SM: sm_config(port),
            APP: {
                "componentVersion": "1.0.0",
                "configurationUpdate": {
                    "merge": _json({"Python": sys.executable, "BucketName": gg_local.bucket})
                },
            },
        },
    )
    assert row["coreDeviceExecutionStatus"] == "SUCCEEDED", row
    log = gg_local.component_log(device, APP, contains="EXPORT-STATUS", timeout=60)
    assert "EXPORT-STATUS Success" in log, log[-3000:]
    assert "File upload is in Progress." in log  # the InProgress status came first
    body = gg_local.s3.get_object(Bucket=gg_local.bucket, Key="stream-manager/hello.txt")["Body"]
    assert body.read() == b"hello from stream manager\n"
    sm_log = gg_local.component_log(device, SM, contains=f"listening on 127.0.0.1:{port}")
    assert "client authentication on" in sm_log
    # what GetConfiguration of aws.greengrass.StreamManager ["port"] answers components
    assert device.get_configuration(SM, ["port"]) == port


def test_clients_without_a_component_token_are_refused(port: int, no_token: None) -> None:
    from stream_manager import StreamManagerClient
    from stream_manager.exceptions import ConnectFailedException

    with pytest.raises(ConnectFailedException):
        StreamManagerClient(port=port, connect_timeout=5)


def test_sdk_appends_and_reads_after_a_restart_on_a_random_port_without_authentication(
    gg_local: Any,
    device: Any,
    port: int,
    no_token: None,
    deploy_and_wait: Callable[..., dict[str, Any]],
) -> None:
    from stream_manager import (
        MessageStreamDefinition,
        Persistence,
        ReadMessagesOptions,
        StrategyOnFull,
        StreamManagerClient,
    )

    row = deploy_and_wait(
        gg_local.gg,
        gg_local.thing_arn(device.thing_name),
        {SM: sm_config(0, STREAM_MANAGER_AUTHENTICATE_CLIENT="false")},
    )
    assert row["coreDeviceExecutionStatus"] == "SUCCEEDED", row
    gg_local.component_log(device, SM, contains="client authentication off")
    bound = device.get_configuration(SM, ["port"])  # "0": a free port, published as port
    assert isinstance(bound, int) and bound not in (0, port)
    client = StreamManagerClient(port=bound, connect_timeout=5)
    try:
        # The component's streams are File streams: they outlived the restart.
        assert {"SomeStream", "SomeStatusStreamName"} <= set(client.list_streams())
        info = client.describe_message_stream("SomeStream")
        assert info.storage_status.newest_sequence_number == 0
        assert info.export_statuses[0].last_exported_sequence_number == 0
        client.create_message_stream(
            MessageStreamDefinition(
                name="direct",
                strategy_on_full=StrategyOnFull.RejectNewData,
                persistence=Persistence.Memory,
            )
        )
        seqs = [client.append_message("direct", f"m{i}".encode()) for i in range(3)]
        assert seqs == [0, 1, 2]
        messages = client.read_messages(
            "direct", ReadMessagesOptions(min_message_count=3, max_message_count=3)
        )
        assert [m.payload for m in messages] == [b"m0", b"m1", b"m2"]
    finally:
        client.close()


def test_a_dependent_finds_a_random_port_through_its_environment(
    gg_local: Any, device: Any, deploy_and_wait: Callable[..., dict[str, Any]]
) -> None:
    row = deploy_and_wait(
        gg_local.gg,
        gg_local.thing_arn(device.thing_name),
        {
            SM: sm_config(0),
            APP: {
                "componentVersion": "1.0.0",
                "configurationUpdate": {
                    "merge": _json(
                        {
                            "Python": sys.executable,
                            "BucketName": gg_local.bucket,
                            "ObjectKey": "stream-manager/again.txt",
                        }
                    )
                },
            },
        },
    )
    assert row["coreDeviceExecutionStatus"] == "SUCCEEDED", row
    deadline = time.monotonic() + 60
    while "EXPORT-STATUS" not in gg_local.component_log(device, APP).split("again.txt")[-1]:
        assert time.monotonic() < deadline, gg_local.component_log(device, APP)[-3000:]
        time.sleep(0.05)
    body = gg_local.s3.get_object(Bucket=gg_local.bucket, Key="stream-manager/again.txt")
    assert body["Body"].read() == b"hello from stream manager\n"
    assert gg_local.component_log(device, APP).count("EXPORT-STATUS Success") == 2


def test_a_port_in_use_fails_the_deployment_naming_port_device_and_fix(
    gg_local: Any, device: Any, port: int, deploy_and_wait: Callable[..., dict[str, Any]]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        row = deploy_and_wait(
            gg_local.gg,
            gg_local.thing_arn(device.thing_name),
            {SM: sm_config(busy)},
        )
        assert row["coreDeviceExecutionStatus"] == "FAILED", row
    log = gg_local.component_log(device, SM, contains=f"port {busy} on 127.0.0.1 is already in use")
    assert f"on device {device.thing_name}" in log
    assert "STREAM_MANAGER_SERVER_PORT" in log
