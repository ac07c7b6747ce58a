"""Message streams: sequence-numbered messages in segments, in memory or on disk.

A stream is a list of segments (``streamSegmentSize`` bytes of messages each, as on
Greengrass: data is deleted a whole segment at a time). Appends take the next sequence
number (from 0, never reused); when the stream would exceed ``maxSize``,
``RejectNewData`` refuses the message and ``OverwriteOldestData`` deletes the oldest
segments until it fits. Segments whose newest message is older than
``timeToLiveMillis`` are deleted.

``Persistence.File`` streams live under ``<store root>/streams/<hash of the name>/``:
``definition.json``, one ``<first sequence>.log`` per segment (records of sequence,
ingest time, length, payload and a CRC32), ``state.json`` (the next sequence number
once segments were deleted) and ``progress.json`` (how far each export got). A store
opened on the same root finds them again; a torn record at the end of a segment (a
crash mid-write) is cut off. ``Persistence.Memory`` streams are lost with the process.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import logging
import os
import shutil
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import LocalBackendError
from edgekit.files import write_json_atomic
from edgekit.local.streammanager.definitions import (
    OVERWRITE_OLDEST_DATA,
    PERSISTENCE_FILE,
    DefinitionError,
    StreamDefinition,
    parse_definition,
)
from edgekit.local.streammanager.protocol import Status

__all__ = ["MessageStream", "StoreError", "StreamStore"]

log = logging.getLogger(__name__)
RECORD = struct.Struct(">QqI")  # sequence number, ingest time (ms), payload length
CRC = struct.Struct(">I")
#: Payload bytes one ReadMessages response carries at most (the first message always).
DEFAULT_MAX_READ_BYTES = 64 * 1024 * 1024


class StoreError(LocalBackendError):
    """An operation the store refuses; ``status`` is the response code the client gets
    (internal to the stream manager: it becomes a response, never reaches the public API)."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Entry:
    seq: int
    ingest: int
    size: int
    offset: int = 0  # of the payload in the segment file
    payload: bytes | None = None  # Memory streams


@dataclass
class Segment:
    first: int
    path: Path | None
    entries: list[Entry] = field(default_factory=list)
    size: int = 0
    handle: Any = None

    @property
    def end(self) -> int:  # one past the last sequence number
        return self.first + len(self.entries)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


