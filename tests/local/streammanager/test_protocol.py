"""The wire codec against the public SDK's own classes and framing."""

from __future__ import annotations

import cbor2
import pytest
from stream_manager import (
    ExportDefinition,
    HTTPConfig,
    IoTAnalyticsConfig,
    IoTSiteWiseConfig,
    KinesisConfig,
    MessageStreamDefinition,
    Persistence,
    S3ExportTaskDefinition,
    S3ExportTaskExecutorConfig,
    StatusConfig,
    StatusLevel,
    StatusMessage,
    StrategyOnFull,
    Util,
)
from stream_manager.data import (
    AppendMessageRequest,
    AppendMessageResponse,
    MessageStreamInfo,
    Operation,
    ReadMessagesResponse,
    ResponseStatusCode,
)
from stream_manager.utilinternal import UtilInternal

from edgekit.local.streammanager.definitions import (
    DefinitionError,
    parse_definition,
    parse_s3_task,
)
from edgekit.local.streammanager.exporter import status_message
from edgekit.local.streammanager.protocol import (
    LENGTH,
    Op,
    ProtocolError,
    Status,
    decode_payload,
    encode_frame,
    parse_header,
    peek_request_id,
    response_op,
)


def sdk_frame(op: Operation, obj: object) -> bytes:
    from stream_manager.data import MessageFrame

    frame = MessageFrame(operation=op, payload=cbor2.dumps(obj.as_dict()))
    return b"".join(UtilInternal.encode_frame(frame))


def test_enums_match_the_sdk() -> None:
    assert {o.name: o.value for o in Operation} == {o.name: o.value for o in Op}
    assert {s.name: s.value for s in ResponseStatusCode} == {s.name: s.value for s in Status}


def test_a_request_framed_by_the_sdk_decodes() -> None:
    request = AppendMessageRequest(request_id="req-1", name="s", payload=b"\x00\x01data")
    data = sdk_frame(Operation.AppendMessage, request)
    length, op = parse_header(data[: LENGTH.size])
    assert op == Op.AppendMessage and length == len(data) - LENGTH.size
    body = decode_payload(data[LENGTH.size :])
    assert body == {"requestId": "req-1", "name": "s", "payload": b"\x00\x01data"}
    assert peek_request_id(data[LENGTH.size :][:40]) == "req-1"


def test_responses_we_frame_are_read_by_the_sdk_classes() -> None:
    data = encode_frame(
        Op.AppendMessageResponse, {"requestId": "r", "status": Status.Success, "sequenceNumber": 7}
    )
    length, op = parse_header(data[: LENGTH.size])
    assert op == Operation.AppendMessageResponse.value
    response = AppendMessageResponse.from_dict(cbor2.loads(data[LENGTH.size :]))
    assert (response.request_id, response.status, response.sequence_number) == (
        "r",
        ResponseStatusCode.Success,
        7,
    )
    message = {"streamName": "s", "sequenceNumber": 3, "ingestTime": 5, "payload": b"x"}
    read = ReadMessagesResponse.from_dict(
        cbor2.loads(
            encode_frame(
                Op.ReadMessagesResponse,
                {"requestId": "q", "status": Status.Success, "messages": [message]},
            )[LENGTH.size :]
        )
    )
    assert read.messages[0].payload == b"x" and read.messages[0].sequence_number == 3


