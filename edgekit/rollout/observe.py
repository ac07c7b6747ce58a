"""What the devices say during a rollout: every result and health message, per device.

One subscription to the results and health topics for the whole rollout (opened before
the first deployment, so nothing a device publishes right after it is missed). Windows
are cut by arrival time on this machine (``Message.received_at``): device clocks may
drift, the soak window is ours.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from edgekit.results import subscriber_for
from edgekit.results.subscriber import Message, ResultsSubscriber
from edgekit.rollout.gates import DeviceWindow, device_window
from edgekit.settings import Settings


class FleetObserver:
    """Collects results and health per thing. A context manager (subscribes, closes)."""

    def __init__(self, settings: Settings, subscriber: ResultsSubscriber | None = None) -> None:
        self.settings = settings
        self._subscriber = subscriber
        self._lock = threading.Lock()
        self._results: dict[str, list[tuple[float, dict[str, Any]]]] = defaultdict(list)
        self._health: dict[str, list[tuple[float, dict[str, Any]]]] = defaultdict(list)
        self._seen: set[str] = set()
        self.invalid = 0

    def __enter__(self) -> FleetObserver:
        sub = self._subscriber or subscriber_for(self.settings)
        self._subscriber = sub
        sub.connect()
        sub.subscribe(self.settings.results_topic, self._on_result)
        sub.subscribe(self.settings.health_topic, self._on_health)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._subscriber is not None:
            self._subscriber.close()

    def _parse(self, message: Message) -> dict[str, Any] | None:
        try:
            data = json.loads(message.payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            with self._lock:
                self.invalid += 1  # counted, shown in the report; one bad device stops nothing
            return None
        if not isinstance(data, dict) or not isinstance(data.get("thing_name"), str):
            with self._lock:
                self.invalid += 1
            return None
        return data

    def _on_result(self, message: Message) -> None:
        data = self._parse(message)
        if data is None:
            return
        mid = data.get("message_id")
        with self._lock:
            if isinstance(mid, str):
                if mid in self._seen:
                    return  # a re-send from the device's spool
                self._seen.add(mid)
            self._results[data["thing_name"]].append((message.received_at, data))

    def _on_health(self, message: Message) -> None:
        data = self._parse(message)
        if data is not None:
            with self._lock:
                self._health[data["thing_name"]].append((message.received_at, data))

    # what tests and the workflow use -----------------------------------------------------

    def feed_result(self, data: dict[str, Any], at: float | None = None) -> None:
        self._on_result(Message("", json.dumps(data).encode(), at or time.time()))

    def feed_health(self, data: dict[str, Any], at: float | None = None) -> None:
        self._on_health(Message("", json.dumps(data).encode(), at or time.time()))

    def results(self, thing: str, since: float, until: float | None = None) -> list[dict]:
        with self._lock:
            rows = list(self._results.get(thing, ()))
        return [d for t, d in rows if t >= since and (until is None or t <= until)]

    def health(self, thing: str, since: float | None = None) -> list[dict[str, Any]]:
        with self._lock:
            rows = list(self._health.get(thing, ()))
        return [d for t, d in rows if since is None or t >= since]

    def latest_health(self, thing: str) -> dict[str, Any] | None:
        with self._lock:
            rows = self._health.get(thing)
            return rows[-1][1] if rows else None

    def window(
        self,
        thing: str,
        since: float,
        until: float,
        package_sha256: str | None = None,
        model_version: str | None = None,
        warmup: int = 0,
    ) -> DeviceWindow:
        """``thing`` between ``since`` and ``until``; only results of the given package
        (or model version) when given, so a stale result of the old model never counts."""
        results = [
            r
            for r in self.results(thing, since, until)
            if _is_model(r, package_sha256, model_version)
        ]
        pairs = self._health_pairs(thing)
        before = [d for t, d in pairs if t <= since]
        inside = [d for t, d in pairs if since < t <= until]
        first = before[-1] if before else (inside[0] if inside else None)
        last = inside[-1] if inside else first
        return device_window(thing, results, first, last, warmup=warmup)

    def _health_pairs(self, thing: str) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            return list(self._health.get(thing, ()))

    def windows(
        self,
        things: Iterable[str],
        since: float,
        until: float,
        package_sha256: str | None = None,
        model_version: str | None = None,
        warmup: int = 0,
    ) -> dict[str, DeviceWindow]:
        return {
            t: self.window(t, since, until, package_sha256, model_version, warmup)
            for t in sorted(things)
        }


def _is_model(result: dict[str, Any], sha: str | None, version: str | None) -> bool:
    model = result.get("model") or {}
    reported = model.get("package_sha256")
    if sha is not None and reported is not None:
        return bool(reported == sha)
    if version is not None:
        return bool(model.get("version") == version)
    return True
