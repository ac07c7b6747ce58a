"""Sealed shared memory: segments the agent may map, because nobody can shrink them.

The agent copies POSIX segments with ``pread`` (see :mod:`edgekit.agent.shm`): their
client may ``ftruncate`` them at any time, and a mapping read past a shrunken
segment's end is a SIGBUS that kills the agent. A Linux ``memfd`` sealed with
``F_SEAL_SHRINK`` and ``F_SEAL_GROW`` (then ``F_SEAL_SEAL``, so the seals stay) can
never change size, so the agent maps it and runs the model on the client's bytes
in place, and writes the outputs straight into it: no copy on either side of the
call, for a 1.2 MB input some 0.15 ms.

A memfd has no name another process could open: the client passes its file
descriptor over the agent's fast socket (``SCM_RIGHTS``, :mod:`edgekit.agent.fastpath`)
once per connection, under a key, and names the key in ``segment_name``.
:class:`SealedSegment` is the client's segment; :class:`MappedSegments` the
segments one connection registered with the agent, which refuses a descriptor
that is not a sealed memfd of a sane size.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import stat
from collections.abc import Sequence

from edgekit.agent.shm import MAX_SEGMENT_READ, OUTPUT_ALIGN
from edgekit.agent.status import invalid_argument

SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
MAX_SEGMENTS = 64
"""Segments one connection may register (a client keeps a few: inputs and outputs)."""
MAX_PREPARED = 16
"""Requests one connection's :attr:`MappedSegments.prepared` remembers (a client repeats a few)."""


def available() -> bool:
    """memfd_create and seals exist here (Linux)."""
    return hasattr(os, "memfd_create") and hasattr(fcntl, "F_ADD_SEALS")


class SealedSegment:
    """Client side: a memfd of ``size`` bytes, sealed, mapped read-write; ``fd`` stays open
    to be passed to the agent. Same ``name``/``size``/``buf`` as a POSIX segment."""

    def __init__(self, name: str, size: int) -> None:
        fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, size)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
            self._mmap = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self.name = name
        self.size = size
        self.buf = memoryview(self._mmap)

    def close(self) -> None:
        """Unmap and close (BufferError while a numpy view of ``buf`` is alive)."""
        self.buf.release()
        self._mmap.close()
        os.close(self.fd)

    def unlink(self) -> None:
        """Nothing to unlink: a memfd goes away with its last descriptor and mapping."""


class MappedSegments:
    """Agent side: the sealed segments one fast-socket connection registered, mapped."""

    def __init__(self) -> None:
        self._maps: dict[str, tuple[mmap.mmap, memoryview]] = {}
        self._prepared: dict[bytes, object] = {}

    def prepared(self, body: bytes) -> object | None:
        """What :meth:`prepare` remembered for the serialized request ``body``, if anything."""
        return self._prepared.get(body)

    def prepare(self, body: bytes, value: object) -> None:
        """Remember ``value`` (a request decoded into views of these mappings) for ``body``
        until any segment of the connection is registered again or removed."""
        if len(self._prepared) >= MAX_PREPARED:
            self._prepared.clear()
        self._prepared[body] = value

    def __contains__(self, name: object) -> bool:
        return name in self._maps

    def add(self, name: str, fd: int) -> None:
        """Map ``fd`` under ``name``; INVALID_ARGUMENT unless it is a sealed memfd of at most
        MAX_SEGMENT_READ bytes. The descriptor is closed either way. Forgets every prepared
        request."""
        try:
            what = f"sealed segment {name!r}"
            if not name or len(self._maps) >= MAX_SEGMENTS and name not in self._maps:
                raise invalid_argument(
                    f"{what}: a connection may register at most {MAX_SEGMENTS} segments"
                )
            try:
                seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
                info = os.fstat(fd)
            except OSError:
                raise invalid_argument(f"{what}: the descriptor is not a memfd") from None
            if not stat.S_ISREG(info.st_mode) or seals & SEALS != SEALS:
                raise invalid_argument(
                    f"{what}: the memfd must be sealed against shrinking and growing "
                    "(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)"
                )
            if not 0 < info.st_size <= MAX_SEGMENT_READ:
                raise invalid_argument(
                    f"{what}: {info.st_size} bytes; a segment holds 1 to {MAX_SEGMENT_READ}"
                )
            mapping = mmap.mmap(fd, info.st_size)
        finally:
            os.close(fd)
        self.remove(name)
        self._maps[name] = (mapping, memoryview(mapping))

    def remove(self, name: str) -> None:
        self._prepared.clear()  # they may hold views of the mapping that goes
        old = self._maps.pop(name, None)
        if old is not None:
            old[1].release()
            with contextlib.suppress(BufferError):  # a view still lent out: unmapped when freed
                old[0].close()

    def read(self, handle: object, *, what: str) -> memoryview:
        """The ``size`` bytes at ``offset`` of the segment ``handle`` names, in place
        (read-only); INVALID_ARGUMENT when they lie outside it."""
        name = str(handle.segment_name)  # type: ignore[attr-defined]
        offset = int(handle.offset)  # type: ignore[attr-defined]
        size = int(handle.size)  # type: ignore[attr-defined]
        view = self._maps[name][1]
        if offset < 0 or size < 0 or offset + size > len(view):
            raise invalid_argument(
                f"{what}: bytes {offset}..{offset + size} lie outside sealed segment "
                f"{name!r} ({len(view)} bytes)"
            )
        return view[offset : offset + size].toreadonly()

    def write(
        self, handle: object, chunks: Sequence[memoryview], *, what: str
    ) -> list[tuple[int, int]] | None:
        """As :meth:`edgekit.agent.shm.SegmentCache.write`, into the mapping: None (nothing
        written) when the chunks do not fit in ``handle``'s range."""
        name = str(handle.segment_name)  # type: ignore[attr-defined]
        start = int(handle.offset)  # type: ignore[attr-defined]
        end = start + int(handle.size)  # type: ignore[attr-defined]
        view = self._maps[name][1]
        if start < 0 or end > len(view):
            raise invalid_argument(
                f"{what}: bytes {start}..{end} lie outside sealed segment {name!r} "
                f"({len(view)} bytes)"
            )
        placed, at = [], start
        for chunk in chunks:
            at = -(-at // OUTPUT_ALIGN) * OUTPUT_ALIGN
            placed.append((at, chunk.nbytes))
            at += chunk.nbytes
        if at > end:
            return None
        for (offset, size), chunk in zip(placed, chunks, strict=True):
            view[offset : offset + size] = chunk.cast("B")
        return placed

    def close(self) -> None:
        for name in list(self._maps):
            self.remove(name)
