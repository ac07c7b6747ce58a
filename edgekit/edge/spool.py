"""An on-disk, ordered, bounded spool of MQTT messages waiting for the broker.

Why: the Greengrass nucleus spools QoS 1 messages in memory only, so a
component or nucleus restart during an outage would lose results. The app
appends every result here first (one sqlite3 transaction) and a publisher
thread delivers the oldest message, deleting it only after PublishToIoTCore
returned. Delivery is in append order; a message that fails is retried before
any later one is sent.

Each message carries a ``message_id`` chosen by the writer. Appending an id
that is already spooled is a no-op (idempotent), and the id is part of the
payload, so a re-send after a crash (published, but not yet deleted) reaches
receivers as a duplicate they can drop.

Bounds: at most ``max_messages`` messages and ``max_bytes`` payload bytes.
Policy when full: the OLDEST messages are dropped to make room for the new
one, and every dropped message is counted (``dropped``, persisted) so the
health message can report the loss. Newest results are the ones an operator
acts on; the oldest are the most likely to be stale anyway.

Durability: WAL journal with ``synchronous=NORMAL``: a crash or kill of the
component loses nothing that ``append`` returned; a power loss may lose the
last few appends (use ``synchronous="FULL"`` to trade latency for that).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from edgekit.errors import ConfigurationError, SpoolError

_T = TypeVar("_T")

DEFAULT_MAX_MESSAGES = 10_000
DEFAULT_MAX_BYTES = 50 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class SpooledMessage:
    seq: int
    """Position in the spool (increasing in append order)."""
    message_id: str
    topic: str
    payload: bytes


class Spool:
    """``Spool(path)``: append, peek the oldest, delete after delivery; thread-safe."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        synchronous: str = "NORMAL",
    ) -> None:
        if max_messages < 1:
            raise ConfigurationError(f"spool max_messages={max_messages} must be at least 1")
        if max_bytes < 1:
            raise ConfigurationError(f"spool max_bytes={max_bytes} must be at least 1")
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL"):
            raise ConfigurationError(f"spool synchronous={synchronous!r}: use NORMAL or FULL")
        self.path = Path(path)
        self.max_messages = int(max_messages)
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None, timeout=10.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise SpoolError(
                f"{self.path}: cannot open the result spool ({exc}); check the folder is "
                "writable, or delete a damaged spool file (its pending results are lost)"
            ) from exc
        self.spool_id = self._meta("spool_id") or self._init_spool_id()
        self._count, self._bytes = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages"
        ).fetchone()

    # --- meta ------------------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta(key, value) VALUES(?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _init_spool_id(self) -> str:
        """A random id per spool file: message ids stay unique if the spool is ever recreated."""
        value = secrets.token_hex(4)
        with self._lock:
            self._set_meta("spool_id", value)
        return value

    @property
    def last_sequence(self) -> int:
        """The last sequence number `append_next` used (-1 before the first); it keeps
        increasing over restarts."""
        with self._lock:
            return int(self._meta("sequence") or "-1")

    # --- writing ---------------------------------------------------------------------------

    def append(self, topic: str, payload: bytes, message_id: str) -> bool:
        """Spool one message; False if ``message_id`` is already spooled (nothing changes).

        When the spool is full the oldest messages are dropped (and counted) first.
        A message larger than ``max_bytes`` on its own is refused with SpoolError.
        """
        self._check_size(message_id, len(payload))
        with self._changed:
            return self._transaction(lambda: self._insert(topic, payload, message_id))

    def append_next(self, topic: str, build: Callable[[int], tuple[bytes, str]]) -> int:
        """Take the next sequence number and spool the message ``build(sequence)`` returns
        (its payload and message id) in ONE transaction; the sequence.

        A sequence number is used if and only if its message was spooled: a crash at any
        point leaves no gap a receiver could mistake for a lost result.
        """

        def work() -> int:
            sequence = int(self._meta("sequence") or "-1") + 1
            self._set_meta("sequence", str(sequence))
            payload, message_id = build(sequence)
            self._check_size(message_id, len(payload))
            if not self._insert(topic, payload, message_id):
                raise SpoolError(
                    f"{self.path}: message id {message_id} is already spooled; a message id "
                    "must be unique per sequence number"
                )
            return sequence

        with self._changed:
            return self._transaction(work)

    def _check_size(self, message_id: str, size: int) -> None:
        if size > self.max_bytes:
            raise SpoolError(
                f"message {message_id} is {size} bytes, more than the spool's limit of "
                f"{self.max_bytes} bytes; raise SpoolMaxBytes"
            )

    def _transaction(self, work: Callable[[], _T]) -> _T:
        """Run ``work`` in one IMMEDIATE transaction (the caller holds the lock); counts
        and waiters follow only a committed change."""
        counts = self._count, self._bytes
        self._db.execute("BEGIN IMMEDIATE")
        try:
            answer = work()
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            self._count, self._bytes = counts
            raise
        self._changed.notify_all()
        return answer

    def _insert(self, topic: str, payload: bytes, message_id: str) -> bool:
        """Insert inside a transaction, dropping (and counting) the oldest when full."""
        size = len(payload)
        cur = self._db.execute(
            "INSERT OR IGNORE INTO messages(message_id, topic, payload, size) VALUES(?, ?, ?, ?)",
            (message_id, topic, sqlite3.Binary(payload), size),
        )
        if cur.rowcount == 0:
            return False
        count, total = self._count + 1, self._bytes + size
        dropped = 0
        while count > self.max_messages or total > self.max_bytes:
            seq, old_size = self._db.execute(
                "SELECT seq, size FROM messages ORDER BY seq LIMIT 1"
            ).fetchone()
            self._db.execute("DELETE FROM messages WHERE seq = ?", (seq,))
            count, total, dropped = count - 1, total - old_size, dropped + 1
        if dropped:
            self._set_meta("dropped", str(int(self._meta("dropped") or "0") + dropped))
        self._count, self._bytes = count, total
        return True

    def delete(self, message: SpooledMessage | int) -> None:
        """Remove a delivered message (by SpooledMessage or seq); unknown ones are ignored."""
        seq = message.seq if isinstance(message, SpooledMessage) else int(message)
        with self._lock:
            row = self._db.execute("SELECT size FROM messages WHERE seq = ?", (seq,)).fetchone()
            if row is None:
                return
            self._db.execute("DELETE FROM messages WHERE seq = ?", (seq,))
            self._count -= 1
            self._bytes -= int(row[0])

    # --- reading ---------------------------------------------------------------------------

    def peek(self, limit: int = 1) -> list[SpooledMessage]:
        """The oldest ``limit`` messages, oldest first (they stay in the spool)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, message_id, topic, payload FROM messages ORDER BY seq LIMIT ?",
                (int(limit),),
            ).fetchall()
        return [SpooledMessage(int(s), str(m), str(t), bytes(p)) for s, m, t, p in rows]

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a message is pending (True) or ``timeout`` passed (False)."""
        with self._changed:
            if self._count > 0:
                return True
            self._changed.wait(timeout)
            return self._count > 0

    def wake(self) -> None:
        """Wake every thread blocked in :meth:`wait` (e.g. to stop it)."""
        with self._changed:
            self._changed.notify_all()

    @property
    def pending(self) -> int:
        return int(self._count)

    @property
    def pending_bytes(self) -> int:
        return int(self._bytes)

    @property
    def dropped(self) -> int:
        """Messages dropped because the spool was full, since the spool file was created."""
        with self._lock:
            return int(self._meta("dropped") or "0")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self.pending
