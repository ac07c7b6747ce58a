"""What the inference component tells the operator about itself, every few seconds.

One health message (``health.schema.json``) carries the counters since the
component started, the most recent skipped images with their reason, the
spool's pending and dropped counts, the model in use and a coarse state.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

STARTING, RUNNING, DEGRADED, STOPPING = "starting", "running", "degraded", "stopping"
STATES = (STARTING, RUNNING, DEGRADED, STOPPING)
MAX_SKIPPED = 20
MAX_REASON = 1000


class Health:
    """Counters and the bounded list of skipped images; thread-safe."""

    def __init__(self, max_skipped: int = MAX_SKIPPED) -> None:
        self._lock = threading.Lock()
        self.processed = 0
        self.skipped_count = 0
        self._skipped: deque[dict[str, str]] = deque(maxlen=max_skipped)
        self.state = STARTING
        self.problem: str | None = None
        self.captures = 0
        self.capture_errors = 0
        self.publish_errors = 0

    def record_processed(self) -> None:
        with self._lock:
            self.processed += 1

    def record_skip(self, image_name: str, reason: str) -> None:
        with self._lock:
            self.skipped_count += 1
            self._skipped.append({"image_name": image_name[:1024], "reason": reason[:MAX_REASON]})

    def set_state(self, state: str, problem: str | None = None) -> None:
        if state not in STATES:
            raise ValueError(f"health state {state!r} is not one of {', '.join(STATES)}")
        with self._lock:
            self.state = state
            self.problem = problem

    @property
    def skipped(self) -> list[dict[str, str]]:
        with self._lock:
            return list(self._skipped)

    def message(
        self,
        *,
        timestamp: str,
        thing_name: str,
        spool_pending: int,
        spool_dropped: int,
        model: dict[str, str] | None,
        message_id: str | None = None,
        sequence: int | None = None,
    ) -> dict[str, Any]:
        """The health message, as ``health.schema.json`` describes it."""
        with self._lock:
            msg: dict[str, Any] = {
                "timestamp": timestamp,
                "thing_name": thing_name,
                "images_processed": self.processed,
                "images_skipped": self.skipped_count,
                "skipped": list(self._skipped),
                "spool": {"pending": int(spool_pending), "dropped": int(spool_dropped)},
                "model": dict(model) if model else None,
                "state": self.state,
            }
        if message_id is not None:
            msg["message_id"] = message_id
        if sequence is not None:
            msg["sequence"] = int(sequence)
        return msg