@pytest.mark.parametrize(
    "header",
    [LENGTH.pack(0, 4), LENGTH.pack(-5, 4)],
    ids=["zero", "negative"],
)
def test_non_positive_lengths_are_protocol_errors(header: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_header(header)


@pytest.mark.parametrize(
    "payload", [b"\xff\xfe garbage", cbor2.dumps([1, 2]), b""], ids=["garbage", "list", "empty"]
)
def test_bad_payloads_are_invalid_requests(payload: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_payload(payload)
    assert info.value.status == Status.InvalidRequest


@pytest.mark.parametrize("prefix", [b"", b"\xa2\x61x", b"\x82\x01\x02", b"\xa1\x69requestId\x01"])
def test_peek_request_id_gives_up_quietly(prefix: bytes) -> None:
    assert peek_request_id(prefix) == ""


def test_response_ops() -> None:
    assert response_op(Op.ReadMessages) == Op.ReadMessagesResponse
    assert response_op(Op.ReadMessagesResponse) is None
    assert response_op(99) is None


def full_definition() -> MessageStreamDefinition:
    return MessageStreamDefinition(
        name="Some Stream, v1.0_x-y",
        max_size=4096,
        stream_segment_size=1024,
        time_to_live_millis=60000,
        strategy_on_full=StrategyOnFull.OverwriteOldestData,
        persistence=Persistence.Memory,
        flush_on_write=True,
        export_definition=ExportDefinition(
            s3_task_executor=[
                S3ExportTaskExecutorConfig(
                    identifier="s3",
                    size_threshold_for_multipart_upload_bytes=6 * 1024 * 1024,
                    priority=3,
                    status_config=StatusConfig(
                        status_level=StatusLevel.ERROR, status_stream_name="status"
                    ),
                )
            ]
        ),
    )


def test_definition_round_trip_through_the_sdk_classes() -> None:
    sdk = full_definition()
    ours = parse_definition(cbor2.loads(cbor2.dumps(sdk.as_dict())))
    assert ours.s3_exports[0].status_level == 0 and ours.s3_exports[0].status_stream == "status"
    back = MessageStreamDefinition.from_dict(ours.as_wire())
    assert back.as_dict() == sdk.as_dict()


def test_definition_defaults_are_the_sdk_defaults() -> None:
    sdk = MessageStreamDefinition(name="s", strategy_on_full=StrategyOnFull.RejectNewData)
    back = MessageStreamDefinition.from_dict(parse_definition(sdk.as_dict()).as_wire())
    assert back.max_size == sdk.max_size and back.stream_segment_size == sdk.stream_segment_size
    assert back.persistence == Persistence.File and back.flush_on_write is False


@pytest.mark.parametrize(
    ("export", "label"),
    [
        (
            ExportDefinition(iot_analytics=[IoTAnalyticsConfig(identifier="a", iot_channel="c")]),
            "IoT Analytics",
        ),
        (ExportDefinition(iot_sitewise=[IoTSiteWiseConfig(identifier="w")]), "IoT SiteWise"),
        (ExportDefinition(http=[HTTPConfig(identifier="h", uri="http://x")]), "HTTP"),
    ],
)
def test_export_kinds_without_local_emulation_are_refused_by_name(
    export: ExportDefinition, label: str
) -> None:
    sdk = MessageStreamDefinition(
        name="s", strategy_on_full=StrategyOnFull.RejectNewData, export_definition=export
    )
    with pytest.raises(
        DefinitionError, match=f"{label}.*not supported by the local stream manager"
    ):
        parse_definition(sdk.as_dict())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "bad/name"}, "definition.name"),
        ({"name": ""}, "definition.name"),
        ({"maxSize": 10}, "maxSize"),
        ({"streamSegmentSize": 1}, "streamSegmentSize"),
        ({"timeToLiveMillis": 5}, "timeToLiveMillis"),
        ({"strategyOnFull": 7}, "strategyOnFull"),
        ({"strategyOnFull": None}, "strategyOnFull"),
        ({"persistence": 2}, "persistence"),
        ({"flushOnWrite": "yes"}, "flushOnWrite"),
    ],
)
def test_invalid_definitions_name_the_field(change: dict, field: str) -> None:
    raw = MessageStreamDefinition(name="s", strategy_on_full=StrategyOnFull.RejectNewData).as_dict()
    raw.update(change)
    with pytest.raises(DefinitionError, match=field):
        parse_definition(raw)


