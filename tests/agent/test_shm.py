"""SegmentCache against hostile segments: INVALID_ARGUMENT, never a fault or a hang."""

from __future__ import annotations

import os
import secrets
from multiprocessing import shared_memory
from pathlib import Path
from types import SimpleNamespace

import pytest

from edgekit.agent.shm import MAX_SEGMENT_READ, SegmentCache
from edgekit.agent.status import AgentStatusError


def _handle(name: str, size: int, offset: int = 0) -> SimpleNamespace:
    return SimpleNamespace(segment_name=name, size=size, offset=offset, segment_id=0)


def _refused(cache: SegmentCache, handle: SimpleNamespace) -> str:
    with pytest.raises(AgentStatusError) as info:
        cache.read(handle, what="input 'x'")
    assert info.value.code == "INVALID_ARGUMENT"
    return info.value.details


@pytest.fixture()
def segment():
    seg = shared_memory.SharedMemory(create=True, size=4096)
    seg.buf[:4] = b"abcd"
    yield seg
    seg.close()
    seg.unlink()


def test_reads_are_private_copies_checked_on_every_use(segment) -> None:
    cache = SegmentCache()
    name = segment.name.lstrip("/")
    data = cache.read(_handle(name, 4), what="input 'x'")
    assert bytes(data) == b"abcd" and data.readonly
    segment.buf[:4] = b"wxyz"
    assert bytes(data) == b"abcd"  # a copy: the client cannot change it under the model
    assert bytes(cache.read(_handle(name, 4), what="input 'x'")) == b"wxyz"
    os.ftruncate(segment._fd, 2)  # noqa: SLF001 - a hostile client shrinks it
    details = _refused(cache, _handle(name, 4))
    assert name in details and "0..4" in details and "(2 bytes)" in details
    os.ftruncate(segment._fd, 0)  # noqa: SLF001
    assert "(0 bytes)" in _refused(cache, _handle(name, 4))


def test_range_past_the_end_and_oversized_requests(segment) -> None:
    name = segment.name.lstrip("/")
    assert "4090..4100" in _refused(SegmentCache(), _handle(name, 10, offset=4090))
    assert str(MAX_SEGMENT_READ) in _refused(SegmentCache(), _handle(name, MAX_SEGMENT_READ + 1))


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs /dev/shm")
def test_a_fifo_or_folder_is_refused_without_blocking() -> None:
    name = f"edgekit-fifo-{secrets.token_hex(4)}"
    os.mkfifo(f"/dev/shm/{name}")
    try:
        assert "not a shared memory segment" in _refused(SegmentCache(), _handle(name, 4))
    finally:
        os.unlink(f"/dev/shm/{name}")
    assert "plain name" in _refused(SegmentCache(), _handle("..", 4))
