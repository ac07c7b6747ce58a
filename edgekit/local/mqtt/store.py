"""The broker's durable state: persistent sessions, their queued messages, retained messages.

IoT Core never loses a QoS 1 message it acknowledged: a persistent session keeps
its subscriptions and the messages queued for it while the client is away. The
local broker keeps that promise across a crash (kill -9) by recording every
change of that state in a `Journal` (``<directory>/journal``: checksummed
frames, group commit, compaction, a torn tail dropped at open; see
`edgekit.local.mqtt.journal`). A record is one change: a session saved or
ended, a subscription added or removed, a message enqueued for a session or
removed after its PUBACK, a retained message set or cleared.

The broker changes the store on its event loop and acknowledges a publisher
in `when_durable`'s callback, after the changes the publish made are fsynced.

Bounds: queued and retained messages together hold at most ``max_bytes``
(their encoded size); past it `enqueue` returns None and `retain` False, counted
in ``refused`` and logged. The journal stays under about ``compact_ratio`` times
the live data (or ``compact_min_bytes``).

The API speaks the broker's concepts (`StoredSession`, `StoredSubscription`,
`StoredMessage`), not `sessions.py` objects. Times are wall-clock (``time.time()``),
so a session's and a message's expiry keep running while the broker is down.
"""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import LocalBackendError
from edgekit.local.mqtt.journal import Journal

log = logging.getLogger("edgekit.local.mqtt")

MAGIC = b"EDGEKIT-MQTT-STORE 1\n"
JOURNAL = "journal"
LOCK = "lock"

DEFAULT_MAX_BYTES = 256 << 20
DEFAULT_COMPACT_MIN_BYTES = 4 << 20
DEFAULT_COMPACT_RATIO = 4.0

_LEN = struct.Struct(">I")

# Record kinds (first byte of a record).
_NEXT_ID = b"I"[0]
_SESSION = b"S"[0]
_END = b"E"[0]
_SUB = b"B"[0]
_UNSUB = b"U"[0]
_ENQUEUE = b"Q"[0]
_REMOVE = b"X"[0]
_RETAIN = b"R"[0]
_UNRETAIN = b"C"[0]


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A persistent session's own settings; ``disconnected_at`` is None while connected."""

    client_id: str
    protocol_version: int
    expiry_interval: int
    disconnected_at: float | None = None