class MessageStream:
    """One stream: its definition, segments and export progress."""

    def __init__(self, definition: StreamDefinition, folder: Path | None) -> None:
        self.definition = definition
        self.folder = folder  # None for Memory streams
        self.segments: list[Segment] = []
        self.next_seq = 0
        self.total = 0
        self.progress: dict[str, dict[str, Any]] = {}

    # --- persistence ------------------------------------------------------------------------

    def save_definition(self) -> None:
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.folder / "definition.json", self.definition.as_wire())

    def save_progress(self) -> None:
        if self.folder is not None:
            write_json_atomic(self.folder / "progress.json", self.progress)

    def _save_state(self) -> None:
        if self.folder is not None:
            write_json_atomic(self.folder / "state.json", {"nextSequenceNumber": self.next_seq})

    def load(self) -> None:
        """Read the segments of a File stream back (cutting a torn last record)."""
        assert self.folder is not None
        with contextlib.suppress(FileNotFoundError, ValueError):
            state = json.loads((self.folder / "state.json").read_text())
            self.next_seq = int(state.get("nextSequenceNumber", 0))
        with contextlib.suppress(FileNotFoundError, ValueError):
            progress = json.loads((self.folder / "progress.json").read_text())
            if isinstance(progress, dict):
                self.progress = progress
        for path in sorted(self.folder.glob("*.log")):
            segment = Segment(int(path.stem), path)
            good = _scan(path, segment)
            if good < path.stat().st_size:
                log.warning(
                    "stream %s: segment %s ends in a torn record; cut at byte %d",
                    self.definition.name,
                    path,
                    good,
                )
                with path.open("r+b") as fh:
                    fh.truncate(good)
            if not segment.entries:
                path.unlink()
                continue
            self.segments.append(segment)
            self.total += segment.size
            self.next_seq = max(self.next_seq, segment.end)

    def close(self) -> None:
        for segment in self.segments:
            segment.close()

    # --- messages ---------------------------------------------------------------------------

    @property
    def oldest(self) -> int:
        return self.segments[0].first if self.segments else self.next_seq

    def append(self, payload: bytes, ingest: int) -> int:
        d = self.definition
        size = len(payload)
        if size > d.max_size:
            raise StoreError(
                Status.InvalidRequest,
                f"the message ({size} bytes) is larger than the maxSize of stream {d.name} "
                f"({d.max_size} bytes); raise maxSize with UpdateMessageStream",
            )
        if self.total + size > d.max_size:
            if d.strategy_on_full != OVERWRITE_OLDEST_DATA:
                raise StoreError(
                    Status.InvalidRequest,
                    f"stream {d.name} is full ({self.total} of its maxSize {d.max_size} bytes) "
                    "and its strategyOnFull is RejectNewData: read and delete it, raise "
                    "maxSize, or use OverwriteOldestData",
                )
            while self.segments and self.total + size > d.max_size:
                self._drop_oldest()
        segment = self.segments[-1] if self.segments else None
        if segment is None or (segment.entries and segment.size + size > d.segment_size):
            segment = self._new_segment()
        entry = Entry(self.next_seq, ingest, size)
        if segment.path is None:
            entry.payload = bytes(payload)
        else:
            self._write(segment, entry, payload)
        segment.entries.append(entry)
        segment.size += size
        self.total += size
        self.next_seq += 1
        return entry.seq

    def _new_segment(self) -> Segment:
        path = None
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"{self.next_seq:020d}.log"
        if self.segments:
            self.segments[-1].close()
        segment = Segment(self.next_seq, path)
        self.segments.append(segment)
        return segment

    def _write(self, segment: Segment, entry: Entry, payload: bytes) -> None:
        assert segment.path is not None
        if segment.handle is None:
            segment.handle = segment.path.open("ab")
        fh = segment.handle
        header = RECORD.pack(entry.seq, entry.ingest, entry.size)
        entry.offset = fh.tell() + RECORD.size
        try:
            fh.write(header + payload + CRC.pack(zlib.crc32(header + payload)))
            fh.flush()
            if self.definition.flush_on_write:
                os.fsync(fh.fileno())
        except OSError as exc:
            raise StoreError(
                Status.UnknownFailure,
                f"stream {self.definition.name}: cannot write {segment.path}: {exc}",
            ) from exc

    def _drop_oldest(self) -> None:
        segment = self.segments.pop(0)
        segment.close()
        self.total -= segment.size
        if segment.path is not None:
            with contextlib.suppress(FileNotFoundError):
                segment.path.unlink()
            self._save_state()

    def expire(self, now: int) -> int:
        """Delete segments whose newest message outlived timeToLiveMillis; how many."""
        ttl = self.definition.ttl_millis
        dropped = 0
        while ttl is not None and self.segments and self.segments[0].entries:
            if self.segments[0].entries[-1].ingest + ttl > now:
                break
            self._drop_oldest()
            dropped += 1
        return dropped

    def read(self, start: int, max_count: int, max_bytes: int) -> tuple[list[dict[str, Any]], bool]:
        """Up to ``max_count`` messages from sequence ``start`` (or the oldest kept) and
        at most ``max_bytes`` of payload (the first message always); and whether the
        byte limit cut the list short."""
        start = max(start, self.oldest)
        firsts = [s.first for s in self.segments]
        i = max(bisect.bisect_right(firsts, start) - 1, 0)
        out: list[dict[str, Any]] = []
        name = self.definition.name
        size = 0
        cut = False
        for segment in self.segments[i:]:
            if len(out) >= max_count or cut:
                break
            lo = max(start - segment.first, 0)
            wanted = segment.entries[lo : lo + max_count - len(out)]
            for n, entry in enumerate(wanted):
                if (out or n) and size + entry.size > max_bytes:
                    wanted, cut = wanted[:n], True
                    break
                size += entry.size
            if not wanted:
                continue
            payloads = self._payloads(segment, wanted)
            for entry, payload in zip(wanted, payloads, strict=True):
                out.append(
                    {
                        "streamName": name,
                        "sequenceNumber": entry.seq,
                        "ingestTime": entry.ingest,
                        "payload": payload,
                    }
                )
        return out, cut

    def _payloads(self, segment: Segment, entries: list[Entry]) -> list[bytes]:
        if segment.path is None:
            return [e.payload or b"" for e in entries]
        try:
            with segment.path.open("rb") as fh:
                out = []
                for e in entries:
                    fh.seek(e.offset)
                    data = fh.read(e.size)
                    if len(data) != e.size:
                        raise OSError(f"short read at byte {e.offset}")
                    out.append(data)
                return out
        except OSError as exc:
            raise StoreError(
                Status.MessageStoreReadError,
                f"stream {self.definition.name}: cannot read {segment.path}: {exc}",
            ) from exc

    def storage_status(self) -> dict[str, int]:
        return {
            "oldestSequenceNumber": self.oldest,
            "newestSequenceNumber": self.next_seq - 1,
            "totalBytes": self.total,
        }


def _scan(path: Path, segment: Segment) -> int:
    """Index the records of a segment file; the offset where the valid records end."""
    data = path.read_bytes()
    pos = 0
    while pos + RECORD.size <= len(data):
        seq, ingest, size = RECORD.unpack_from(data, pos)
        end = pos + RECORD.size + size + CRC.size
        if end > len(data):
            break
        (crc,) = CRC.unpack_from(data, end - CRC.size)
        if crc != zlib.crc32(data[pos : end - CRC.size]):
            break
        if seq != segment.end:
            break
        segment.entries.append(Entry(seq, ingest, size, pos + RECORD.size))
        segment.size += size
        pos = end
    return pos


