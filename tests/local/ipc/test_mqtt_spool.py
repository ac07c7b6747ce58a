"""The IoT Core bridge's disk spool (issue 12, item 2): durable, ordered, bounded, counted.

Crash consistency is tested on the files a crash can leave: a truncated or damaged
last record is ignored (and counted), never fatal; a torn ack file is read up to its
last whole entry. The bound and the drops follow the nucleus' ``Spool``: payload bytes
against ``maxSizeInBytes``, oldest QoS 0 dropped first, QoS 1 refused, never dropped.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from edgekit.local.ipc.mqtt_spool import (
    DEFAULT_MAX_BYTES,
    DISK,
    MEMORY,
    MqttSpool,
    SpoolerConfig,
    SpoolError,
    SpoolFullError,
)


def _topics(spool: MqttSpool) -> list[str]:
    return [m.topic for m in spool.pending()]


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.log"))


def test_unacknowledged_messages_survive_a_reopen_in_order(tmp_path: Path) -> None:
    spool = MqttSpool(tmp_path)
    sent = [spool.append(f"r/{i}", f"p{i}".encode(), 1) for i in range(5)]
    spool.ack(sent[1].seq)
    spool.ack(sent[3].seq)
    # no close(): a kill -9 does not close anything either
    again = MqttSpool(tmp_path)
    assert _topics(again) == ["r/0", "r/2", "r/4"]
    assert [m.payload for m in again.pending()] == [b"p0", b"p2", b"p4"]
    assert again.stats()["replayed"] == 3 and again.stats()["corrupt"] == 0
    later = again.append("r/5", b"p5", 1)
    assert later.seq > sent[-1].seq  # numbering goes on: new messages sort after the old ones
    assert _topics(MqttSpool(tmp_path)) == ["r/0", "r/2", "r/4", "r/5"]


def test_retain_and_qos_and_binary_payloads_round_trip(tmp_path: Path) -> None:
    spool = MqttSpool(tmp_path)
    spool.append("a/ü", bytes(range(256)), 1, retain=True)
    [m] = MqttSpool(tmp_path).pending()
    assert (m.topic, m.payload, m.qos, m.retain) == ("a/ü", bytes(range(256)), 1, True)


@pytest.mark.parametrize("cut", [1, 5, 11, 20])
def test_a_truncated_last_record_is_ignored_not_fatal(tmp_path: Path, cut: int) -> None:
    spool = MqttSpool(tmp_path)
    for i in range(3):
        spool.append(f"r/{i}", b"x" * 10, 1)
    [segment] = _segments(tmp_path)
    data = segment.read_bytes()
    segment.write_bytes(data[:-cut])  # the crash hit while the last record was written
    again = MqttSpool(tmp_path)
    assert _topics(again) == ["r/0", "r/1"]
    assert again.stats()["corrupt"] == 1
    again.append("r/3", b"y", 1)  # written to a new segment, never after the damaged tail
    assert _topics(MqttSpool(tmp_path)) == ["r/0", "r/1", "r/3"]


def test_a_damaged_record_ends_its_segment(tmp_path: Path) -> None:
    spool = MqttSpool(tmp_path)
    for i in range(3):
        spool.append(f"r/{i}", b"abcdefgh", 1)
    [segment] = _segments(tmp_path)
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped bit in the second record: its crc fails
    segment.write_bytes(bytes(data))
    again = MqttSpool(tmp_path)
    assert _topics(again) == ["r/0"]
    assert again.stats()["corrupt"] == 1


def test_a_torn_ack_file_is_read_up_to_its_last_whole_entry(tmp_path: Path) -> None:
    spool = MqttSpool(tmp_path)
    first, second, _ = (spool.append(f"r/{i}", b"x", 1) for i in range(3))
    spool.ack(first.seq)
    spool.ack(second.seq)
    [acks] = sorted(tmp_path.glob("*.acks"))
    acks.write_bytes(acks.read_bytes()[:-3])  # the second ack was cut short
    # the second message comes back: a duplicate on the wire, which QoS 1 allows
    assert _topics(MqttSpool(tmp_path)) == ["r/1", "r/2"]


def test_garbage_files_do_not_stop_the_spool(tmp_path: Path) -> None:
    (tmp_path / "notes.log").write_text("not a segment")
    (tmp_path / "00000000000000ff.log").write_bytes(b"\x00" * 7)
    spool = MqttSpool(tmp_path)
    assert len(spool) == 0 and spool.stats()["corrupt"] == 1
    spool.append("r/1", b"x", 1)
    assert _topics(MqttSpool(tmp_path)) == ["r/1"]


def test_acknowledged_segments_are_deleted(tmp_path: Path) -> None:
    spool = MqttSpool(tmp_path, segment_bytes=64)
    sent = [spool.append(f"r/{i}", b"x" * 40, 1) for i in range(6)]
    assert len(_segments(tmp_path)) >= 3
    for m in sent[:-1]:
        spool.ack(m.seq)
    assert len(_segments(tmp_path)) == 1  # only the one still holding r/5
    spool.ack(sent[-1].seq)
    spool.close()
    assert _segments(tmp_path) == [] and list(tmp_path.glob("*.acks")) == []
    assert len(MqttSpool(tmp_path)) == 0


def test_the_bound_is_in_payload_bytes_and_a_refusal_names_it(tmp_path: Path) -> None:
    spool = MqttSpool(tmp_path, max_bytes=100)
    spool.append("r/a", b"x" * 60, 1)
    with pytest.raises(SpoolFullError) as full:
        spool.append("r/b", b"y" * 50, 1)
    assert "full: 60 of 100 bytes" in str(full.value)
    assert "mqtt.spooler.maxSizeInBytes" in str(full.value)
    with pytest.raises(SpoolFullError, match="larger than the whole IoT Core spool.*100 bytes"):
        spool.append("r/c", b"z" * 101, 1)
    assert spool.stats()["refused_full"] == 2
    spool.append("r/d", b"w" * 40, 1)  # exactly full is fine
    assert spool.stats()["queued_bytes"] == 100
    assert _topics(MqttSpool(tmp_path, max_bytes=100)) == ["r/a", "r/d"]


def test_the_oldest_qos0_messages_are_dropped_first_and_counted(tmp_path: Path) -> None:
    spool = MqttSpool(tmp_path, max_bytes=100)
    spool.append("q0/old", b"a" * 30, 0, durable=False)
    spool.append("q1/keep", b"b" * 30, 1)
    spool.append("q0/new", b"c" * 30, 0, durable=False)
    spool.append("q1/in", b"d" * 30, 1)  # 120 > 100: the oldest QoS 0 message makes room
    assert _topics(spool) == ["q1/keep", "q0/new", "q1/in"]
    assert spool.stats()["dropped_qos0"] == 1
    with pytest.raises(SpoolFullError):  # dropping q0/new is not enough for 50 more bytes
        spool.append("q1/big", b"e" * 50, 1)
    assert _topics(spool) == ["q1/keep", "q1/in"]  # QoS 1 messages are never dropped for room
    # QoS 0 messages are kept in memory only
    assert _topics(MqttSpool(tmp_path, max_bytes=100)) == ["q1/keep", "q1/in"]


def test_a_spool_over_its_bound_after_a_restart_keeps_everything(tmp_path: Path) -> None:
    spool = MqttSpool(tmp_path, max_bytes=1000)
    for i in range(5):
        spool.append(f"r/{i}", b"x" * 100, 1)
    smaller = MqttSpool(tmp_path, max_bytes=200)  # maxSizeInBytes was lowered meanwhile
    assert len(smaller) == 5
    with pytest.raises(SpoolFullError):
        smaller.append("r/new", b"y", 1)


def test_memory_spool_and_closed_spool(tmp_path: Path) -> None:
    memory = MqttSpool(None, max_bytes=10)
    assert memory.storage_type == MEMORY and memory.stats()["storage"] == MEMORY
    memory.append("r/1", b"x", 1)
    assert len(memory) == 1
    disk = MqttSpool(tmp_path)
    assert disk.storage_type == DISK
    disk.close()
    with pytest.raises(SpoolError, match="closed"):
        disk.append("r/1", b"x", 1)


def test_concurrent_appends_all_reach_the_disk(tmp_path: Path) -> None:
    spool = MqttSpool(tmp_path, segment_bytes=4096)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(50):
                spool.append(f"w{n}/{i}", b"x" * 32, 1)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    again = MqttSpool(tmp_path)
    assert len(again) == 200
    seqs = [m.seq for m in again.pending()]
    assert seqs == sorted(seqs)
    for n in range(4):  # each writer's messages stay in its order
        mine = [m.topic for m in again.pending() if m.topic.startswith(f"w{n}/")]
        assert mine == [f"w{n}/{i}" for i in range(50)]


def test_an_unwritable_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    from edgekit.errors import LocalBackendError

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(
        LocalBackendError, match=r"cannot open the IoT Core message spool in .*file"
    ):
        MqttSpool(blocker / "spool")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, SpoolerConfig()),
        ({}, SpoolerConfig()),
        (
            {"maxSizeInBytes": 1000, "storageType": "Memory", "keepQos0WhenOffline": True},
            SpoolerConfig(max_bytes=1000, storage_type=MEMORY, keep_qos0_when_offline=True),
        ),
        (
            {"storageType": "disk", "keepQos0WhenOffline": "true"},
            SpoolerConfig(storage_type=DISK, keep_qos0_when_offline=True),
        ),
        ({"maxSizeInBytes": "2048"}, SpoolerConfig(max_bytes=2048)),
        ({"maxSizeInBytes": -1}, SpoolerConfig()),
        ({"maxSizeInBytes": "lots"}, SpoolerConfig()),
        ({"storageType": "Tape"}, SpoolerConfig()),
        ({"pluginName": "my.Spooler"}, SpoolerConfig(plugin_name="my.Spooler")),
        ("Disk", SpoolerConfig()),
    ],
)
def test_spooler_configuration(value: Any, expected: SpoolerConfig) -> None:
    assert SpoolerConfig.from_config(value) == expected
    assert SpoolerConfig().max_bytes == DEFAULT_MAX_BYTES == 2_621_440


def test_a_failed_write_is_an_error_and_later_records_stay_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk tears one record: the publish fails naming the folder, and the next
    record goes to a new segment, so nothing written later hides behind the torn one."""
    import errno
    import os

    from edgekit.local.ipc import mqtt_spool

    spool = MqttSpool(tmp_path)
    spool.append("r/0", b"a" * 20, 1)
    real_write = os.write

    def half_then_full(fd: int, data: Any) -> int:
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mqtt_spool.os, "write", half_then_full)
    with pytest.raises(SpoolError, match=rf"cannot write the IoT Core spool in {tmp_path}.*r/1"):
        spool.append("r/1", b"b" * 20, 1)
    monkeypatch.setattr(mqtt_spool.os, "write", real_write)
    spool.append("r/2", b"c" * 20, 1)
    again = MqttSpool(tmp_path)
    assert [m.topic for m in again.pending()] == ["r/0", "r/2"]
    assert again.stats()["corrupt"] == 1