@dataclass(frozen=True, slots=True)
class StoredSubscription:
    topic_filter: str
    qos: int
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0
    identifier: int | None = None


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message queued for a session (at its delivery QoS) or a retained message.

    ``properties`` are the MQTT 5 properties forwarded to subscribers (JSON
    values, bytes and tuples); ``expires_at`` is a ``time.time()`` deadline.
    ``store_id`` is assigned by the store and increases with every message.
    """

    topic: str
    payload: bytes
    qos: int
    retain: bool = False
    properties: Mapping[str, Any] = field(default_factory=dict)
    expires_at: float | None = None
    subscription_ids: tuple[int, ...] = ()
    store_id: int = 0


@dataclass(slots=True)
class SessionState:
    session: StoredSession
    subscriptions: dict[str, StoredSubscription] = field(default_factory=dict)
    messages: list[StoredMessage] = field(default_factory=list)  # enqueue order


@dataclass(slots=True)
class StoredState:
    sessions: dict[str, SessionState] = field(default_factory=dict)
    retained: dict[str, StoredMessage] = field(default_factory=dict)


# ---------------------------------------------------------------- record encoding
def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"$b": base64.b64encode(value).decode()}
    if isinstance(value, tuple):
        return {"$t": [_jsonable(v) for v in value]}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _unjson(value: Any) -> Any:
    if isinstance(value, dict):
        if "$b" in value:
            return base64.b64decode(value["$b"])
        if "$t" in value:
            return tuple(_unjson(v) for v in value["$t"])
        return {k: _unjson(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unjson(v) for v in value]
    return value


def _record(kind: int, header: dict[str, Any], payload: bytes = b"") -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    return bytes((kind,)) + _LEN.pack(len(head)) + head + payload


def _message_record(kind: int, message: StoredMessage, client_id: str | None) -> bytes:
    header: dict[str, Any] = {"i": message.store_id, "t": message.topic, "q": message.qos}
    if client_id is not None:
        header["c"] = client_id
    if message.retain:
        header["r"] = 1
    if message.properties:
        header["p"] = _jsonable(dict(message.properties))
    if message.expires_at is not None:
        header["e"] = message.expires_at
    if message.subscription_ids:
        header["s"] = list(message.subscription_ids)
    return _record(kind, header, message.payload)


def _session_record(session: StoredSession) -> bytes:
    return _record(
        _SESSION,
        {
            "c": session.client_id,
            "v": session.protocol_version,
            "x": session.expiry_interval,
            "d": session.disconnected_at,
        },
    )


def _sub_record(client_id: str, sub: StoredSubscription) -> bytes:
    return _record(
        _SUB,
        {
            "c": client_id,
            "f": sub.topic_filter,
            "q": sub.qos,
            "n": sub.no_local,
            "a": sub.retain_as_published,
            "h": sub.retain_handling,
            "i": sub.identifier,
        },
    )


def _decode(record: bytes) -> tuple[int, dict[str, Any], bytes]:
    kind = record[0]
    (head_len,) = _LEN.unpack_from(record, 1)
    header = json.loads(record[5 : 5 + head_len])
    return kind, header, record[5 + head_len :]


def _message(header: dict[str, Any], payload: bytes) -> StoredMessage:
    return StoredMessage(
        header["t"],
        payload,
        header["q"],
        bool(header.get("r")),
        _unjson(header.get("p", {})),
        header.get("e"),
        tuple(header.get("s", ())),
        header["i"],
    )


class DurableStore:
    """The broker's durable state in one directory; create it with `DurableStore.open`."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        compact_min_bytes: int = DEFAULT_COMPACT_MIN_BYTES,
        compact_ratio: float = DEFAULT_COMPACT_RATIO,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.refused = 0  # enqueue/retain calls refused by max_bytes
        self.journal = Journal(
            directory / JOURNAL,
            MAGIC,
            live_bytes=self._live_bytes,
            snapshot=self._snapshot,
            compact_min_bytes=compact_min_bytes,
            compact_ratio=compact_ratio,
        )
        self._lock = self.journal.lock  # changes and their records, atomically
        self._sessions: dict[str, StoredSession] = {}
        self._subs: dict[str, dict[str, StoredSubscription]] = {}
        self._queues: dict[str, dict[int, StoredMessage]] = {}
        self._retained: dict[str, StoredMessage] = {}
        self._sizes: dict[tuple[str, int] | str, int] = {}  # message/retained -> record bytes
        self._message_bytes = 0
        self._next_id = 1
        self._lock_fd = -1

    # ------------------------------------------------------------ open / close
    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        compact_min_bytes: int = DEFAULT_COMPACT_MIN_BYTES,
        compact_ratio: float = DEFAULT_COMPACT_RATIO,
    ) -> DurableStore:
        """Lock ``directory`` (created if missing) for this process and replay its journal."""
        store = cls(
            Path(directory),
            max_bytes=max_bytes,
            compact_min_bytes=compact_min_bytes,
            compact_ratio=compact_ratio,
        )
        store._lock_directory()
        try:
            store.journal.open(store._replay)
        except BaseException:
            store.close()
            raise
        return store

    def _lock_directory(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise LocalBackendError(
                f"cannot use {self.directory} as the MQTT broker's state directory: {exc}; "
                "give the broker a writable directory"
            ) from exc
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._lock_fd)
            self._lock_fd = -1
            raise LocalBackendError(
                f"another MQTT broker uses the state directory {self.directory}; stop it "
                "or give this broker another state directory"
            ) from exc

    def close(self) -> None:
        """Write what is pending, stop the journal's writer, unlock the directory; safe twice."""
        self.journal.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> DurableStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ replay
    def _replay(self, record: bytes) -> None:
        try:
            kind, header, payload = _decode(record)
            self._apply(kind, header, payload, len(record))
        except (ValueError, KeyError, TypeError, IndexError, struct.error) as exc:
            raise LocalBackendError(
                f"the broker state journal {self.journal.path} holds a record that does not "
                f"decode ({exc!r}): another edgekit version wrote it, or it is damaged. Move "
                "the directory aside to start without persistent sessions"
            ) from exc

    def _apply(self, kind: int, header: dict[str, Any], payload: bytes, size: int) -> None:
        """Replay one record (``size`` bytes) into the live state."""
        if kind == _ENQUEUE:
            self._add_message(header["c"], _message(header, payload), size)
        elif kind == _REMOVE:
            self._drop_message(header["c"], header["i"])
        elif kind == _SESSION:
            self._put_session(StoredSession(header["c"], header["v"], header["x"], header["d"]))
        elif kind == _SUB:
            sub = StoredSubscription(
                header["f"], header["q"], header["n"], header["a"], header["h"], header["i"]
            )
            self._subs[header["c"]][sub.topic_filter] = sub
        elif kind == _UNSUB:
            self._subs[header["c"]].pop(header["f"], None)
        elif kind == _END:
            self._forget(header["c"])
        elif kind == _RETAIN:
            self._put_retained(_message(header, payload), size)
        elif kind == _UNRETAIN:
            self._drop_retained(header["t"])
        elif kind == _NEXT_ID:
            self._next_id = max(self._next_id, header["i"])
        else:
            raise ValueError(f"unknown record kind {kind!r}")

    # ------------------------------------------------------------ live state (under the lock)
    def _put_session(self, session: StoredSession) -> None:
        self._sessions[session.client_id] = session
        self._subs.setdefault(session.client_id, {})
        self._queues.setdefault(session.client_id, {})

    def _forget(self, client_id: str) -> None:
        self._sessions.pop(client_id, None)
        self._subs.pop(client_id, None)
        for store_id in list(self._queues.pop(client_id, {})):
            self._message_bytes -= self._sizes.pop((client_id, store_id), 0)

    def _add_message(self, client_id: str, message: StoredMessage, size: int) -> None:
        self._queues[client_id][message.store_id] = message
        self._sizes[(client_id, message.store_id)] = size
        self._message_bytes += size
        self._next_id = max(self._next_id, message.store_id + 1)

    def _drop_message(self, client_id: str, store_id: int) -> bool:
        queue = self._queues.get(client_id)
        if queue is None or queue.pop(store_id, None) is None:
            return False
        self._message_bytes -= self._sizes.pop((client_id, store_id))
        return True

    def _put_retained(self, message: StoredMessage, size: int) -> None:
        self._drop_retained(message.topic)
        self._retained[message.topic] = message
        self._sizes[message.topic] = size
        self._message_bytes += size
        self._next_id = max(self._next_id, message.store_id + 1)

    def _drop_retained(self, topic: str) -> bool:
        if self._retained.pop(topic, None) is None:
            return False
        self._message_bytes -= self._sizes.pop(topic)
        return True

    def _require(self, client_id: str) -> None:
        if client_id not in self._sessions:
            raise LocalBackendError(
                f"the broker state store has no session {client_id!r}; save_session() it first"
            )

    def _live_bytes(self) -> int:
        return self._message_bytes + 64 * (len(self._sessions) + len(self._sizes))

    def _snapshot(self) -> Iterator[bytes]:
        """Under the lock: records that rebuild the live state (messages encoded lazily)."""
        records = [_record(_NEXT_ID, {"i": self._next_id})]
        for client_id, session in self._sessions.items():
            records.append(_session_record(session))
            records.extend(_sub_record(client_id, s) for s in self._subs[client_id].values())
        queued = [(c, list(q.values())) for c, q in self._queues.items()]
        retained = list(self._retained.values())

        def generate() -> Iterator[bytes]:
            yield from records
            for client_id, messages in queued:
                for message in messages:
                    yield _message_record(_ENQUEUE, message, client_id)
            for message in retained:
                yield _message_record(_RETAIN, message, None)

        return generate()

    # ------------------------------------------------------------ public changes
    def save_session(self, session: StoredSession) -> None:
        """Add or update a persistent session (its subscriptions and queue are kept)."""
        with self._lock:
            self.journal.append(_session_record(session))
            self._put_session(session)

    def end_session(self, client_id: str) -> None:
        """Forget a session with its subscriptions and queued messages."""
        with self._lock:
            if client_id in self._sessions:
                self.journal.append(_record(_END, {"c": client_id}))
                self._forget(client_id)

    def subscribe(self, client_id: str, sub: StoredSubscription) -> None:
        with self._lock:
            self._require(client_id)
            self.journal.append(_sub_record(client_id, sub))
            self._subs[client_id][sub.topic_filter] = sub

    def unsubscribe(self, client_id: str, topic_filter: str) -> None:
        with self._lock:
            if topic_filter in self._subs.get(client_id, {}):
                self.journal.append(_record(_UNSUB, {"c": client_id, "f": topic_filter}))
                del self._subs[client_id][topic_filter]

    def enqueue(self, client_id: str, message: StoredMessage) -> int | None:
        """Queue ``message`` for a session; its store id, or None if over ``max_bytes``."""
        with self._lock:
            self._require(client_id)
            message = _with_id(message, self._next_id)
            record = _message_record(_ENQUEUE, message, client_id)
            if self._message_bytes + len(record) > self.max_bytes:
                self._refuse(f"a message for {client_id!r} on {message.topic!r}", len(record))
                return None
            self.journal.append(record)
            self._add_message(client_id, message, len(record))
            return message.store_id

    def remove(self, client_id: str, store_id: int) -> None:
        """A queued message was acknowledged (or dropped): forget it."""
        with self._lock:
            if store_id in self._queues.get(client_id, {}):
                self.journal.append(_record(_REMOVE, {"c": client_id, "i": store_id}))
                self._drop_message(client_id, store_id)

    def retain(self, message: StoredMessage) -> bool:
        """Set the retained message of its topic; False if over ``max_bytes``."""
        with self._lock:
            message = _with_id(message, self._next_id)
            record = _message_record(_RETAIN, message, None)
            old = self._sizes.get(message.topic, 0)
            if self._message_bytes - old + len(record) > self.max_bytes:
                self._refuse(f"the retained message of {message.topic!r}", len(record))
                return False
            self.journal.append(record)
            self._put_retained(message, len(record))
            return True

    def clear_retained(self, topic: str) -> None:
        with self._lock:
            if topic in self._retained:
                self.journal.append(_record(_UNRETAIN, {"t": topic}))
                self._drop_retained(topic)

    def _refuse(self, what: str, size: int) -> None:
        self.refused += 1
        if self.refused == 1 or self.refused % 1000 == 0:
            log.warning(
                "broker state store %s is full (%d of %d bytes): refused %s of %d bytes "
                "(%d refused so far)",
                self.directory,
                self._message_bytes,
                self.max_bytes,
                what,
                size,
                self.refused,
            )

    # ------------------------------------------------------------ reading
    def load(self) -> StoredState:
        """The live state: sessions with subscriptions and queued messages (in enqueue
        order), and retained messages."""
        with self._lock:
            state = StoredState(retained=dict(self._retained))
            for client_id, session in self._sessions.items():
                state.sessions[client_id] = SessionState(
                    session,
                    dict(self._subs[client_id]),
                    list(self._queues[client_id].values()),
                )
            return state

    @property
    def message_bytes(self) -> int:
        """Encoded bytes of the queued and retained messages (bounded by ``max_bytes``)."""
        return self._message_bytes

    # ------------------------------------------------------------ durability
    @property
    def pending(self) -> bool:
        """True while some change is not yet on disk."""
        return self.journal.pending

    def commit(self, timeout: float | None = None) -> None:
        """Block until every change made so far is on disk (fsynced)."""
        self.journal.commit(timeout)

    def when_durable(self, callback: Callable[[BaseException | None], None]) -> None:
        """On the event loop: ``callback(None)`` once every change so far is on disk, or
        ``callback(error)`` if writing failed. Callbacks run in the order of the calls."""
        self.journal.when_durable(callback)

    async def wait_durable(self) -> None:
        """`when_durable` as a coroutine."""
        await self.journal.wait_durable()


def _with_id(message: StoredMessage, store_id: int) -> StoredMessage:
    return StoredMessage(
        message.topic,
        message.payload,
        message.qos,
        message.retain,
        message.properties,
        message.expires_at,
        message.subscription_ids,
        store_id,
    )
