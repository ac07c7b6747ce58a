"""The broker's durable state (`edgekit.local.mqtt.store`) and its journal file.

Round trips, the byte bound, the directory lock, crash consistency (the last frame
cut at every byte offset, a damaged middle, a real kill -9), compaction, group
commit and a throughput sanity run (counts only, no timing).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgekit.errors import LocalBackendError
from edgekit.local.mqtt import journal as journal_module
from edgekit.local.mqtt.journal import FRAME
from edgekit.local.mqtt.store import (
    JOURNAL,
    MAGIC,
    DurableStore,
    StoredMessage,
    StoredSession,
    StoredState,
    StoredSubscription,
)

FOREVER = 0xFFFF_FFFF


def _msg(n: int, topic: str = "results/a", **kw: object) -> StoredMessage:
    return StoredMessage(topic, f"payload-{n}".encode(), 1, **kw)  # type: ignore[arg-type]


def _summary(state: StoredState) -> dict[str, object]:
    """The state without store ids (compare what a reopened store holds)."""
    return {
        "sessions": {
            cid: (
                s.session,
                s.subscriptions,
                [(m.topic, m.payload, m.qos, m.retain, dict(m.properties)) for m in s.messages],
            )
            for cid, s in state.sessions.items()
        },
        "retained": {t: (m.payload, m.qos) for t, m in state.retained.items()},
    }


def _reopen(directory: Path, **kw: int) -> StoredState:
    with DurableStore.open(directory, **kw) as store:
        return store.load()


def _frames(path: Path) -> list[tuple[int, int]]:
    """(start, end) of every frame in a journal file."""
    data = path.read_bytes()
    pos, out = len(MAGIC), []
    while pos < len(data):
        length, _ = FRAME.unpack_from(data, pos)
        out.append((pos, pos + FRAME.size + length))
        pos += FRAME.size + length
    return out


# ---------------------------------------------------------------- round trips
def test_everything_round_trips_through_a_reopen(tmp_path: Path) -> None:
    props = {
        "payload_format_indicator": 1,
        "content_type": "application/json",
        "response_topic": "reply/x",
        "correlation_data": b"\x00\xffid",
        "user_property": [("k", "v"), ("k", "w")],
    }
    with DurableStore.open(tmp_path) as store:
        store.save_session(StoredSession("dev-1", 5, 3600, None))
        store.save_session(StoredSession("dev-2", 4, FOREVER, None))
        store.subscribe("dev-1", StoredSubscription("results/#", 1, True, True, 2, 7))
        store.subscribe("dev-1", StoredSubscription("other/+", 0))
        store.unsubscribe("dev-1", "other/+")
        store.subscribe("dev-2", StoredSubscription("results/a", 1))
        first = store.enqueue("dev-1", _msg(1, properties=props, expires_at=1.5e9))
        second = store.enqueue("dev-1", _msg(2, subscription_ids=(7, 9), retain=True))
        store.enqueue("dev-2", _msg(3))
        store.remove("dev-1", first)  # type: ignore[arg-type]
        store.retain(StoredMessage("cfg/a", b"old", 1, True))
        store.retain(StoredMessage("cfg/a", b"new", 0, True))
        store.retain(StoredMessage("cfg/b", b"gone", 1, True))
        store.clear_retained("cfg/b")
        store.save_session(StoredSession("dev-1", 5, 3600, 1234.5))  # disconnected
        before = store.load()
        store.commit()
    after = _reopen(tmp_path)
    assert _summary(after) == _summary(before)
    dev1 = after.sessions["dev-1"]
    assert dev1.session == StoredSession("dev-1", 5, 3600, 1234.5)
    assert dev1.subscriptions == {"results/#": StoredSubscription("results/#", 1, True, True, 2, 7)}
    [message] = dev1.messages
    assert message.store_id == second
    assert (message.subscription_ids, message.retain) == ((7, 9), True)
    assert set(after.retained) == {"cfg/a"}
    assert after.retained["cfg/a"].payload == b"new"


def test_properties_keep_their_types(tmp_path: Path) -> None:
    props = {"correlation_data": b"\x01\x02", "user_property": [("a", "b")], "content_type": "x"}
    with DurableStore.open(tmp_path) as store:
        store.save_session(StoredSession("c", 5, 60))
        store.enqueue("c", _msg(1, properties=props, expires_at=99.25))
    [message] = _reopen(tmp_path).sessions["c"].messages
    assert message.properties == props
    assert message.expires_at == 99.25


def test_load_is_in_enqueue_order_and_store_ids_only_grow(tmp_path: Path) -> None:
    with DurableStore.open(tmp_path, compact_min_bytes=0, compact_ratio=1.0) as store:
        store.save_session(StoredSession("c", 4, FOREVER))
        ids = [store.enqueue("c", _msg(n)) for n in range(50)]
        assert ids == sorted(ids)
        for store_id in ids[25:]:  # the newest go: a compaction forgets their ids
            store.remove("c", store_id)  # type: ignore[arg-type]
        store.commit()
    with DurableStore.open(tmp_path) as store:
        assert [m.payload for m in store.load().sessions["c"].messages] == [
            f"payload-{n}".encode() for n in range(25)
        ]
        assert store.enqueue("c", _msg(99)) > ids[-1]  # type: ignore[operator]


def test_ending_a_session_forgets_its_subscriptions_and_messages(tmp_path: Path) -> None:
    with DurableStore.open(tmp_path) as store:
        store.save_session(StoredSession("c", 4, FOREVER))
        store.subscribe("c", StoredSubscription("t", 1))
        store.enqueue("c", _msg(1))
        store.end_session("c")
        assert store.message_bytes == 0
        store.save_session(StoredSession("c", 4, FOREVER))  # a new session, empty
    state = _reopen(tmp_path)
    assert state.sessions["c"].subscriptions == {}
    assert state.sessions["c"].messages == []


def test_a_message_for_an_unknown_session_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with (
        DurableStore.open(tmp_path) as store,
        pytest.raises(LocalBackendError, match="save_session"),
    ):
        store.enqueue("nobody", _msg(1))


def test_one_directory_serves_one_broker_at_a_time(tmp_path: Path) -> None:
    with DurableStore.open(tmp_path):
        with pytest.raises(LocalBackendError, match="another MQTT broker uses") as info:
            DurableStore.open(tmp_path)
        assert str(tmp_path) in str(info.value)
    DurableStore.open(tmp_path).close()  # released on close


# ---------------------------------------------------------------- the byte bound
def test_queued_and_retained_messages_are_bounded_in_bytes(tmp_path: Path) -> None:
    with DurableStore.open(tmp_path, max_bytes=2000) as store:
        store.save_session(StoredSession("c", 4, FOREVER))
        ids = []
        while (store_id := store.enqueue("c", StoredMessage("t", b"x" * 300, 1))) is not None:
            ids.append(store_id)
        assert 3 <= len(ids) <= 6
        assert store.refused == 1
        assert store.message_bytes <= 2000
        assert store.retain(StoredMessage("r", b"y" * 300, 1, True)) is False
        assert store.refused == 2
        store.remove("c", ids[0])
        assert store.retain(StoredMessage("r", b"y" * 300, 1, True)) is True
        assert store.retain(StoredMessage("r", b"z" * 300, 1, True)) is True  # replaces
        used = store.message_bytes
        store.commit()
    with DurableStore.open(tmp_path, max_bytes=2000) as store:
        assert store.message_bytes == used  # the same accounting after a restart
        assert store.load().retained["r"].payload == b"z" * 300


# ---------------------------------------------------------------- crash consistency
def _committed_then_last_frame(directory: Path) -> tuple[StoredState, StoredState]:
    """A journal whose last frame adds a message, a subscription and a retained message."""
    with DurableStore.open(directory) as store:
        store.save_session(StoredSession("c", 4, FOREVER))
        store.subscribe("c", StoredSubscription("t/#", 1))
        store.enqueue("c", _msg(1))
        store.commit()
        before = store.load()
        with store.journal.lock:  # one group commit: one frame
            store.enqueue("c", _msg(2))
            store.subscribe("c", StoredSubscription("u", 1))
            store.retain(StoredMessage("r", b"last", 1, True))
        store.commit()
        return before, store.load()


def test_a_last_frame_cut_at_any_byte_is_dropped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "source"
    before, after = _committed_then_last_frame(source)
    data = (source / JOURNAL).read_bytes()
    start, end = _frames(source / JOURNAL)[-1]
    assert end == len(data)
    for cut in range(start, end + 1):
        directory = tmp_path / f"cut-{cut}"
        directory.mkdir()
        (directory / JOURNAL).write_bytes(data[:cut])
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="edgekit.local.mqtt"):
            state = _reopen(directory)
        if cut == end:
            assert _summary(state) == _summary(after)
            continue
        assert _summary(state) == _summary(before), f"cut at byte {cut}"
        if cut > start:
            assert "cut off at byte" in caplog.text
        assert (directory / JOURNAL).stat().st_size == start  # truncated to the good end
        # and the journal keeps working after the truncation
        with DurableStore.open(directory) as store:
            store.enqueue("c", _msg(3))
        assert len(_reopen(directory).sessions["c"].messages) == 2
        shutil.rmtree(directory)


@pytest.mark.parametrize(
    ("damage", "kept"),
    [
        pytest.param(lambda tail: bytes(len(tail)), "before", id="zeros"),
        pytest.param(
            lambda tail: tail[:-1] + bytes([tail[-1] ^ 0xFF]), "before", id="bad-checksum"
        ),
        pytest.param(lambda tail: tail[:9] + bytes(len(tail) - 9), "before", id="zeroed-body"),
        pytest.param(lambda tail: tail + bytes(4096), "after", id="zero-blocks-after-it"),
    ],
)
def test_a_damaged_last_frame_is_dropped(tmp_path: Path, damage: object, kept: str) -> None:
    before, after = _committed_then_last_frame(tmp_path)
    path = tmp_path / JOURNAL
    data = path.read_bytes()
    start, _ = _frames(path)[-1]
    path.write_bytes(data[:start] + damage(data[start:]))  # type: ignore[operator]
    expected = before if kept == "before" else after
    assert _summary(_reopen(tmp_path)) == _summary(expected)
    assert path.stat().st_size == (start if kept == "before" else len(data))


def test_a_damaged_frame_in_the_middle_is_an_error_naming_the_file(tmp_path: Path) -> None:
    _committed_then_last_frame(tmp_path)
    path = tmp_path / JOURNAL
    data = bytearray(path.read_bytes())
    start, end = _frames(path)[0]
    data[end - 1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(LocalBackendError, match="damaged at byte") as info:
        DurableStore.open(tmp_path)
    assert str(path) in str(info.value)
    assert "Move the file aside" in str(info.value)
    with pytest.raises(LocalBackendError, match="damaged at byte"):  # not "another broker":
        DurableStore.open(tmp_path)  # the failed open released its lock, left the file as is


def test_a_file_that_is_not_a_journal_is_refused(tmp_path: Path) -> None:
    (tmp_path / JOURNAL).write_bytes(b"something else entirely\n")
    with pytest.raises(LocalBackendError, match="is not a journal") as info:
        DurableStore.open(tmp_path)
    assert str(tmp_path / JOURNAL) in str(info.value)


def test_a_journal_cut_inside_its_header_starts_empty(tmp_path: Path) -> None:
    (tmp_path / JOURNAL).write_bytes(MAGIC[:5])
    assert _reopen(tmp_path).sessions == {}
    assert (tmp_path / JOURNAL).read_bytes() == MAGIC


_CHILD = textwrap.dedent(
    """
    import sys
    from edgekit.local.mqtt.store import DurableStore, StoredMessage, StoredSession
    store = DurableStore.open(sys.argv[1])
    store.save_session(StoredSession("c", 4, 0xFFFFFFFF))
    n = 0
    while True:
        for _ in range(7):
            store.enqueue("c", StoredMessage("t", str(n).encode(), 1))
            n += 1
        store.commit()
        print(n, flush=True)  # acknowledged: everything below n is durable
    """
)


def test_everything_committed_survives_kill_9(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        acknowledged = 0
        while acknowledged < 300:
            acknowledged = int(child.stdout.readline())
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    payloads = [int(m.payload) for m in _reopen(tmp_path).sessions["c"].messages]
    assert payloads[:acknowledged] == list(range(acknowledged))
    assert payloads == list(range(len(payloads)))  # a prefix, no gaps


# ---------------------------------------------------------------- compaction
def test_compaction_rewrites_the_live_state_when_the_journal_grows(tmp_path: Path) -> None:
    with DurableStore.open(tmp_path, compact_min_bytes=20_000, compact_ratio=2.0) as store:
        store.save_session(StoredSession("c", 4, FOREVER))
        store.subscribe("c", StoredSubscription("t", 1))
        store.retain(StoredMessage("r", b"kept", 1, True))
        keep = []
        for n in range(2000):
            store_id = store.enqueue("c", _msg(n))
            if n % 100 == 0:
                keep.append(n)
            else:
                store.remove("c", store_id)  # type: ignore[arg-type]
            if n % 50 == 0:
                store.commit()
        store.commit()
        assert store.journal.compactions >= 1
        assert store.journal.size <= 20_000 + 2 * store.message_bytes + 10_000
        assert store.journal.size == (tmp_path / JOURNAL).stat().st_size
        before = store.load()
    state = _reopen(tmp_path)
    assert _summary(state) == _summary(before)
    assert [m.payload for m in state.sessions["c"].messages] == [
        f"payload-{n}".encode() for n in keep
    ]
    assert not (tmp_path / "journal.compacting").exists()


def test_a_compaction_cut_short_leaves_the_old_journal(tmp_path: Path) -> None:
    before, after = _committed_then_last_frame(tmp_path)
    (tmp_path / "journal.compacting").write_bytes(MAGIC + b"half a snapshot")
    assert _summary(_reopen(tmp_path)) == _summary(after)
    assert not (tmp_path / "journal.compacting").exists()


def test_a_reopened_journal_much_larger_than_its_data_is_compacted(tmp_path: Path) -> None:
    with DurableStore.open(tmp_path, compact_min_bytes=1 << 30) as store:
        store.save_session(StoredSession("c", 4, FOREVER))
        for n in range(500):
            store.remove("c", store.enqueue("c", _msg(n)))  # type: ignore[arg-type]
    big = (tmp_path / JOURNAL).stat().st_size
    with DurableStore.open(tmp_path, compact_min_bytes=1000) as store:
        store.save_session(StoredSession("c", 4, 60))
        store.commit()
        assert store.journal.compactions == 1
    assert (tmp_path / JOURNAL).stat().st_size < big / 10
    assert _reopen(tmp_path).sessions["c"].session.expiry_interval == 60


# ---------------------------------------------------------------- group commit, async, errors
def test_group_commit_writes_many_changes_per_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real_fsync = os.fsync
    monkeypatch.setattr(journal_module.os, "fsync", lambda fd: calls.append(fd) or real_fsync(fd))
    with DurableStore.open(tmp_path) as store:
        store.save_session(StoredSession("c", 4, FOREVER))
        with store.journal.lock:  # the writer cannot take anything until this is released
            for n in range(1000):
                store.enqueue("c", _msg(n))
        store.commit()
        assert not store.pending
        assert len(calls) <= 4
    assert len(_reopen(tmp_path).sessions["c"].messages) == 1000


def test_when_durable_calls_back_on_the_loop_in_order(tmp_path: Path) -> None:
    async def scenario(store: DurableStore) -> list[object]:
        order: list[object] = []
        store.save_session(StoredSession("c", 4, FOREVER))
        for n in range(20):
            store.enqueue("c", _msg(n))
            store.when_durable(lambda error, n=n: order.append((n, error, store.pending)))
        store.when_durable(lambda error: order.append(("nothing new", error)))
        await store.wait_durable()
        await asyncio.sleep(0)
        return order

    with DurableStore.open(tmp_path) as store:
        order = asyncio.run(scenario(store))
    assert [o[0] for o in order] == [*range(20), "nothing new"]
    assert all(o[1] is None for o in order)


def test_a_write_error_reaches_every_waiter_and_later_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DurableStore.open(tmp_path)
    store.save_session(StoredSession("c", 4, FOREVER))
    store.commit()

    def no_space(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal_module.os, "write", no_space)
    store.enqueue("c", _msg(1))
    with pytest.raises(LocalBackendError, match="No space left") as info:
        store.commit()
    assert str(tmp_path / JOURNAL) in str(info.value)
    with pytest.raises(LocalBackendError, match="No space left"):
        store.enqueue("c", _msg(2))
    monkeypatch.undo()
    store.close()
    assert _reopen(tmp_path).sessions["c"].messages == []


def test_throughput_sanity_many_small_commits(tmp_path: Path) -> None:
    """20,000 messages through enqueue, commit and remove (counts only; benchmarks time it)."""
    with DurableStore.open(tmp_path, compact_min_bytes=200_000) as store:
        store.save_session(StoredSession("c", 4, FOREVER))
        live: list[int] = []
        for n in range(20_000):
            live.append(store.enqueue("c", _msg(n)))  # type: ignore[arg-type]
            if len(live) > 100:
                store.remove("c", live.pop(0))
            if n % 20 == 19:
                store.commit()
        store.commit()
        assert store.journal.compactions >= 1
    messages = _reopen(tmp_path).sessions["c"].messages
    assert [m.payload for m in messages] == [
        f"payload-{n}".encode() for n in range(20_000 - 100, 20_000)
    ]
