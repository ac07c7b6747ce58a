"""Per-model counters for health reports: since the app started and over a sliding window.

For each model the app serves (the current one, and a shadow candidate) it
counts images inferred, results published, errors, latency p50/p95 and the
defect rate, twice: since start, and over the last ``window_seconds``
(HealthWindow, default 60 s). Percentiles are nearest-rank (see
:func:`percentile`); the window's are exact, the since-start ones are exact
up to ``RESERVOIR`` images and then computed from a uniform random sample of
that size (Vitter's algorithm R), so memory stays bounded on a device that
runs for months.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

RESERVOIR = 10_000
MAX_WINDOW_EVENTS = 200_000
"""A bound on the window's memory; beyond it the oldest events leave early (counted)."""
DEFAULT_WINDOW = 60.0

INFERENCE, ERROR, PUBLISHED = "inference", "error", "published"


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``p`` % of values <= it.

    None for no values. ``percentile([1, 2, 3, 4], 50) == 2``,
    ``percentile(range(1, 101), 95) == 95``.
    """
    if not values:
        return None
    if not 0 < p <= 100:
        raise ValueError(f"percentile p={p!r} must be in (0, 100]")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return float(ordered[rank - 1])


def counts(
    images: int, published: int, errors: int, defects: int, latencies: Sequence[float]
) -> dict[str, Any]:
    """The COUNTS object of health.schema.json."""
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    return {
        "images": images,
        "results_published": published,
        "errors": errors,
        "latency_ms": {
            "p50": None if p50 is None else round(p50, 3),
            "p95": None if p95 is None else round(p95, 3),
        },
        "defect_rate": round(defects / images, 6) if images else None,
    }


class ModelStats:
    """Thread-safe counters of one model; ``clock`` is monotonic seconds (injectable for tests)."""

    def __init__(
        self,
        window_seconds: float = DEFAULT_WINDOW,
        *,
        clock: Callable[[], float] = time.monotonic,
        reservoir: int = RESERVOIR,
        seed: int | None = None,
    ) -> None:
        if window_seconds <= 0:
            raise ValueError(f"window_seconds={window_seconds!r} must be > 0")
        self.window_seconds = float(window_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        self._reservoir_size = reservoir
        self._random = random.Random(seed)
        self.images = 0
        self.published = 0
        self.errors = 0
        self.defects = 0
        self._latencies: list[float] = []
        self._events: deque[tuple[float, str, float, bool]] = deque()
        self.window_overflow = 0
        """Events that left the window early because it held MAX_WINDOW_EVENTS."""

    def _add(self, kind: str, latency: float = 0.0, defect: bool = False) -> None:
        now = self._clock()
        self._events.append((now, kind, latency, defect))
        if len(self._events) > MAX_WINDOW_EVENTS:
            self._events.popleft()
            self.window_overflow += 1
        self._expire(now)

    def _expire(self, now: float) -> None:
        horizon = now - self.window_seconds
        while self._events and self._events[0][0] < horizon:
            self._events.popleft()

    def record_inference(self, latency_ms: float, defect: bool) -> None:
        """One image inferred on, taking ``latency_ms``, judged defective or not."""
        latency = float(latency_ms)
        with self._lock:
            self.images += 1
            self.defects += bool(defect)
            if len(self._latencies) < self._reservoir_size:
                self._latencies.append(latency)
            else:
                slot = self._random.randrange(self.images)
                if slot < self._reservoir_size:
                    self._latencies[slot] = latency
            self._add(INFERENCE, latency, bool(defect))

    def record_error(self) -> None:
        """One image this model failed on (the agent refused or the model failed to run)."""
        with self._lock:
            self.errors += 1
            self._add(ERROR)

    def record_published(self, n: int = 1) -> None:
        """``n`` results delivered (PublishToIoTCore returned), or shadow frames inferred."""
        with self._lock:
            for _ in range(n):
                self.published += 1
                self._add(PUBLISHED)

    def set_window(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"window seconds={seconds!r} must be > 0")
        with self._lock:
            self.window_seconds = float(seconds)

    def snapshot(self) -> dict[str, Any]:
        """``{"since_start": COUNTS, "window": COUNTS + {"seconds": ...}}``."""
        with self._lock:
            self._expire(self._clock())
            since = counts(self.images, self.published, self.errors, self.defects, self._latencies)
            images = published = errors = defects = 0
            latencies: list[float] = []
            for _, kind, latency, defect in self._events:
                if kind == INFERENCE:
                    images += 1
                    defects += defect
                    latencies.append(latency)
                elif kind == ERROR:
                    errors += 1
                else:
                    published += 1
            window = counts(images, published, errors, defects, latencies)
            window["seconds"] = self.window_seconds
        return {"since_start": since, "window": window}
