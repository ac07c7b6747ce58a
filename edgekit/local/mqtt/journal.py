"""An append-only, crash-consistent journal file with group commit and compaction.

It knows records only as bytes (`edgekit.local.mqtt.store` gives them meaning).

- Format: a magic line, then frames. A frame is ``u32 length, u32 crc32, body``;
  the body holds the records one group commit wrote, each ``u32 length, record``.
- Group commit: `append` adds a record in memory; a writer thread writes what
  accumulated while its previous fsync ran as one frame, then fsyncs. `when_durable`
  calls back on the event loop once everything appended before it is on disk;
  `commit` blocks until then. The record's owner mutates its own state and
  appends under `Journal.lock`, so a snapshot taken under it matches the file.
- Crash consistency: a frame is written only after the previous one's fsync
  returned, so only the last frame can be torn. A torn or damaged last frame
  (cut short, a bad checksum at the end of the file, blocks of zeros) held
  nothing anyone was told is durable: `open` drops it with a warning and
  truncates the file. A damaged frame with more data after it means the disk
  lost acknowledged data: `open` raises `LocalBackendError` naming the file.
- Compaction: when the file is over ``compact_min_bytes`` and ``compact_ratio``
  times ``live_bytes()``, the writer writes ``snapshot()`` (records rebuilding
  the live state) to ``<name>.compacting``, fsyncs it and renames it over the
  journal, so a crash leaves either the old file or the new one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from edgekit.errors import LocalBackendError
from edgekit.files import fsync_dir

log = logging.getLogger("edgekit.local.mqtt")

FRAME = struct.Struct(">II")  # body length, crc32(body)
LENGTH = struct.Struct(">I")
SNAPSHOT_FRAME_BYTES = 1 << 20  # a snapshot is written in frames of about this size

Fire = Callable[[BaseException | None], None]


def frame(records: Iterable[bytes]) -> bytes:
    body = b"".join(LENGTH.pack(len(r)) + r for r in records)
    return FRAME.pack(len(body), zlib.crc32(body)) + body


def _records(body: bytes) -> Iterator[bytes]:
    pos = 0
    while pos < len(body):
        (n,) = LENGTH.unpack_from(body, pos)
        yield body[pos + 4 : pos + 4 + n]
        pos += 4 + n


class Journal:
    """One journal file; `open` replays it and starts the writer thread."""

    def __init__(
        self,
        path: Path,
        magic: bytes,
        *,
        live_bytes: Callable[[], int],
        snapshot: Callable[[], Iterable[bytes]],
        compact_min_bytes: int,
        compact_ratio: float,
    ) -> None:
        self.path = path
        self.magic = magic
        self.live_bytes = live_bytes
        self.snapshot = snapshot  # called under `lock`; may return a lazy iterable
        self.compact_min_bytes = compact_min_bytes
        self.compact_ratio = compact_ratio
        self.lock = threading.Condition(threading.RLock())
        self.size = 0  # bytes on disk
        self.torn_bytes = 0  # bytes of a torn tail dropped at open
        self.compactions = 0
        self._buf: list[bytes] = []
        self._buf_bytes = 0
        self._appended = 0
        self._durable = 0
        self._waiters: list[tuple[int, Fire]] = []
        self._error: LocalBackendError | None = None
        self._closing = False
        self._fd = -1
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ open / close
    def open(self, apply: Callable[[bytes], None]) -> None:
        """Call ``apply(record)`` for every record in the file (created empty if missing),
        then start the writer. Drops a torn tail; raises for damage in the middle."""
        self.path.with_name(self.path.name + ".compacting").unlink(missing_ok=True)
        for record in self._replay():
            apply(record)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._thread = threading.Thread(target=self._writer, name="edgekit-journal", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Write what is pending, then stop the writer; safe to call twice."""
        with self.lock:
            self._closing = True
            self.lock.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _replay(self) -> Iterator[bytes]:
        if not self.path.exists():
            self._create()
            return
        data = self.path.read_bytes()
        if len(data) < len(self.magic) and self.magic.startswith(data):
            log.warning("journal %s was cut off while it was created; starting empty", self.path)
            self._create()
            return
        if not data.startswith(self.magic):
            raise LocalBackendError(
                f"{self.path} is not a journal of this edgekit version (its first line is not "
                f"{self.magic.decode(errors='replace').strip()!r}); move it aside or use "
                "another state directory"
            )
        pos = len(self.magic)
        while pos < len(data):
            end = self._frame_end(data, pos)
            if end is None:
                self.torn_bytes = len(data) - pos
                log.warning(
                    "journal %s: dropped %d bytes of a frame cut off at byte %d (it was being "
                    "written when the process stopped; none of it had been acknowledged)",
                    self.path,
                    self.torn_bytes,
                    pos,
                )
                with self.path.open("r+b") as fh:
                    fh.truncate(pos)
                    os.fsync(fh.fileno())
                break
            yield from _records(data[pos + FRAME.size : end])
            pos = end
        self.size = pos

    def _frame_end(self, data: bytes, pos: int) -> int | None:
        """End of the good frame at ``pos``; None for a torn tail; raises for a damaged middle."""
        if pos + FRAME.size > len(data):
            return None
        length, crc = FRAME.unpack_from(data, pos)
        end = pos + FRAME.size + length
        if end > len(data):
            return None
        if length and zlib.crc32(data[pos + FRAME.size : end]) == crc:
            return end
        if end == len(data) or not data[pos:].strip(b"\0"):  # zeros: blocks never written
            return None
        raise LocalBackendError(
            f"journal {self.path} is damaged at byte {pos}, with {len(data) - end} bytes of "
            "records after it: the disk lost data that had been acknowledged. Move the file "
            "aside (or restore it from a backup) to start without the state it held"
        )

    def _create(self) -> None:
        with self.path.open("wb") as fh:
            fh.write(self.magic)
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(self.path.parent)
        self.size = len(self.magic)

    # ------------------------------------------------------------ appending
    def append(self, record: bytes) -> None:
        """Add a record; it is on disk once a later `commit`/`when_durable` says so."""
        with self.lock:
            if self._error is not None:
                raise self._error
            if self._closing:
                raise LocalBackendError(f"the journal {self.path} is closed")
            self._buf.append(record)
            self._buf_bytes += len(record) + LENGTH.size
            self._appended += 1
            self.lock.notify_all()

    @property
    def pending(self) -> bool:
        """True while some record is not yet on disk."""
        return self._durable < self._appended

    def commit(self, timeout: float | None = None) -> None:
        """Block until every record appended so far is on disk (fsynced)."""
        done = threading.Event()
        errors: list[BaseException] = []

        def fire(error: BaseException | None) -> None:
            if error is not None:
                errors.append(error)
            done.set()

        self._wait(fire)
        if not done.wait(timeout):
            raise LocalBackendError(
                f"the journal {self.path} was not written to disk within {timeout} s; "
                "check the disk"
            )
        if errors:
            raise errors[0]

    def when_durable(self, callback: Fire) -> None:
        """Call ``callback(None)`` on the running event loop once every record appended so
        far is on disk, ``callback(error)`` if writing failed; in the order of the calls."""
        loop = asyncio.get_running_loop()

        def fire(error: BaseException | None) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(callback, error)

        self._wait(fire)

    async def wait_durable(self) -> None:
        """`when_durable` as a coroutine; raises the write error if there was one."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def done(error: BaseException | None) -> None:
            if future.done():
                return
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

        self.when_durable(done)
        await future

    def _wait(self, fire: Fire) -> None:
        # Waiters fire under the lock, so they fire in the order they came.
        with self.lock:
            if self._error is not None:
                fire(self._error)
            elif self._durable >= self._appended:
                fire(None)
            else:
                self._waiters.append((self._appended, fire))

    # ------------------------------------------------------------ the writer thread
    def _compaction_due(self) -> bool:
        size = self.size + self._buf_bytes
        return size > self.compact_min_bytes and size > self.compact_ratio * self.live_bytes()

    def _writer(self) -> None:
        while True:
            with self.lock:
                while not self._buf and not self._closing:
                    self.lock.wait()
                if not self._buf:
                    return
                batch, self._buf, self._buf_bytes = self._buf, [], 0
                target = self._appended
                snapshot = self.snapshot() if self._compaction_due() else None
            try:
                if snapshot is not None:  # it includes what ``batch`` changed
                    self._rewrite(snapshot)
                else:
                    data = frame(batch)
                    os.write(self._fd, data)
                    os.fsync(self._fd)
                    self.size += len(data)
            except Exception as exc:  # reported to every waiter and every later append
                self._fail(exc)
                return
            with self.lock:
                self._durable = target
                ready = [fire for seq, fire in self._waiters if seq <= target]
                self._waiters = [(seq, fire) for seq, fire in self._waiters if seq > target]
                for fire in ready:
                    fire(None)

    def _fail(self, exc: Exception) -> None:
        error = LocalBackendError(
            f"cannot write the journal {self.path}: {exc}; free disk space or fix the "
            "directory's permissions, then restart"
        )
        error.__cause__ = exc
        log.error("%s", error)
        with self.lock:
            self._error = error
            waiters, self._waiters = self._waiters, []
            for _, fire in waiters:
                fire(error)

    def _rewrite(self, records: Iterable[bytes]) -> None:
        tmp = self.path.with_name(self.path.name + ".compacting")
        size = len(self.magic)
        with tmp.open("wb") as fh:
            fh.write(self.magic)
            batch: list[bytes] = []
            batch_bytes = 0
            for record in records:
                batch.append(record)
                batch_bytes += len(record)
                if batch_bytes >= SNAPSHOT_FRAME_BYTES:
                    size += fh.write(frame(batch))
                    batch, batch_bytes = [], 0
            if batch:
                size += fh.write(frame(batch))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)
        old, self._fd = self._fd, os.open(self.path, os.O_WRONLY | os.O_APPEND)
        os.close(old)
        self.size = size
        self.compactions += 1
        log.info("compacted the journal %s to %d bytes", self.path, size)
