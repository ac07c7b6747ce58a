"""A collector that keeps running in the background and remembers the latest N results.

For live views: the subscriber's network thread only queues messages; a worker
thread validates them and updates a bounded history, then calls listeners (a
widget's refresh). Nothing blocks the notebook's cell.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.results.intake import Intake
from edgekit.results.subscriber import Message, ResultsSubscriber
from edgekit.results.table import ResultsTable
from edgekit.results.transports import subscriber_for
from edgekit.schemas import RESULT
from edgekit.settings import Settings

log = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], None]
_STOP = object()


class LiveCollector:
    """Subscribe in the background; `latest()` is the newest ``maxlen`` results, oldest first.

    >>> with LiveCollector(settings, maxlen=100) as live:  # doctest: +SKIP
    ...     live.wait_for(5, timeout=30)
    ...     live.latest(5)
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        topic: str | None = None,
        maxlen: int = 200,
        validate: bool = True,
        schema: str = RESULT,
        subscriber: ResultsSubscriber | None = None,
    ) -> None:
        if maxlen < 1:
            raise EdgekitError(f"LiveCollector maxlen={maxlen} must be at least 1")
        self.settings = settings or Settings.from_env()
        self.topic = topic or self.settings.results_topic
        self.maxlen = maxlen
        self._owned = subscriber is None
        self._subscriber = subscriber
        self._intake = Intake(
            validate=validate, schema=schema, keep_results=False, max_invalid=maxlen
        )
        self._history: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._listeners: list[Listener] = []
        self._thread: threading.Thread | None = None
        self.received = 0  # every result kept since start (the history holds the newest maxlen)
        self.errors: list[str] = []  # listener failures, newest last

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> LiveCollector:
        if self.running:
            return self
        if self._subscriber is None:
            self._subscriber = subscriber_for(self.settings)
        self._subscriber.connect()
        self._thread = threading.Thread(target=self._work, name="edgekit-live-results", daemon=True)
        self._thread.start()
        try:
            self._subscriber.subscribe(self.topic, self._inbox.put)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Unsubscribe (closing a subscriber we made) and stop the worker; safe to call twice."""
        if self._thread is None:
            return
        sub = self._subscriber
        try:
            if sub is not None:
                if self._owned:
                    sub.close()
                    self._subscriber = None
                else:
                    sub.unsubscribe(self.topic)
        finally:
            self._inbox.put(_STOP)
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> LiveCollector:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- worker -------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self._inbox.get()
            if item is _STOP:
                return
            assert isinstance(item, Message)
            with self._cond:
                result = self._intake.accept(item)
                if result is not None:
                    self._history.append(result)
                    self.received += 1
                self._cond.notify_all()
                listeners = list(self._listeners)
            if result is None:
                continue
            for listener in listeners:
                try:
                    listener(result)
                except Exception as exc:  # a broken widget must not stop collection
                    log.exception("live results listener %r failed", listener)
                    self.errors.append(f"{listener!r}: {exc}")

    # --- reading -----------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(result)`` on the worker thread for each new result."""
        with self._cond:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._cond:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def latest(self, n: int | None = None) -> list[dict[str, Any]]:
        """The newest ``n`` (default all kept) results, oldest first."""
        with self._cond:
            items = list(self._history)
        return items if n is None else items[-n:] if n > 0 else []

    def snapshot(self) -> ResultsTable:
        """The kept history as a table, with the invalid and duplicate counts so far."""
        with self._cond:
            return ResultsTable(
                list(self._history),
                invalid=list(self._intake.invalid),
                duplicates=self._intake.duplicates,
            )

    @property
    def invalid(self) -> int:
        """Messages that failed validation since start (`snapshot().invalid` has the newest)."""
        return self._intake.invalid_count

    @property
    def duplicates(self) -> int:
        return self._intake.duplicates

    def wait_for(self, count: int, timeout: float | None = None) -> bool:
        """Block until ``count`` results were received since start (True) or ``timeout`` (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.received >= count, timeout)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (
            f"LiveCollector({self.topic!r}, {state}, {self.received} received, "
            f"{len(self._history)} kept, {self.invalid} invalid, {self.duplicates} duplicates)"
        )


__all__ = ["LiveCollector"]
