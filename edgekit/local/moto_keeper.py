"""When the moto server snapshots its state: after changes, every few seconds, and on stop.

``StateKeeper`` wraps moto's WSGI app. Every request runs under a shared lock; a
request that may change state (any method but GET/HEAD/OPTIONS: the query and JSON
protocols use POST even to read, so this errs on the side of saving) marks the
state dirty when it ends. A background thread takes the lock exclusively every
``SNAPSHOT_INTERVAL`` seconds if the state is dirty, so the snapshot is a consistent
picture between requests, and writes it atomically (``moto_state``). ``stop()``
writes a last snapshot: `edgekit local down` (SIGTERM) loses nothing, a kill -9
loses at most the changes of the last interval.

Must only be imported in the moto server process (it imports moto via
``moto_backends``).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from edgekit.errors import LocalBackendError
from edgekit.local import moto_backends, moto_state

SNAPSHOT_INTERVAL = 2.0  # seconds; a kill -9 loses at most this much of recent changes
_READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _SharedExclusiveLock:
    """Many requests at once, or one snapshot; a waiting snapshot goes before new requests."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class StateKeeper:
    """Restore moto's backends from ``path`` and keep that file up to date."""

    def __init__(self, path: Path, interval: float = SNAPSHOT_INTERVAL) -> None:
        self.path = path
        self.interval = interval
        self._lock = _SharedExclusiveLock()
        self._dirty = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error: str | None = None
        self._last_sha256: str | None = None  # of the payload in the file

    def restore(self) -> list[str]:
        """Load the snapshot, if any, into moto's backends; LocalBackendError if it cannot be."""
        moto_state.remove_stale_temp_files(self.path)
        found = moto_state.read_snapshot(self.path)
        if found is None:
            return []
        header, payload = found
        services = moto_backends.restore_backends(payload, str(self.path))
        self._last_sha256 = header.sha256
        return services

    def wrap(self, app: WsgiApp) -> WsgiApp:
        """``app`` with every request under the shared lock, marking changes."""

        def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            changes = environ.get("REQUEST_METHOD", "GET").upper() not in _READ_ONLY_METHODS
            with self._lock.shared():
                try:
                    return app(environ, start_response)
                finally:
                    if changes:
                        self._dirty = True

        return wrapped

    def start(self) -> None:
        """Snapshot every ``interval`` seconds while something changed, in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="moto-state", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.save_if_dirty()
            except (LocalBackendError, OSError) as exc:  # keep serving; keep the old file
                message = str(exc)
                if message != self._last_error:  # say it once, not every interval
                    print(f"edgekit moto server: ERROR {message}", file=sys.stderr, flush=True)
                    self._last_error = message

    def save_if_dirty(self) -> bool:
        """Write a snapshot if a request may have changed the state since the last one
        (and the state did change: a POST that only read leaves the file alone).

        A failure keeps the previous file, stays dirty (the next call tries again) and is
        recorded next to the file (``moto_state.error_file``) for `local down` to report.
        """
        if not self._dirty:  # a quick look first: no need to hold requests back
            return False
        try:
            with self._lock.exclusive():
                if not self._dirty:
                    return False
                saved_at = time.time()
                self._dirty = False
                try:
                    payload, services = moto_backends.dump_backends()
                except BaseException:
                    self._dirty = True
                    raise
            try:
                digest = moto_state.payload_digest(payload)
                if digest == self._last_sha256:
                    return False
                moto_state.write_snapshot(self.path, payload, services, saved_at, sha256=digest)
            except BaseException:
                self._dirty = True  # try again next time
                raise
        except OSError as exc:
            moto_state.record_save_error(self.path, f"cannot write {self.path}: {exc}")
            raise
        except LocalBackendError as exc:
            moto_state.record_save_error(self.path, str(exc))
            raise
        self._last_sha256 = digest
        self._last_error = None
        moto_state.clear_save_error(self.path)
        return True

    def stop(self) -> bool:
        """Stop the thread and write the last snapshot if needed (errors propagate, so the
        server exits non-zero with the reason); True if one was written."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.save_if_dirty()


__all__ = ["SNAPSHOT_INTERVAL", "StateKeeper"]
