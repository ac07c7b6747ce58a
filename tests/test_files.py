"""edgekit.files: atomic writes (whole bytes or chunks, with a file mode), folder fsync, locks."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from edgekit.files import fsync_dir, held_lock, write_bytes_atomic


def test_chunks_are_written_in_order_with_the_given_mode(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "state.bin"
    write_bytes_atomic(target, [b"head\n", b"payload"], mode=0o600)
    assert target.read_bytes() == b"head\npayload"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    write_bytes_atomic(target, b"again")  # replaces, keeps no temporary file
    assert target.read_bytes() == b"again"
    assert sorted(p.name for p in target.parent.iterdir()) == ["state.bin"]


def test_a_write_failing_midway_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.bin"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):  # the second chunk cannot be written
        write_bytes_atomic(target, [b"new", "not bytes"])  # type: ignore[list-item]
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.bin"]
    fsync_dir(tmp_path)  # a real folder: no error


def test_held_lock_is_exclusive_and_times_out_with_the_callers_error(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"

    class Busy(Exception):
        pass

    with held_lock(lock, timeout=5, poll=0.01, timed_out=lambda: Busy("busy")):
        with (
            pytest.raises(Busy, match="busy") as caught,
            held_lock(lock, timeout=0.05, poll=0.01, timed_out=lambda: Busy("busy")),
        ):
            pass
        assert isinstance(caught.value.__cause__, OSError)
    with held_lock(lock, timeout=0.05, poll=0.01, timed_out=lambda: Busy("busy")):
        pass  # released when the first holder left
