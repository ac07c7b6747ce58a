"""Collect result messages into a table: until N messages or T seconds, whichever comes first."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Any

from edgekit.errors import ConfigurationError
from edgekit.progress import progress
from edgekit.results.intake import Intake
from edgekit.results.subscriber import Message, ResultsSubscriber
from edgekit.results.table import ResultsTable
from edgekit.results.transports import subscriber_for
from edgekit.schemas import RESULT
from edgekit.settings import Settings

#: How often a collection without a timeout wakes up (so Ctrl-C / "interrupt kernel" works).
POLL_S = 0.25


def collect(
    settings: Settings | None = None,
    *,
    topic: str | None = None,
    max_messages: int | None = None,
    timeout: float | None = None,
    on_message: Callable[[dict[str, Any]], None] | None = None,
    validate: bool = True,
    schema: str = RESULT,
    subscriber: ResultsSubscriber | None = None,
    desc: str = "results",
) -> ResultsTable:
    """Subscribe to the results topic and gather messages until ``max_messages`` or ``timeout``.

    Each message is validated against the result schema (invalid ones land in
    ``table.invalid`` with the reason), repeats of a ``message_id`` are dropped,
    and ``on_message(result)`` is called for every kept result. With a
    ``subscriber`` given, collect connects it if needed and leaves it open;
    otherwise it makes one for ``settings.backend`` and closes it. Results come
    back in arrival order; ``table.timed_out`` tells whether the timeout ended it.
    For health reports pass ``topic=settings.health_topic, schema="health"``.
    """
    if max_messages is None and timeout is None:
        raise ConfigurationError(
            "collect() would wait forever: pass max_messages=N, timeout=SECONDS, or both"
        )
    if max_messages is not None and max_messages < 1:
        raise ConfigurationError(f"max_messages={max_messages} must be at least 1")
    if timeout is not None and timeout <= 0:
        raise ConfigurationError(f"timeout={timeout} must be a positive number of seconds")
    settings = settings or Settings.from_env()
    topic = topic or settings.results_topic
    owned = subscriber is None
    sub = subscriber_for(settings) if subscriber is None else subscriber
    inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()
    intake = Intake(validate=validate, schema=schema)
    deadline = None if timeout is None else time.monotonic() + timeout
    timed_out = False
    try:
        sub.connect()
        sub.subscribe(topic, inbox.put)
        try:
            with progress(total=max_messages, desc=desc, unit="msg") as bar:
                while max_messages is None or len(intake.results) < max_messages:
                    wait = POLL_S if deadline is None else deadline - time.monotonic()
                    if wait <= 0:
                        timed_out = True
                        break
                    try:
                        message = inbox.get(timeout=min(wait, POLL_S))
                    except queue.Empty:
                        continue
                    problems = len(intake.invalid), intake.duplicates
                    result = intake.accept(message)
                    if result is not None:
                        bar.update(1)
                        if on_message is not None:
                            on_message(result)
                    elif problems != (len(intake.invalid), intake.duplicates):
                        bar.set_postfix(invalid=len(intake.invalid), duplicates=intake.duplicates)
        finally:
            if not owned:
                sub.unsubscribe(topic)
    finally:
        if owned:
            sub.close()
    table = intake.table()
    table.timed_out = timed_out
    return table


__all__ = ["collect"]
