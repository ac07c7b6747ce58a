"""The IoT Core bridge's spool: messages waiting for the MQTT broker, kept on disk.

Like the nucleus' spooler (``aws.greengrass.Nucleus`` configuration ``mqtt.spooler``)
with ``storageType: Disk``: a QoS 1 PublishToIoTCore is written here before the
component hears "success", and leaves only when the broker has acknowledged it
(PUBACK), so a crash of the device runtime loses nothing a component was told
was sent. On restart the spool is read back in order and sent before new messages.

Bounds and drops follow the nucleus (``Spool.queueCapacityCheck``): the spool holds
at most ``max_bytes`` of payload (``maxSizeInBytes``, default 2.5 MB); a message
larger than the whole spool is refused; when a new message does not fit, the
oldest QoS 0 messages are dropped to make room, and if it still does not fit it is
refused (`SpoolFullError`, naming the limit). QoS 1 messages are never dropped to
make room. Every drop and refusal is counted (`stats`).

Files, under the spool folder:

- ``<first seq, 16 hex digits>.log``: records appended in order, each
  ``magic (2) | body length (4) | crc32 of body (4) | body`` with body
  ``seq (8) | qos (1) | retain (1) | topic length (2) | topic | payload``;
- ``<first seq>.acks``: 8-byte sequence numbers the broker acknowledged (or that were
  dropped), appended without fsync: an ack lost in a crash means the message is sent
  again, which QoS 1 allows;
- a segment and its acks are deleted once every message in it is acknowledged.

Durability: `append` returns once the record is fsynced (concurrent appends share
one fsync: group commit). A crash while a record is written leaves a truncated or
damaged tail: reading stops at the first bad record of a segment, counts it
(``corrupt``) and goes on; such a record was never acknowledged to its component.
A runtime always appends to a new segment, so it never writes after a damaged tail.

QoS 0 messages (kept only with ``keepQos0WhenOffline``) stay in memory, as they may
be lost anyway. Without a folder (``directory=None``) the whole spool is in memory
(``storageType: Memory``).
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import LocalBackendError
from edgekit.files import fsync_dir

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 2_621_440  # the nucleus' mqtt.spooler.maxSizeInBytes default (2.5 MB)
DEFAULT_SEGMENT_BYTES = 1 << 20
DISK, MEMORY = "Disk", "Memory"
DEFAULT_PLUGIN = "aws.greengrass.DiskSpooler"
NUCLEUS = "aws.greengrass.Nucleus"

_MAGIC = b"\xed\x5b"
_HEADER = struct.Struct(">2sII")  # magic, body length, crc32
_BODY = struct.Struct(">QBBH")  # seq, qos, retain, topic length
_SEQ = struct.Struct(">Q")
_MAX_BODY = 16 << 20


class SpoolError(LocalBackendError):
    """The spool cannot take a message (internal; PublishToIoTCore answers ServiceError)."""


class SpoolFullError(SpoolError):
    """The spool has no room for a message, even after dropping QoS 0 messages."""


@dataclass(frozen=True)
class SpoolerConfig:
    """``aws.greengrass.Nucleus`` configuration ``mqtt.spooler`` as this device reads it."""

    max_bytes: int = DEFAULT_MAX_BYTES
    storage_type: str = DISK
    keep_qos0_when_offline: bool = False
    plugin_name: str = DEFAULT_PLUGIN

    @classmethod
    def from_config(cls, value: Any) -> SpoolerConfig:
        """Read ``mqtt.spooler``; a bad value is logged and its default used, as the nucleus'
        ``Coerce`` does (a device with a typo keeps running)."""
        if not isinstance(value, dict):
            if value is not None:
                log.warning("%s mqtt.spooler is %r, not an object; using defaults", NUCLEUS, value)
            return cls()
        out = cls()
        size = value.get("maxSizeInBytes", out.max_bytes)
        try:
            max_bytes = int(size)
            if max_bytes < 1:
                raise ValueError(size)
        except (TypeError, ValueError):
            log.warning(
                "%s mqtt.spooler.maxSizeInBytes %r is not a positive integer; using %d",
                NUCLEUS,
                size,
                DEFAULT_MAX_BYTES,
            )
            max_bytes = DEFAULT_MAX_BYTES
        storage = str(value.get("storageType", out.storage_type))
        if storage.lower() not in (DISK.lower(), MEMORY.lower()):
            log.warning(
                "%s mqtt.spooler.storageType %r is not Disk or Memory; using %s",
                NUCLEUS,
                storage,
                DISK,
            )
            storage = DISK
        keep = value.get("keepQos0WhenOffline", False)
        keep_qos0 = keep if isinstance(keep, bool) else str(keep).lower() == "true"
        return cls(
            max_bytes=max_bytes,
            storage_type=DISK if storage.lower() == "disk" else MEMORY,
            keep_qos0_when_offline=keep_qos0,
            plugin_name=str(value.get("pluginName", DEFAULT_PLUGIN)),
        )


@dataclass(eq=False)
class SpooledMessage:
    """One message in the spool. ``info``, ``strikes`` and ``sent_in`` belong to the bridge."""

    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    segment: int | None  # first seq of its segment file; None: in memory only
    info: Any = None
    strikes: int = 0
    sent_in: int = -1  # the bridge's connection number it was last handed to paho in


@dataclass
class _Segment:
    first: int
    path: Path
    live: int = 0
    acks_fd: int | None = None


@dataclass
class SpoolStats:
    refused: int = 0  # publishes refused: no room even after dropping QoS 0 messages
    dropped_qos0: int = 0  # QoS 0 messages dropped to make room
    replayed: int = 0  # messages read back from disk when the spool was opened
    corrupt: int = 0  # damaged or truncated records ignored when the spool was opened


def _encode(seq: int, topic: str, payload: bytes, qos: int, retain: bool) -> bytes:
    raw_topic = topic.encode()
    body = _BODY.pack(seq, qos, 1 if retain else 0, len(raw_topic)) + raw_topic + payload
    return _HEADER.pack(_MAGIC, len(body), zlib.crc32(body)) + body


def read_segment(data: bytes) -> tuple[list[tuple[int, str, bytes, int, bool]], bool]:
    """The records of one segment file, and whether it ended in a damaged record."""
    out: list[tuple[int, str, bytes, int, bool]] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < _HEADER.size:
            return out, True
        magic, size, crc = _HEADER.unpack_from(data, pos)
        body = data[pos + _HEADER.size : pos + _HEADER.size + size]
        if magic != _MAGIC or size > _MAX_BODY or len(body) < size or zlib.crc32(body) != crc:
            return out, True
        if size < _BODY.size:
            return out, True
        seq, qos, retain, topic_len = _BODY.unpack_from(body)
        if _BODY.size + topic_len > size:
            return out, True
        try:
            topic = body[_BODY.size : _BODY.size + topic_len].decode()
        except UnicodeDecodeError:
            return out, True
        out.append((seq, topic, bytes(body[_BODY.size + topic_len :]), qos, bool(retain)))
        pos += _HEADER.size + size
    return out, False


class MqttSpool:
    """Ordered, byte-bounded store of outgoing messages; thread-safe.

    ``directory`` None keeps everything in memory. ``fsync=False`` skips fsync (tests
    and benchmarks of the memory path only; the guarantee needs it).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        fsync: bool = True,
    ) -> None:
        if max_bytes < 1:
            raise LocalBackendError(f"spool max_bytes={max_bytes} must be at least 1")
        self.directory = Path(directory) if directory is not None else None
        self.max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._messages: OrderedDict[int, SpooledMessage] = OrderedDict()
        self._segments: dict[int, _Segment] = {}
        self._bytes = 0
        self._next_seq = 1
        self._fd: int | None = None
        self._current: _Segment | None = None
        self._current_size = 0
        self._written = 0  # bytes written since open, all segments
        self._synced = 0
        self.counters = SpoolStats()
        self._closed = False
        if self.directory is not None:
            self._load()

    @property
    def storage_type(self) -> str:
        return MEMORY if self.directory is None else DISK

    # ---------------------------------------------------------------- opening
    def _load(self) -> None:
        assert self.directory is not None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            logs = sorted(self.directory.glob("*.log"))
            for path in logs:
                self._load_segment(path)
        except OSError as exc:
            raise LocalBackendError(
                f"cannot open the IoT Core message spool in {self.directory}: {exc}; check the "
                "folder is writable (or set the nucleus' mqtt.spooler.storageType to Memory)"
            ) from exc
        self.counters.replayed = len(self._messages)
        if self._messages:
            log.info(
                "IoT Core spool %s: %d messages (%d bytes) from before the restart are sent first",
                self.directory,
                len(self._messages),
                self._bytes,
            )
        if self._bytes > self.max_bytes:
            log.warning(
                "IoT Core spool %s holds %d bytes, more than maxSizeInBytes %d; new messages are "
                "refused until it drains",
                self.directory,
                self._bytes,
                self.max_bytes,
            )

    def _load_segment(self, path: Path) -> None:
        try:
            first = int(path.stem, 16)
        except ValueError:
            log.warning("IoT Core spool: ignoring %s (not a segment name)", path)
            return
        records, damaged = read_segment(path.read_bytes())
        acks_path = path.with_suffix(".acks")
        acked: set[int] = set()
        if acks_path.exists():
            raw = acks_path.read_bytes()
            acked = {_SEQ.unpack_from(raw, i)[0] for i in range(0, len(raw) - 7, 8)}
        if damaged:
            self.counters.corrupt += 1
            log.warning(
                "IoT Core spool: %s ends in a truncated or damaged record (a crash while "
                "writing); it was never acknowledged to its component and is ignored",
                path,
            )
        segment = _Segment(first, path)
        for seq, topic, payload, qos, retain in records:
            self._next_seq = max(self._next_seq, seq + 1)
            if seq in acked or seq in self._messages:
                continue
            self._messages[seq] = SpooledMessage(seq, topic, payload, qos, retain, first)
            self._bytes += len(payload)
            segment.live += 1
        self._next_seq = max(self._next_seq, first + 1)
        if segment.live:
            self._segments[first] = segment
        else:
            path.unlink(missing_ok=True)
            acks_path.unlink(missing_ok=True)

    # ---------------------------------------------------------------- writing
    def append(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool = False,
        *,
        durable: bool = True,
        sync: bool = True,
    ) -> SpooledMessage:
        """Add a message; returns once it is on disk (``durable`` and a disk spool).

        With ``sync=False`` it returns once the record is written, not yet fsynced: the
        caller may send the message meanwhile and must call :meth:`sync` before it tells
        anyone the message is durable. Raises SpoolFullError when it cannot fit even after
        dropping QoS 0 messages.
        """
        size = len(payload)
        with self._lock:
            if self._closed:
                raise SpoolError(
                    f"the IoT Core spool is closed (the device runtime is stopping); the message "
                    f"to {topic!r} was not taken: publish it again once the runtime is back"
                )
            if size > self.max_bytes:
                self.counters.refused += 1
                raise SpoolFullError(
                    f"the message to {topic!r} ({size} bytes) is larger than the whole IoT Core "
                    f"spool (aws.greengrass.Nucleus mqtt.spooler.maxSizeInBytes = "
                    f"{self.max_bytes} bytes); send less per message or raise that limit"
                )
            if self._bytes + size > self.max_bytes:
                self._drop_qos0_for(size)
            if self._bytes + size > self.max_bytes:
                self.counters.refused += 1
                raise SpoolFullError(
                    f"the IoT Core spool is full: {self._bytes} of {self.max_bytes} bytes "
                    "(aws.greengrass.Nucleus mqtt.spooler.maxSizeInBytes) wait for the MQTT "
                    f"broker; the {size}-byte message to {topic!r} was refused. Retry later, "
                    "or raise maxSizeInBytes"
                )
            seq = self._next_seq
            self._next_seq += 1
            on_disk = durable and self.directory is not None
            segment = None
            if on_disk:
                try:
                    segment = self._write(_encode(seq, topic, payload, qos, retain), seq)
                except OSError as exc:
                    raise self._write_failed(topic, exc) from exc
            message = SpooledMessage(seq, topic, payload, qos, retain, segment)
            self._messages[seq] = message
            self._bytes += size
            end = self._written
        if sync and on_disk:
            self._sync_for(topic, end)
        return message

    def sync(self, message: SpooledMessage) -> None:
        """Make ``message`` (appended with ``sync=False``) durable: one fsync covers every
        record written so far. SpoolError naming the folder if the fsync fails."""
        if message.segment is not None:
            with self._lock:
                end = self._written
            self._sync_for(message.topic, end)

    def _sync_for(self, topic: str, end: int) -> None:
        if not self._fsync:
            return
        try:
            self._sync(end)
        except OSError as exc:  # it stays spooled and is sent; the caller may send it again
            raise self._write_failed(topic, exc) from exc

    def _write_failed(self, topic: str, exc: OSError) -> SpoolError:
        """A write or fsync failed (a full disk): later records go to a new segment, so none
        follows a torn one; the error names the folder (holds _lock or not)."""
        self._current_size = self._segment_bytes
        self.counters.refused += 1
        return SpoolError(
            f"cannot write the IoT Core spool in {self.directory} ({exc}); the message to "
            f"{topic!r} may not survive a restart: free disk space there and publish it again"
        )

    def _drop_qos0_for(self, size: int) -> None:
        """Drop the oldest QoS 0 messages until ``size`` more bytes fit (holds _lock)."""
        for seq in [s for s, m in self._messages.items() if m.qos == 0]:
            if self._bytes + size <= self.max_bytes:
                return
            message = self._messages.pop(seq)
            self._bytes -= len(message.payload)
            self.counters.dropped_qos0 += 1
            log.warning(
                "IoT Core spool full (%d bytes): dropped the oldest QoS 0 message, to %r",
                self.max_bytes,
                message.topic,
            )

    def _write(self, record: bytes, seq: int) -> int:
        """Append ``record`` to the current segment, opening a new one as needed (holds _lock)."""
        if self._current is None or self._current_size >= self._segment_bytes:
            self._rotate(seq)
        assert self._fd is not None and self._current is not None
        view = memoryview(record)
        while view:
            view = view[os.write(self._fd, view) :]
        self._current_size += len(record)
        self._written += len(record)
        self._current.live += 1
        return self._current.first

    def _rotate(self, seq: int) -> None:
        assert self.directory is not None
        old = self._current
        if self._fd is not None:
            if self._fsync:
                os.fsync(self._fd)  # what was written to it is durable before it is closed
            self._synced = self._written
            os.close(self._fd)
            self._fd = None
        if old is not None and old.live == 0:
            self._delete(old)
        path = self.directory / f"{seq:016x}.log"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if self._fsync:
            fsync_dir(self.directory)  # the new file's name is durable too
        self._current = self._segments[seq] = _Segment(seq, path)
        self._current_size = 0

    def _sync(self, end: int) -> None:
        """Group commit: one fsync makes every record written so far durable."""
        with self._sync_lock:
            if self._synced >= end:
                return
            with self._lock:
                target = self._written
                fd = os.dup(self._fd) if self._fd is not None else None
            if fd is not None:
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            with self._lock:
                self._synced = max(self._synced, target)

    # ---------------------------------------------------------------- removing
    def ack(self, seq: int) -> None:
        """The broker acknowledged ``seq`` (or a QoS 0 message was sent): forget it."""
        self._remove(seq)

    def drop(self, seq: int) -> bool:
        """Remove ``seq`` unsent (the broker refused it too often; the bridge counts it)."""
        return self._remove(seq)

    def _remove(self, seq: int) -> bool:
        with self._lock:
            message = self._messages.pop(seq, None)
            if message is None:
                return False
            self._bytes -= len(message.payload)
            segment = self._segments.get(message.segment) if message.segment is not None else None
            if segment is None:
                return True
            try:
                if segment.acks_fd is None:
                    segment.acks_fd = os.open(
                        segment.path.with_suffix(".acks"),
                        os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                        0o600,
                    )
                os.write(segment.acks_fd, _SEQ.pack(seq))
                segment.live -= 1
                if segment.live == 0 and segment is not self._current:
                    self._delete(segment)
            except OSError as exc:  # the message is sent; at worst it is sent again after a crash
                log.warning(
                    "IoT Core spool: cannot record the ack of %d in %s: %s", seq, segment.path, exc
                )
            return True

    def _delete(self, segment: _Segment) -> None:
        if segment.acks_fd is not None:
            os.close(segment.acks_fd)
            segment.acks_fd = None
        segment.path.unlink(missing_ok=True)
        segment.path.with_suffix(".acks").unlink(missing_ok=True)
        self._segments.pop(segment.first, None)

    # ---------------------------------------------------------------- reading
    def pending(self) -> list[SpooledMessage]:
        """Every message still in the spool, oldest first."""
        with self._lock:
            return list(self._messages.values())

    def __len__(self) -> int:
        return len(self._messages)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def stats(self) -> dict[str, int | str]:
        with self._lock:
            c = self.counters
            return {
                "storage": self.storage_type,
                "queued": len(self._messages),
                "queued_bytes": self._bytes,
                "max_bytes": self.max_bytes,
                "refused_full": c.refused,
                "dropped_qos0": c.dropped_qos0,
                "replayed": c.replayed,
                "corrupt": c.corrupt,
            }

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._fd is not None:
                if self._fsync:
                    os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None
            current, self._current = self._current, None
            for segment in list(self._segments.values()):
                if segment.acks_fd is not None:
                    os.close(segment.acks_fd)
                    segment.acks_fd = None
                if segment is current and segment.live == 0:
                    self._delete(segment)