class StreamStore:
    """All message streams of one stream manager, thread-safe.

    ``on_append(name)`` is called after every append (from whichever thread appended),
    so readers waiting for new messages can be woken.
    """

    def __init__(self, root: Path, on_append: Callable[[str], None] | None = None) -> None:
        self.root = Path(root)
        self.on_append = on_append
        self.lock = threading.RLock()
        self.streams: dict[str, MessageStream] = {}
        self._load()

    def _folder(self, name: str) -> Path:
        return self.root / "streams" / hashlib.sha256(name.encode()).hexdigest()[:32]

    def _load(self) -> None:
        base = self.root / "streams"
        if not base.is_dir():
            return
        for folder in sorted(base.iterdir()):
            try:
                raw = json.loads((folder / "definition.json").read_text())
                definition = parse_definition(raw)
            except (OSError, ValueError, DefinitionError) as exc:
                log.error(
                    "skipping stream folder %s: its definition is unreadable: %s", folder, exc
                )
                continue
            stream = MessageStream(definition, folder)
            stream.load()
            self.streams[definition.name] = stream
            log.info("loaded stream %s: %s", definition.name, stream.storage_status())

    def close(self) -> None:
        with self.lock:
            for stream in self.streams.values():
                stream.close()

    def get(self, name: str) -> MessageStream:
        stream = self.streams.get(name)
        if stream is None:
            raise StoreError(Status.ResourceNotFound, f"stream {name} does not exist")
        return stream

    def create(self, definition: StreamDefinition) -> None:
        with self.lock:
            if definition.name in self.streams:
                raise StoreError(
                    Status.InvalidRequest,
                    f"stream {definition.name} already exists; update it with "
                    "UpdateMessageStream or delete it first",
                )
            folder = self._folder(definition.name)
            if definition.persistence == PERSISTENCE_FILE:
                shutil.rmtree(folder, ignore_errors=True)
                stream = MessageStream(definition, folder)
                stream.save_definition()
            else:
                stream = MessageStream(definition, None)
            self.streams[definition.name] = stream

    def update(self, definition: StreamDefinition) -> None:
        with self.lock:
            stream = self.get(definition.name)
            old = stream.definition
            if definition.persistence != old.persistence:
                raise StoreError(
                    Status.UpdateNotAllowed,
                    f"stream {old.name}: persistence cannot change after creation; delete "
                    "and create the stream again",
                )
            stream.definition = definition
            kept = {c.identifier for c in definition.s3_exports + definition.kinesis_exports}
            for identifier in list(stream.progress):
                if identifier not in kept:
                    del stream.progress[identifier]
            stream.save_definition()
            stream.save_progress()

    def delete(self, name: str) -> None:
        with self.lock:
            stream = self.get(name)
            stream.close()
            del self.streams[name]
            if stream.folder is not None:
                shutil.rmtree(stream.folder, ignore_errors=True)

    def names(self) -> list[str]:
        with self.lock:
            return sorted(self.streams)

    def describe(self, name: str) -> dict[str, Any]:
        with self.lock:
            stream = self.get(name)
            stream.expire(now_ms())
            d = stream.definition
            statuses = [  # every configured export, in definition order, started or not
                {
                    "exportConfigIdentifier": c.identifier,
                    "exportedBytesFromStream": 0,
                    "exportedMessagesCount": 0,
                    **stream.progress.get(c.identifier, {}),
                }
                for c in [*d.s3_exports, *d.kinesis_exports]
            ]
            return {
                "definition": stream.definition.as_wire(),
                "storageStatus": stream.storage_status(),
                "exportStatuses": statuses,
            }

    def append(self, name: str, payload: bytes) -> int:
        with self.lock:
            stream = self.get(name)
            now = now_ms()
            stream.expire(now)
            seq = stream.append(payload, now)
        if self.on_append is not None:
            self.on_append(name)
        return seq

    def read(
        self,
        name: str,
        start: int,
        min_count: int,
        max_count: int,
        max_bytes: int = DEFAULT_MAX_READ_BYTES,
    ) -> list[dict[str, Any]]:
        """Messages from ``start``; NotEnoughMessages when fewer than ``min_count`` are
        there, ResponsePayloadTooLarge when ``min_count`` of them exceed ``max_bytes``."""
        with self.lock:
            stream = self.get(name)
            stream.expire(now_ms())
            messages, cut = stream.read(start, max_count, max_bytes)
        if cut and len(messages) < min_count:
            raise StoreError(
                Status.ResponsePayloadTooLarge,
                f"{min_count} messages of stream {name} from sequence number {start} are more "
                f"than the {max_bytes} bytes one response carries; read fewer at a time",
            )
        if len(messages) < min_count:
            raise StoreError(
                Status.NotEnoughMessages,
                f"stream {name} has {len(messages)} message(s) from sequence number "
                f"{max(start, stream.oldest)}, fewer than the {min_count} asked for",
            )
        return messages

    def expire_all(self) -> None:
        with self.lock:
            now = now_ms()
            for stream in self.streams.values():
                stream.expire(now)
