"""Shared memory for tensors: the agent reads segments, the client writes them.

A ``SharedMemoryHandle`` names a segment and a byte range in it. edgekit reads
two kinds of segment:

* POSIX (``segment_name``, an edgekit addition to the API): what Python's
  :mod:`multiprocessing.shared_memory` creates. The client helper uses it.
* System V (``segment_id``, the original API's field): an id from ``shmget``,
  as the original agent's C++ example client sends.

A POSIX segment is *copied* on every use: the agent opens it read-only with
``shm_open`` and ``pread``s the byte range into its own buffer, checking the
segment's size first and the byte count read after. It never maps a POSIX
segment: the client owns it and may ``ftruncate`` it at any time, and a
mapping read past a shrunken segment's end is a SIGBUS that kills the agent
and every model it serves; ``pread`` just returns fewer bytes, which is an
INVALID_ARGUMENT naming the segment and the sizes. It does not attach with
``SharedMemory(name, create=False)`` either: before Python 3.13 that
registers the segment with the resource tracker, which would unlink the
*client's* segment when the agent exits.

A System V segment cannot shrink while attached, so it is attached once,
read-only, and read in place.

Predict reads POSIX segments into buffers the agent keeps and lends out
(:class:`BufferPool`): a call borrows one buffer per input for as long as the
model runs and gives them back, so a steady stream of Predicts allocates
nothing and every worker thread's malloc arena stays small.

The client (:class:`SharedMemoryPool`) creates its segments with ``shm_open``
itself rather than through :mod:`multiprocessing.shared_memory`, which starts
a resource-tracker *process* (some 15 MB) to unlink segments a crashed process
left behind; the pool instead unlinks, when it opens, the segments its own
prefix names for processes that no longer run.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import mmap
import os
import re
import secrets
import stat
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.agent.status import invalid_argument

try:
    import _posixshmem  # what multiprocessing.shared_memory is built on (POSIX CPython)
except ImportError:  # pragma: no cover - not POSIX: no POSIX segments here
    _posixshmem = None

_DEV_SHM = Path("/dev/shm")
_SHM_RDONLY = 0o10000  # <sys/shm.h>
# Never block on open (a FIFO planted under /dev/shm) and never follow a link.
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
_WRITE_FLAGS = os.O_RDWR | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
OUTPUT_ALIGN = 64
"""Outputs written into a caller's segment start at multiples of this many bytes."""
CLIENT_SEGMENT = re.compile(r"[A-Za-z0-9_.]+-\d+-[0-9a-f]+-\d+")
"""How :class:`SharedMemoryPool` names its segments: ``<prefix>-<pid>-<token>-<n>``."""
MAX_SEGMENT_READ = 256 * 1024 * 1024
"""The most bytes one handle may name: the agent's gRPC message limit, as for byte_data."""


def _shm_open_readonly(name: str) -> int:
    """A read-only file descriptor for POSIX segment ``name`` (without the leading '/')."""
    if _posixshmem is None:  # pragma: no cover
        return os.open(_DEV_SHM / name, _OPEN_FLAGS)
    return _posixshmem.shm_open("/" + name, _OPEN_FLAGS, mode=0)


@dataclass
class _SysvSegment:
    segment_id: int
    address: int
    size: int
    view: memoryview


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
    libc.shmat.restype = ctypes.c_void_p
    libc.shmdt.argtypes = [ctypes.c_void_p]
    libc.shmdt.restype = ctypes.c_int
    return libc


def _size_now(name: str) -> int | None:
    try:
        return os.stat(_DEV_SHM / name).st_size
    except OSError:
        return None


def sysv_segment_size(segment_id: int) -> int | None:
    """Size in bytes of System V segment ``segment_id`` from /proc/sysvipc/shm (Linux)."""
    try:
        lines = Path("/proc/sysvipc/shm").read_text().splitlines()
    except OSError:
        return None
    header = lines[0].split() if lines else []
    try:
        id_col, size_col = header.index("shmid"), header.index("size")
    except ValueError:
        return None
    for line in lines[1:]:
        cols = line.split()
        if len(cols) > max(id_col, size_col) and cols[id_col] == str(segment_id):
            return int(cols[size_col])
    return None


