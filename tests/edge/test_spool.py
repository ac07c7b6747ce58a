"""The on-device result spool: order, idempotent ids, bounds, restarts."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from edgekit.edge.spool import Spool, SpoolError
from edgekit.errors import ConfigurationError


def test_delivers_in_append_order_and_deletes(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db") as spool:
        for i in range(5):
            assert spool.append("t", f"m{i}".encode(), f"id-{i}")
        assert spool.pending == 5
        assert [m.message_id for m in spool.peek(10)] == [f"id-{i}" for i in range(5)]
        first = spool.peek()[0]
        spool.delete(first)
        spool.delete(first)  # twice is harmless
        assert [m.payload for m in spool.peek(10)] == [b"m1", b"m2", b"m3", b"m4"]
        assert spool.pending == 4 and spool.pending_bytes == 8


def test_same_message_id_is_spooled_once(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db") as spool:
        assert spool.append("t", b"a", "dup")
        assert not spool.append("t", b"b", "dup")
        assert [(m.message_id, m.payload) for m in spool.peek(5)] == [("dup", b"a")]
        assert spool.pending == 1


def test_full_spool_drops_oldest_and_counts(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db", max_messages=3) as spool:
        for i in range(5):
            spool.append("t", b"x", f"id-{i}")
        assert [m.message_id for m in spool.peek(10)] == ["id-2", "id-3", "id-4"]
        assert spool.dropped == 2
    with Spool(tmp_path / "b.db", max_bytes=10) as spool:
        for i in range(4):
            spool.append("t", b"abcd", f"id-{i}")  # 4 bytes each: only two fit
        assert [m.message_id for m in spool.peek(10)] == ["id-2", "id-3"]
        assert spool.dropped == 2
        with pytest.raises(SpoolError, match="SpoolMaxBytes"):
            spool.append("t", b"x" * 11, "too-big")


def test_survives_restart_with_sequence_and_drops(tmp_path: Path) -> None:
    path = tmp_path / "spool" / "s.db"
    spool = Spool(path, max_messages=2)
    spool_id = spool.spool_id
    assert spool.last_sequence == -1
    taken = [spool.append_next("topic/a", lambda n: (f"p{n}".encode(), f"id-{n}")) for _ in "abc"]
    assert taken == [0, 1, 2]
    spool.close()
    again = Spool(path, max_messages=2)
    try:
        assert again.spool_id == spool_id
        assert again.last_sequence == 2
        assert again.append_next("topic/a", lambda n: (b"p3", f"id-{n}")) == 3
        assert again.pending == 2 and again.dropped == 2
        assert [(m.topic, m.payload) for m in again.peek(5)] == [
            ("topic/a", b"p2"),
            ("topic/a", b"p3"),
        ]
    finally:
        again.close()


def test_a_sequence_is_used_only_if_its_message_is_spooled(tmp_path: Path) -> None:
    """A failure while building or storing the message gives the sequence back: receivers
    never see a gap that is not a lost result."""
    with Spool(tmp_path / "s.db", max_bytes=10) as spool:

        def broken(n: int) -> tuple[bytes, str]:
            raise RuntimeError("camera unplugged")

        with pytest.raises(RuntimeError):
            spool.append_next("t", broken)
        with pytest.raises(SpoolError, match="SpoolMaxBytes"):
            spool.append_next("t", lambda n: (b"x" * 11, f"id-{n}"))
        assert spool.last_sequence == -1 and spool.pending == 0
        assert spool.append_next("t", lambda n: (b"ok", f"id-{n}")) == 0
        with pytest.raises(SpoolError, match="already spooled"):
            spool.append_next("t", lambda n: (b"ok", "id-0"))
        assert spool.last_sequence == 0 and spool.pending == 1


def test_wait_wakes_on_append(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db") as spool:
        assert not spool.wait(0.01)
        got: list[bool] = []
        waiter = threading.Thread(target=lambda: got.append(spool.wait(5.0)))
        waiter.start()
        spool.append("t", b"x", "a")
        waiter.join(5.0)
        assert got == [True]


def test_bad_limits_and_unwritable_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="max_messages"):
        Spool(tmp_path / "s.db", max_messages=0)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SpoolError, match="cannot open the result spool"):
        Spool(blocker / "s.db")
