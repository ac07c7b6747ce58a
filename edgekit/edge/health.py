"""What the inference component tells the operator about itself, every few seconds.

One health message (``health.schema.json``, version 2) carries the counters
since the component started, the most recent skipped images with their
reason, the spool's pending and dropped counts, the model in use and a coarse
state, and one ``models`` entry per model the app serves (the current one and
an optional shadow candidate, see :func:`model_entry`): what the agent
verified (package sha256, key fingerprint) and how the model does since start
and over the last window.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

STARTING, RUNNING, DEGRADED, STOPPING = "starting", "running", "degraded", "stopping"
STATES = (STARTING, RUNNING, DEGRADED, STOPPING)
CURRENT, SHADOW = "current", "shadow"
MODEL_STATES = ("loading", "running", "failed", "stopped")
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
        """Failed PublishToIoTCore calls for results (each retried from the spool)."""
        self.health_publish_errors = 0
        """Health messages that could not be published (not retried: the next one replaces it)."""

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
        started_at: str | None = None,
        models: list[dict[str, Any]] | None = None,
        other_model_results: int | None = None,
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
            msg["publish_errors"] = {
                "results": self.publish_errors,
                "health": self.health_publish_errors,
            }
            if other_model_results is not None:
                msg["other_model_results"] = int(other_model_results)
            if started_at is not None:
                msg["started_at"] = started_at
            if models is not None:
                msg["models"] = list(models)
            if self.problem:
                msg["problem"] = self.problem[:MAX_REASON]
        if message_id is not None:
            msg["message_id"] = message_id
        if sequence is not None:
            msg["sequence"] = int(sequence)
        return msg


def model_entry(
    role: str,
    *,
    name: str,
    version: str | None,
    identity: Mapping[str, str | None],
    stats: Mapping[str, Any],
    state: str,
    problem: str | None = None,
    agreement: Mapping[str, Any] | None = None,
    frames_dropped: int | None = None,
) -> dict[str, Any]:
    """One entry of the health message's ``models`` (health.schema.json ``$defs/model_entry``).

    ``identity`` is what the agent reported at load (Inspector.identity):
    version, package_sha256, package_sha256_source and key_fingerprint; a key
    it did not report is null. ``stats`` is ModelStats.snapshot().
    """
    if role not in (CURRENT, SHADOW):
        raise ValueError(f"model role {role!r} is not {CURRENT!r} or {SHADOW!r}")
    if state not in MODEL_STATES:
        raise ValueError(f"model state {state!r} is not one of {', '.join(MODEL_STATES)}")
    entry: dict[str, Any] = {
        "role": role,
        "name": name,
        "version": version or identity.get("version") or "unknown",
        "package_sha256": identity.get("package_sha256") or None,
        "package_sha256_source": identity.get("package_sha256_source") or None,
        "key_fingerprint": identity.get("key_fingerprint") or None,
        "state": state,
        "since_start": dict(stats["since_start"]),
        "window": dict(stats["window"]),
    }
    if problem:
        entry["problem"] = problem[:MAX_REASON]
    if agreement is not None:
        entry["agreement"] = {k: dict(v) for k, v in agreement.items()}
    if frames_dropped is not None:
        entry["frames_dropped"] = int(frames_dropped)
    return entry