def test_s3_task_from_the_sdk_json() -> None:
    task = S3ExportTaskDefinition(
        input_url="file:///tmp/a b.bin",
        bucket="my-bucket",
        key="k/!{timestamp:yyyy}/x",
        user_metadata={"a": "1"},
    )
    parsed = parse_s3_task(
        __import__("json").loads(Util.validate_and_serialize_to_json_bytes(task))
    )
    assert (parsed.path, parsed.bucket, parsed.key) == (
        "/tmp/a b.bin",
        "my-bucket",
        "k/!{timestamp:yyyy}/x",
    )
    assert parsed.user_metadata == {"a": "1"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"inputUrl": "http://x/y"}, "inputUrl"),
        ({"inputUrl": "file://relative"}, "inputUrl"),
        ({"bucket": "Bad_Bucket"}, "bucket"),
        ({"key": "a{b"}, "key"),
    ],
)
def test_invalid_s3_tasks_name_the_field(change: dict, field: str) -> None:
    raw = {"inputUrl": "file:///tmp/x", "bucket": "bucket", "key": "key"}
    raw.update(change)
    with pytest.raises(DefinitionError, match=field):
        parse_s3_task(raw)


def test_status_messages_deserialize_with_the_sdk_util() -> None:
    task = {"inputUrl": "file:///tmp/x", "bucket": "bucket", "key": "key"}
    payload = status_message(0, 2, "done", "stream", "s3", 4, task)
    status = Util.deserialize_json_bytes_to_obj(payload, StatusMessage)
    assert status.status.name == "Success" and status.status_level == StatusLevel.INFO
    assert status.status_context.sequence_number == 4
    assert status.status_context.s3_export_task_definition.bucket == "bucket"


def test_message_stream_info_reads_our_describe_shape() -> None:
    info = MessageStreamInfo.from_dict(
        {
            "definition": parse_definition(full_definition().as_dict()).as_wire(),
            "storageStatus": {
                "oldestSequenceNumber": 0,
                "newestSequenceNumber": 4,
                "totalBytes": 9,
            },
            "exportStatuses": [{"exportConfigIdentifier": "s3", "lastExportedSequenceNumber": 2}],
        }
    )
    assert info.storage_status.total_bytes == 9
    assert info.export_statuses[0].last_exported_sequence_number == 2


def test_kinesis_exports_are_parsed_with_their_defaults() -> None:
    sdk = MessageStreamDefinition(
        name="s",
        strategy_on_full=StrategyOnFull.RejectNewData,
        export_definition=ExportDefinition(
            kinesis=[
                KinesisConfig(identifier="k1", kinesis_stream_name="ks"),
                KinesisConfig(
                    identifier="k2",
                    kinesis_stream_name="ks",
                    batch_size=10,
                    batch_interval_millis=60000,
                    start_sequence_number=5,
                    disabled=True,
                ),
            ]
        ),
    )
    ours = parse_definition(sdk.as_dict())
    first, second = ours.kinesis_exports
    assert (first.batch_size, first.batch_interval_millis, first.start_sequence_number) == (
        500,
        None,
        0,
    )
    assert (second.batch_size, second.start_sequence_number, second.disabled) == (10, 5, True)
    back = MessageStreamDefinition.from_dict(ours.as_wire())
    assert back.export_definition.as_dict() == sdk.export_definition.as_dict()


def test_export_identifiers_are_unique_across_kinds() -> None:
    raw = MessageStreamDefinition(
        name="s",
        strategy_on_full=StrategyOnFull.RejectNewData,
        export_definition=ExportDefinition(
            kinesis=[KinesisConfig(identifier="same", kinesis_stream_name="ks")],
            s3_task_executor=[S3ExportTaskExecutorConfig(identifier="same")],
        ),
    ).as_dict()
    with pytest.raises(DefinitionError, match="unique"):
        parse_definition(raw)
