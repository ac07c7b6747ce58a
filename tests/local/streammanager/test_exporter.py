"""S3 export tasks against moto's S3, read back through the SDK as a component would."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from stream_manager import (
    ExportDefinition,
    KinesisConfig,
    MessageStreamDefinition,
    Persistence,
    ReadMessagesOptions,
    S3ExportTaskDefinition,
    S3ExportTaskExecutorConfig,
    Status,
    StatusConfig,
    StatusLevel,
    StatusMessage,
    StrategyOnFull,
    StreamManagerClient,
    Util,
)

from edgekit.local.streammanager.exporter import expand_key
from edgekit.local.streammanager.server import StreamManagerServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3(moto_url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"sm-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def kinesis(moto_url: str) -> Any:
    return boto3.client(
        "kinesis",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


class Running:
    def __init__(self, root: Path, s3: Any, kinesis: Any = None) -> None:
        self.root, self.s3, self.kinesis = root, s3, kinesis
        self.server: StreamManagerServer | None = None
        self.client: StreamManagerClient | None = None

    def start(self) -> StreamManagerClient:
        self.server = StreamManagerServer(
            self.root, aws_client=lambda service: self.kinesis if service == "kinesis" else self.s3
        ).start()
        self.client = StreamManagerClient(port=self.server.port, request_timeout=60)
        return self.client

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.server is not None:
            self.server.stop()


@pytest.fixture
def running(
    tmp_path: Path, s3: Any, kinesis: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Running]:
    monkeypatch.delenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", raising=False)
    r = Running(tmp_path / "store", s3, kinesis)
    yield r
    r.stop()


def setup_streams(
    client: StreamManagerClient, level: StatusLevel = StatusLevel.INFO, **s3: Any
) -> None:
    client.create_message_stream(
        MessageStreamDefinition(name="status", strategy_on_full=StrategyOnFull.OverwriteOldestData)
    )
    client.create_message_stream(
        MessageStreamDefinition(
            name="export",
            strategy_on_full=StrategyOnFull.OverwriteOldestData,
            persistence=Persistence.File,
            export_definition=ExportDefinition(
                s3_task_executor=[
                    S3ExportTaskExecutorConfig(
                        identifier="s3",
                        status_config=StatusConfig(status_level=level, status_stream_name="status"),
                        **s3,
                    )
                ]
            ),
        )
    )


def task(path: Path, bucket: str, key: str, **meta: str) -> bytes:
    return Util.validate_and_serialize_to_json_bytes(
        S3ExportTaskDefinition(
            input_url=f"file://{path}", bucket=bucket, key=key, user_metadata=meta or None
        )
    )


def statuses(client: StreamManagerClient, count: int, start: int = 0) -> list[StatusMessage]:
    messages = client.read_messages(
        "status",
        ReadMessagesOptions(
            desired_start_sequence_number=start,
            min_message_count=count,
            max_message_count=count,
            read_timeout_millis=30000,
        ),
    )
    return [Util.deserialize_json_bytes_to_obj(m.payload, StatusMessage) for m in messages]


def test_a_task_uploads_the_file_and_reports_in_progress_then_success(
    running: Running, s3: Any, bucket: str, tmp_path: Path
) -> None:
    client = running.start()
    setup_streams(client)
    data = tmp_path / "image.bin"
    data.write_bytes(b"\x00\x01 image bytes")
    client.append_message(
        "export", task(data, bucket, "dir/!{timestamp:yyyy}/image.bin", camera="c1")
    )
    first, second = statuses(client, 2)
    assert (first.status, second.status) == (Status.InProgress, Status.Success)
    assert second.status_context.stream_name == "export"
    assert second.status_context.export_identifier == "s3"
    assert second.status_context.s3_export_task_definition.bucket == bucket
    key = f"dir/{datetime.now(UTC).year}/image.bin"
    obj = s3.get_object(Bucket=bucket, Key=key)
    assert obj["Body"].read() == b"\x00\x01 image bytes"
    assert obj["Metadata"] == {"camera": "c1"}
    export = client.describe_message_stream("export").export_statuses[0]
    assert export.export_config_identifier == "s3"
    assert export.last_exported_sequence_number == 0 and export.exported_messages_count == 1


def test_failures_are_reported_and_the_level_filters_statuses(
    running: Running, bucket: str, tmp_path: Path
) -> None:
    client = running.start()
    setup_streams(client, level=StatusLevel.ERROR)
    good = tmp_path / "good.txt"
    good.write_text("ok")
    client.append_message("export", task(good, bucket, "good.txt"))
    client.append_message("export", task(tmp_path / "missing.txt", bucket, "missing.txt"))
    client.append_message("export", b"{not a task")
    failures = statuses(client, 2)  # ERROR level: no InProgress, no Success
    assert [f.status for f in failures] == [Status.Failure, Status.Failure]
    assert "missing.txt" in failures[0].message and "does not exist" in failures[0].message
    assert "not a valid S3ExportTaskDefinition" in failures[1].message
    export = client.describe_message_stream("export").export_statuses[0]
    assert export.last_exported_sequence_number == 2 and export.error_message


def test_a_restart_does_not_upload_exported_tasks_again(
    running: Running, s3: Any, bucket: str, tmp_path: Path
) -> None:
    client = running.start()
    setup_streams(client)
    first = tmp_path / "first.txt"
    first.write_text("1")
    client.append_message("export", task(first, bucket, "first.txt"))
    assert statuses(client, 2)[1].status == Status.Success
    s3.delete_object(Bucket=bucket, Key="first.txt")
    running.stop()

    client = running.start()
    # the status stream was a File stream too: it still holds the two statuses
    second = tmp_path / "second.txt"
    second.write_text("2")
    client.append_message("export", task(second, bucket, "second.txt"))
    later = statuses(client, 2, start=2)
    assert [s.status for s in later] == [Status.InProgress, Status.Success]
    assert later[1].status_context.sequence_number == 1
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert keys == {"second.txt"}


def test_multipart_uploads_above_the_threshold(
    running: Running, s3: Any, bucket: str, tmp_path: Path
) -> None:
    client = running.start()
    setup_streams(client, size_threshold_for_multipart_upload_bytes=5 * 1024 * 1024)
    big = tmp_path / "big.bin"
    big.write_bytes(b"\x07" * (6 * 1024 * 1024 + 5))
    client.append_message("export", task(big, bucket, "big.bin"))
    assert statuses(client, 2)[1].status == Status.Success
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == big.stat().st_size
    assert "-" in head["ETag"]  # a multipart upload's ETag


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("plain/key", "plain/key"),
        ("a/!{timestamp:yyyy/MM/dd}/b", "a/2026/03/04/b"),
        ("!{timestamp:HHmmss}.jpg", "050607.jpg"),
    ],
)
def test_expand_key(key: str, expected: str) -> None:
    assert expand_key(key, datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)) == expected


def test_status_messages_are_json_objects() -> None:
    from edgekit.local.streammanager.exporter import status_message

    body = json.loads(status_message(1, 0, "boom", "s", "id", 3, None))
    assert body["status"] == 1 and body["statusContext"] == {
        "exportIdentifier": "id",
        "streamName": "s",
        "sequenceNumber": 3,
    }


def kinesis_records(kinesis: Any, stream: str, want: int) -> list[bytes]:
    """Every record of the (one-shard) Kinesis stream, once ``want`` have arrived."""
    shard = kinesis.describe_stream(StreamName=stream)["StreamDescription"]["Shards"][0]
    deadline = time.monotonic() + 30
    while True:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = [r["Data"] for r in kinesis.get_records(ShardIterator=iterator)["Records"]]
        if len(records) >= want or time.monotonic() > deadline:
            return records
        time.sleep(0.05)


def test_kinesis_exports_messages_in_order_from_start_sequence_number(
    running: Running, kinesis: Any
) -> None:
    stream = f"ks-{uuid.uuid4().hex[:6]}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    client = running.start()
    client.create_message_stream(
        MessageStreamDefinition(
            name="tokinesis",
            strategy_on_full=StrategyOnFull.OverwriteOldestData,
            export_definition=ExportDefinition(
                kinesis=[
                    KinesisConfig(
                        identifier="k", kinesis_stream_name=stream, start_sequence_number=1
                    )
                ]
            ),
        )
    )
    for i in range(4):
        client.append_message("tokinesis", b"record-%d" % i)
    assert kinesis_records(kinesis, stream, 3) == [b"record-1", b"record-2", b"record-3"]
    status = client.describe_message_stream("tokinesis").export_statuses[0]
    assert status.last_exported_sequence_number == 3 and status.exported_messages_count == 3


def test_a_missing_kinesis_stream_is_an_export_error_retried_later(running: Running) -> None:
    client = running.start()
    client.create_message_stream(
        MessageStreamDefinition(
            name="nowhere",
            strategy_on_full=StrategyOnFull.OverwriteOldestData,
            export_definition=ExportDefinition(
                kinesis=[KinesisConfig(identifier="k", kinesis_stream_name="does-not-exist")]
            ),
        )
    )
    client.append_message("nowhere", b"x")
    deadline = time.monotonic() + 30
    while True:
        statuses_ = client.describe_message_stream("nowhere").export_statuses
        if statuses_ and statuses_[0].error_message:
            break
        assert time.monotonic() < deadline, "no export error reported"
        time.sleep(0.05)
    assert "does-not-exist" in statuses_[0].error_message
    assert statuses_[0].last_exported_sequence_number is None  # not past the message


@pytest.mark.parametrize(
    ("interval", "available", "since_last", "go"),
    [
        (None, 1, 0, True),  # no interval: export what is there
        (60000, 10, 0, True),  # a full batch goes at once
        (60000, 3, 1000, False),  # a partial batch waits for the interval
        (60000, 3, 60000, True),
        (None, 0, 0, False),
    ],
)
def test_kinesis_batch_interval(
    interval: int | None, available: int, since_last: int, go: bool
) -> None:
    from edgekit.local.streammanager.definitions import KinesisConfig as Config
    from edgekit.local.streammanager.kinesis import ready

    config = Config("k", "ks", 10, interval, 0, False)
    assert ready(config, available, 1_000_000, 1_000_000 + since_last) is go