class SegmentCache:
    """Reads byte ranges of segments: POSIX ones copied on each use, System V ones in place."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sysv: dict[int, _SysvSegment] = {}
        self._libc: ctypes.CDLL | None = None

    def read(
        self, handle: object, *, what: str, into: Callable[[int], bytearray] | None = None
    ) -> memoryview:
        """The ``size`` bytes at ``offset`` of the segment ``handle`` names, or INVALID_ARGUMENT.

        A copy for POSIX segments (a client may shrink them at any time), a view
        of the attached segment for System V ones (those cannot shrink). ``into(size)``
        gives the buffer a POSIX segment is copied into (a :class:`Lease`'s ``take``);
        without it, a new one.
        """
        size = int(handle.size)  # type: ignore[attr-defined]
        offset = int(handle.offset)  # type: ignore[attr-defined]
        name = str(getattr(handle, "segment_name", "") or "")
        if name:
            return self._posix_copy(name, offset, size, what=what, into=into)
        segment_id = int(handle.segment_id)  # type: ignore[attr-defined]
        view = self._sysv_view(segment_id, what=what)
        label = f"System V shared memory segment {segment_id}"
        if offset + size > len(view):
            raise invalid_argument(
                f"{what}: bytes {offset}..{offset + size} lie outside {label} ({len(view)} bytes)"
            )
        return view[offset : offset + size]

    def _posix_copy(
        self,
        name: str,
        offset: int,
        size: int,
        *,
        what: str,
        into: Callable[[int], bytearray] | None = None,
    ) -> memoryview:
        """A private, read-only copy of ``size`` bytes at ``offset`` of POSIX segment ``name``.

        Copied with pread, never through a mapping: a segment its client shrinks
        meanwhile gives a short read here, not a SIGBUS.
        """
        if "/" in name or not name or name in (".", ".."):
            raise invalid_argument(f"{what}: segment_name {name!r} must be a plain name")
        label = f"shared memory segment {name!r}"
        if size > MAX_SEGMENT_READ:
            raise invalid_argument(
                f"{what}: {size} bytes requested from {label}; one tensor holds at most "
                f"{MAX_SEGMENT_READ} bytes"
            )
        try:
            fd = _shm_open_readonly(name)
        except FileNotFoundError:
            raise invalid_argument(f"{what}: {label} does not exist") from None
        except PermissionError:
            raise invalid_argument(f"{what}: {label} is not readable by the agent's user") from None
        except OSError as exc:
            raise invalid_argument(f"{what}: cannot open {label}: {exc.strerror}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise invalid_argument(f"{what}: {label} is not a shared memory segment")
            if offset + size > info.st_size or info.st_size == 0:
                raise invalid_argument(
                    f"{what}: bytes {offset}..{offset + size} lie outside {label} "
                    f"({info.st_size} bytes)"
                )
            buffer = into(size) if into is not None else bytearray(size)
            view = memoryview(buffer)
            got = 0
            while got < size:
                count = os.preadv(fd, [view[got:]], offset + got)
                if count == 0:
                    break
                got += count
            view.release()
        except OSError as exc:
            raise invalid_argument(f"{what}: cannot read {label}: {exc.strerror}") from None
        finally:
            os.close(fd)
        if got != size:
            # The client shrank the segment between our fstat and our read.
            now = _size_now(name)
            raise invalid_argument(
                f"{what}: bytes {offset}..{offset + size} lie outside {label} "
                f"({now if now is not None else offset + got} bytes); the segment shrank "
                "during the call"
            )
        return memoryview(buffer).toreadonly()

    def write(
        self, handle: object, chunks: Sequence[memoryview], *, what: str
    ) -> list[tuple[int, int]] | None:
        """Write ``chunks`` (flat byte views) one after the other into the POSIX segment
        ``handle`` names, each at an offset aligned to OUTPUT_ALIGN from ``handle.offset``,
        within ``handle.size`` bytes; the (offset, size) of each.

        None, and nothing written, when they do not fit, when the handle names no POSIX
        segment, or when the segment is not the agent user's own: the caller then sends
        the bytes inline. An agent running as root also writes only into segments named
        as :class:`SharedMemoryPool` names them: a client in the socket's group cannot
        make it overwrite other memory of root's. Written with pwrite, never through a
        mapping (see the module docstring).
        INVALID_ARGUMENT when the named segment does not exist or cannot be opened.
        """
        name = str(getattr(handle, "segment_name", "") or "")
        if not name or _posixshmem is None:
            return None
        if os.geteuid() == 0 and not CLIENT_SEGMENT.fullmatch(name):
            return None
        if "/" in name or name in (".", ".."):
            raise invalid_argument(f"{what}: segment_name {name!r} must be a plain name")
        start = int(handle.offset)  # type: ignore[attr-defined]
        end = start + int(handle.size)  # type: ignore[attr-defined]
        placed, at = [], start
        for chunk in chunks:
            at = -(-at // OUTPUT_ALIGN) * OUTPUT_ALIGN
            placed.append((at, chunk.nbytes))
            at += chunk.nbytes
        if at > end:
            return None
        label = f"shared memory segment {name!r}"
        try:
            fd = _posixshmem.shm_open("/" + name, _WRITE_FLAGS, mode=0)
        except FileNotFoundError:
            raise invalid_argument(f"{what}: {label} does not exist") from None
        except OSError as exc:
            raise invalid_argument(f"{what}: cannot open {label}: {exc.strerror}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                return None
            if end > info.st_size:
                raise invalid_argument(
                    f"{what}: bytes {start}..{end} lie outside {label} ({info.st_size} bytes)"
                )
            for (offset, size), chunk in zip(placed, chunks, strict=True):
                done = 0
                while done < size:
                    done += os.pwrite(fd, chunk[done:], offset + done)
        except OSError as exc:
            raise invalid_argument(f"{what}: cannot write {label}: {exc.strerror}") from None
        finally:
            os.close(fd)
        return placed

    def _sysv_view(self, segment_id: int, *, what: str) -> memoryview:
        with self._lock:
            seg = self._sysv.get(segment_id)
            if seg is None:
                size = sysv_segment_size(segment_id)
                if size is None:
                    raise invalid_argument(
                        f"{what}: System V shared memory segment {segment_id} does not exist "
                        "(or /proc/sysvipc/shm is not readable); set segment_id to an id from "
                        "shmget, or segment_name to a POSIX segment name"
                    )
                if self._libc is None:
                    self._libc = _libc()
                address = self._libc.shmat(segment_id, None, _SHM_RDONLY)
                if address is None or address == ctypes.c_void_p(-1).value:
                    err = ctypes.get_errno()
                    raise invalid_argument(
                        f"{what}: cannot attach System V segment {segment_id}: {os.strerror(err)}"
                    )
                buffer = (ctypes.c_char * size).from_address(address)
                seg = _SysvSegment(segment_id, address, size, memoryview(buffer).cast("B"))
                self._sysv[segment_id] = seg
            return seg.view

    def close(self) -> None:
        """Unmap every segment (the segments themselves belong to the clients)."""
        with self._lock:
            for sysv in self._sysv.values():
                sysv.view.release()
                if self._libc is not None:
                    self._libc.shmdt(sysv.address)
            self._sysv.clear()


class BufferPool:
    """Agent side: byte buffers for tensors read from POSIX segments, reused across calls.

    A call borrows buffers through a :class:`Lease` and returns them all when it
    ends. At most ``per_size`` idle buffers of one size and ``max_idle_bytes`` in
    all are kept; more are dropped (a burst of concurrent calls, or many sizes).
    """

    def __init__(self, *, per_size: int = 4, max_idle_bytes: int = 64 * 1024 * 1024) -> None:
        self.per_size = per_size
        self.max_idle_bytes = max_idle_bytes
        self._lock = threading.Lock()
        self._idle: dict[int, list[bytearray]] = {}
        self._idle_bytes = 0

    @property
    def idle_bytes(self) -> int:
        return self._idle_bytes

    def take(self, size: int) -> bytearray:
        with self._lock:
            free = self._idle.get(size)
            if free:
                self._idle_bytes -= size
                return free.pop()
        return bytearray(size)

    def give(self, buffer: bytearray) -> None:
        size = len(buffer)
        with self._lock:
            free = self._idle.setdefault(size, [])
            if len(free) < self.per_size and self._idle_bytes + size <= self.max_idle_bytes:
                free.append(buffer)
                self._idle_bytes += size

    def lease(self) -> Lease:
        return Lease(self)

    def clear(self) -> None:
        with self._lock:
            self._idle.clear()
            self._idle_bytes = 0


class Lease:
    """The buffers one call borrowed from a :class:`BufferPool`; ``with`` returns them.

    Nothing may keep a view of a borrowed buffer past the ``with`` block: the
    next call overwrites it.
    """

    def __init__(self, pool: BufferPool) -> None:
        self._pool = pool
        self._taken: list[bytearray] = []

    def take(self, size: int) -> bytearray:
        buffer = self._pool.take(size)
        self._taken.append(buffer)
        return buffer

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        taken, self._taken = self._taken, []
        for buffer in taken:
            self._pool.give(buffer)


class PosixSegment:
    """A POSIX shared memory segment this process created, mapped read-write (client side).

    ``name`` is without the leading slash, as ``segment_name`` carries it. Created
    with mode 0600 (only this user, and root, may read it), as
    :mod:`multiprocessing.shared_memory` does, but registered with no resource tracker.
    """

    def __init__(self, name: str, size: int) -> None:
        if _posixshmem is None:  # pragma: no cover
            raise OSError("POSIX shared memory is not available on this platform")
        fd = _posixshmem.shm_open("/" + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=0o600)
        try:
            try:
                os.ftruncate(fd, size)
                self._mmap = mmap.mmap(fd, size)
            except OSError:
                _posixshmem.shm_unlink("/" + name)
                raise
        finally:
            os.close(fd)
        self.name = name
        self.size = size
        self.buf = memoryview(self._mmap)

    def close(self) -> None:
        """Unmap (BufferError while a numpy view of ``buf`` is alive, as for SharedMemory)."""
        self.buf.release()
        self._mmap.close()

    def unlink(self) -> None:
        _posixshmem.shm_unlink("/" + self.name)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def remove_orphans(prefix: str, folder: Path = _DEV_SHM) -> list[str]:
    """Unlink this user's segments named ``<prefix>-<pid>-...`` whose process is gone.

    A client that was killed cannot unlink its segments; the next pool with the same
    prefix does. Returns the names removed.
    """
    pattern = re.compile(re.escape(prefix) + r"-(\d+)-[0-9a-f]+-\d+")
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed  # no /dev/shm: creating a segment will say so
    me = os.geteuid()
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_uid != me:
                continue
            os.unlink(entry.path)
        except FileNotFoundError:
            continue  # removed meanwhile
        removed.append(entry.name)
    return removed


class SharedMemoryPool:
    """Client side: reusable POSIX segments to put input tensors in.

    Creating a segment costs a few system calls and page faults, so segments
    are kept and reused (thread-safe: a segment is lent to one call at a time).
    ``close()`` unlinks them all; segments of an earlier process with the same
    ``prefix`` that did not get to (it was killed) are unlinked when a pool opens.
    """

    def __init__(
        self, prefix: str = "edgekit", *, factory: Callable[[str, int], Any] | None = None
    ) -> None:
        """``factory(name, size)`` makes the segments (default :class:`PosixSegment`); one
        that is not a POSIX segment (:class:`edgekit.agent.sealed.SealedSegment`) leaves
        nothing behind to clean, so no orphans are looked for."""
        if factory is None:
            remove_orphans(prefix)
        self._factory = factory or PosixSegment
        self._prefix = f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"
        self._lock = threading.Lock()
        self._free: list[PosixSegment] = []
        self._all: list[PosixSegment] = []
        self._reserved: list[PosixSegment] = []
        self._count = 0

    def acquire(self, nbytes: int) -> PosixSegment:
        with self._lock:
            best = None
            for seg in self._free:
                if seg.size >= nbytes and (best is None or seg.size < best.size):
                    best = seg
            if best is not None:
                self._free.remove(best)
                return best
            self._count += 1
            name = f"{self._prefix}-{self._count}"
        size = max(mmap.PAGESIZE, -(-nbytes // mmap.PAGESIZE) * mmap.PAGESIZE)
        seg = self._factory(name, size)
        with self._lock:
            self._all.append(seg)
        return seg

    def release(self, seg: PosixSegment) -> None:
        with self._lock:
            if seg in self._all:
                self._free.append(seg)

    def reserve(self, nbytes: int) -> PosixSegment:
        """A segment of its own for a caller that keeps an array in it (never lent to
        another call); unlinked with the pool, unmapped once the caller's views are gone."""
        seg = self.acquire(nbytes)
        with self._lock:
            self._reserved.append(seg)
        return seg

    def close(self) -> None:
        with self._lock:
            segments, self._all, self._free = self._all, [], []
            reserved, self._reserved = self._reserved, []
        for seg in segments:
            with contextlib.suppress(FileNotFoundError):  # the agent's host may clean /dev/shm
                seg.unlink()
            try:
                seg.close()
            except BufferError:
                if seg not in reserved:
                    raise
                # A caller still holds an array in its reserved segment: the mapping goes
                # when that array does (the segment is unlinked already).
