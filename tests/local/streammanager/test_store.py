"""Message streams: sequence numbers, strategies on full, segments, TTL, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.local.streammanager import store as store_module
from edgekit.local.streammanager.definitions import (
    OVERWRITE_OLDEST_DATA,
    PERSISTENCE_FILE,
    PERSISTENCE_MEMORY,
    REJECT_NEW_DATA,
    StreamDefinition,
    parse_definition,
)
from edgekit.local.streammanager.protocol import Status
from edgekit.local.streammanager.store import StoreError, StreamStore


def definition(
    name: str = "s",
    *,
    max_size: int = 1 << 20,
    segment: int = 1 << 16,
    strategy: int = REJECT_NEW_DATA,
    persistence: int = PERSISTENCE_FILE,
    ttl: int | None = None,
) -> StreamDefinition:
    return StreamDefinition(name, max_size, segment, ttl, strategy, persistence, False)


def payloads(store: StreamStore, name: str = "s", start: int = 0) -> list[bytes]:
    return [m["payload"] for m in store.read(name, start, 0, 1 << 20)]


@pytest.mark.parametrize("persistence", [PERSISTENCE_FILE, PERSISTENCE_MEMORY])
def test_append_and_read_with_sequence_numbers(tmp_path: Path, persistence: int) -> None:
    store = StreamStore(tmp_path)
    store.create(definition(persistence=persistence))
    assert [store.append("s", f"m{i}".encode()) for i in range(5)] == [0, 1, 2, 3, 4]
    messages = store.read("s", 2, 2, 2)
    assert [(m["sequenceNumber"], m["payload"]) for m in messages] == [(2, b"m2"), (3, b"m3")]
    assert all(m["streamName"] == "s" and m["ingestTime"] > 0 for m in messages)
    with pytest.raises(StoreError) as info:
        store.read("s", 4, 2, 5)
    assert info.value.status == Status.NotEnoughMessages
    assert store.describe("s")["storageStatus"] == {
        "oldestSequenceNumber": 0,
        "newestSequenceNumber": 4,
        "totalBytes": 10,
    }


def test_names_errors_and_delete(tmp_path: Path) -> None:
    store = StreamStore(tmp_path)
    store.create(definition("b"))
    store.create(definition("a", persistence=PERSISTENCE_MEMORY))
    assert store.names() == ["a", "b"]
    with pytest.raises(StoreError) as info:
        store.create(definition("a"))
    assert info.value.status == Status.InvalidRequest
    for call in (lambda: store.append("x", b"1"), lambda: store.delete("x")):
        with pytest.raises(StoreError) as info:
            call()
        assert info.value.status == Status.ResourceNotFound
    folder = store.streams["b"].folder
    assert folder is not None and folder.is_dir()
    store.delete("b")
    assert not folder.exists() and store.names() == ["a"]


def test_reject_new_data_when_full(tmp_path: Path) -> None:
    store = StreamStore(tmp_path)
    store.create(definition(max_size=2048, segment=1024))
    store.append("s", b"x" * 1500)
    with pytest.raises(StoreError, match="full.*RejectNewData") as info:
        store.append("s", b"y" * 600)
    assert info.value.status == Status.InvalidRequest
    assert payloads(store) == [b"x" * 1500]


def test_overwrite_oldest_data_drops_whole_segments(tmp_path: Path) -> None:
    store = StreamStore(tmp_path)
    store.create(definition(max_size=2048, segment=1024, strategy=OVERWRITE_OLDEST_DATA))
    for i in range(4):  # 500 bytes each: two per 1 KiB segment
        store.append("s", bytes([i]) * 500)
    store.append("s", b"\x09" * 500)  # 2500 > 2048: the first segment (0, 1) goes
    status = store.describe("s")["storageStatus"]
    assert status == {"oldestSequenceNumber": 2, "newestSequenceNumber": 4, "totalBytes": 1500}
    assert [m["sequenceNumber"] for m in store.read("s", 0, 1, 10)] == [2, 3, 4]  # from oldest


def test_a_message_larger_than_the_stream_is_refused(tmp_path: Path) -> None:
    store = StreamStore(tmp_path)
    store.create(definition(max_size=1024, strategy=OVERWRITE_OLDEST_DATA))
    with pytest.raises(StoreError, match="larger than the maxSize"):
        store.append("s", b"z" * 2000)


def test_file_streams_survive_a_restart_and_memory_streams_do_not(tmp_path: Path) -> None:
    store = StreamStore(tmp_path)
    exports = {"s3TaskExecutor": [{"identifier": "s3"}, {"identifier": "not-started"}]}
    store.create(
        parse_definition(
            {
                "name": "file",
                "streamSegmentSize": 1024,
                "maxSize": 4096,
                "strategyOnFull": OVERWRITE_OLDEST_DATA,
                "exportDefinition": exports,
            }
        )
    )
    store.create(definition("mem", persistence=PERSISTENCE_MEMORY))
    for i in range(12):
        store.append("file", bytes([i]) * 300)
    store.append("mem", b"gone")
    store.streams["file"].progress["s3"] = {"lastExportedSequenceNumber": 3}
    store.streams["file"].save_progress()
    before = store.describe("file")
    store.close()

    again = StreamStore(tmp_path)
    assert again.names() == ["file"]
    after = again.describe("file")
    assert after["storageStatus"] == before["storageStatus"]
    assert after["definition"] == before["definition"]
    zero = {"exportedBytesFromStream": 0, "exportedMessagesCount": 0}
    assert after["exportStatuses"] == [  # every configured export, started or not
        {"exportConfigIdentifier": "s3", **zero, "lastExportedSequenceNumber": 3},
        {"exportConfigIdentifier": "not-started", **zero},
    ]
    assert payloads(again, "file") == payloads(store, "file")
    assert again.append("file", b"next") == 12  # numbering goes on, never reused


def test_sequence_numbers_continue_after_all_segments_were_dropped(tmp_path: Path) -> None:
    store = StreamStore(tmp_path)
    store.create(definition(max_size=1024, segment=1024, strategy=OVERWRITE_OLDEST_DATA))
    store.append("s", b"a" * 1000)
    store.append("s", b"b" * 1000)  # drops the only segment
    store.close()
    again = StreamStore(tmp_path)
    assert again.append("s", b"c" * 10) == 2


def test_a_torn_record_at_the_end_is_cut_off(tmp_path: Path) -> None:
    store = StreamStore(tmp_path)
    store.create(definition())
    store.append("s", b"first")
    store.append("s", b"second")
    segment = store.streams["s"].segments[0].path
    store.close()
    assert segment is not None
    data = segment.read_bytes()
    segment.write_bytes(data[:-3])  # a crash in the middle of the second record
    again = StreamStore(tmp_path)
    assert payloads(again) == [b"first"]
    assert again.append("s", b"again") == 1
    assert payloads(StreamStore(tmp_path)) == [b"first", b"again"]


def test_a_corrupt_record_ends_the_segment(tmp_path: Path) -> None:
    store = StreamStore(tmp_path)
    store.create(definition())
    for p in (b"one", b"two", b"three"):
        store.append("s", p)
    segment = store.streams["s"].segments[0].path
    store.close()
    assert segment is not None
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF
    segment.write_bytes(bytes(data))
    assert payloads(StreamStore(tmp_path)) == [b"one"]


def test_an_unreadable_definition_skips_the_stream(tmp_path: Path) -> None:
    store = StreamStore(tmp_path)
    store.create(definition("ok"))
    store.create(definition("broken"))
    folder = store.streams["broken"].folder
    assert folder is not None
    (folder / "definition.json").write_text("{not json")
    assert StreamStore(tmp_path).names() == ["ok"]


def test_a_missing_segment_file_is_a_message_store_read_error(tmp_path: Path) -> None:
    store = StreamStore(tmp_path)
    store.create(definition())
    store.append("s", b"x")
    path = store.streams["s"].segments[0].path
    store.streams["s"].segments[0].close()
    assert path is not None
    path.unlink()
    with pytest.raises(StoreError) as info:
        store.read("s", 0, 1, 1)
    assert info.value.status == Status.MessageStoreReadError


def test_time_to_live_drops_expired_segments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1_000_000]
    monkeypatch.setattr(store_module, "now_ms", lambda: clock[0])
    store = StreamStore(tmp_path)
    store.create(definition(segment=1024, ttl=60_000))
    store.append("s", b"a" * 1000)  # segment 1
    clock[0] += 30_000
    store.append("s", b"b" * 1000)  # segment 2
    clock[0] += 40_000  # the first segment is 70 s old, the second 40 s
    assert [m["payload"][:1] for m in store.read("s", 0, 1, 10)] == [b"b"]
    clock[0] += 30_000
    store.expire_all()
    assert store.describe("s")["storageStatus"]["totalBytes"] == 0


def test_update_keeps_messages_and_refuses_a_persistence_change(tmp_path: Path) -> None:
    store = StreamStore(tmp_path)
    store.create(definition())
    store.append("s", b"kept")
    store.update(definition(max_size=4096, strategy=OVERWRITE_OLDEST_DATA))
    assert store.describe("s")["definition"]["maxSize"] == 4096
    assert payloads(store) == [b"kept"]
    with pytest.raises(StoreError) as info:
        store.update(definition(persistence=PERSISTENCE_MEMORY))
    assert info.value.status == Status.UpdateNotAllowed
    assert StreamStore(tmp_path).describe("s")["definition"]["strategyOnFull"] == 1


def test_on_append_is_called(tmp_path: Path) -> None:
    seen: list[str] = []
    store = StreamStore(tmp_path, on_append=seen.append)
    store.create(definition(persistence=PERSISTENCE_MEMORY))
    store.append("s", b"1")
    assert seen == ["s"]


def test_a_read_carries_at_most_max_bytes_of_payload(tmp_path: Path) -> None:
    store = StreamStore(tmp_path)
    store.create(definition(persistence=PERSISTENCE_MEMORY))
    for i in range(4):
        store.append("s", bytes([i]) * 100)
    assert len(store.read("s", 0, 1, 10, max_bytes=250)) == 2
    assert len(store.read("s", 0, 1, 10, max_bytes=50)) == 1  # the first message always
    with pytest.raises(StoreError) as info:
        store.read("s", 0, 3, 10, max_bytes=250)
    assert info.value.status == Status.ResponsePayloadTooLarge
