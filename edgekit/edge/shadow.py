"""Shadow mode: a candidate model runs on the current model's frames and is only measured.

The inference component configuration's ``ShadowPackagePath`` names a second
model package (typically installed by a ``com.qualityinspection.model.shadow``
component made from the model recipe template). :class:`ShadowRunner` asks the
agent to verify and load it beside the current model (under the agent name
``shadow-<name>``), and a worker thread runs it on every frame the current
model inspected, compares the two (:mod:`edgekit.edge.agreement`) and counts
latency, defects and errors (:mod:`edgekit.edge.stats`).

Its results are never published and never change the current model's: frames
reach the worker through a small queue after the current result is spooled;
when the shadow falls behind, frames are dropped for the shadow and counted
(``frames_dropped``). A shadow that cannot load stays in state ``failed``
with the problem in health and is retried every ``RELOAD_INTERVAL`` seconds
(its component may arrive after the configuration that names it).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from edgekit.edge.agreement import AgreementStats, compare_frame
from edgekit.edge.health import SHADOW, model_entry
from edgekit.edge.inference import Frame, Inspector, read_manifest
from edgekit.edge.stats import ModelStats
from edgekit.errors import AgentError, EdgekitError

log = logging.getLogger(__name__)

LOADING, RUNNING, FAILED, STOPPED = "loading", "running", "failed", "stopped"
RELOAD_INTERVAL = 10.0
QUEUE_FRAMES = 2
SHADOW_PREFIX = "shadow-"
_AGENT_NAME = re.compile(r"[^a-zA-Z0-9]+")


def agent_name_for(name: str) -> str:
    """The agent API name of a shadow model: ``shadow-<name>`` with other characters as dashes."""
    cleaned = _AGENT_NAME.sub("-", name).strip("-") or "model"
    return f"{SHADOW_PREFIX}{cleaned}"[:100].rstrip("-")


class ShadowRunner:
    """Loads the candidate and runs it on submitted frames in its own thread."""

    def __init__(
        self,
        agent: Any,
        package: Path,
        *,
        name: str = "",
        window_seconds: float = 60.0,
        use_shared_memory: bool = True,
        score_threshold: Callable[[], float | None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.agent = agent
        self.package = package
        self.configured_name = name
        self.name = name or package.name
        self.version: str | None = None
        self.agent_name = agent_name_for(self.name)
        self.inspector = Inspector(agent, use_shared_memory=use_shared_memory)
        self.score_threshold = score_threshold
        self.stats = ModelStats(window_seconds, clock=clock)
        self.agreement = AgreementStats(window_seconds, clock=clock)
        self.state = LOADING
        self.problem: str | None = None
        self.frames_dropped = 0
        self._queue: queue.Queue[tuple[Frame, list[dict[str, Any]], bool]] = queue.Queue(
            QUEUE_FRAMES
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0

    # --- control ---------------------------------------------------------------------------

    def start(self) -> ShadowRunner:
        self._thread = threading.Thread(target=self._run, name="edgekit-shadow", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker and unload the candidate from the agent (failures are logged)."""
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)  # type: ignore[arg-type]  # wakes the worker
        if self._thread is not None:
            self._thread.join(timeout)
        if self.state == RUNNING:
            try:
                self.agent.unload_model(self.agent_name)
            except AgentError as exc:
                log.warning("shadow model %s not unloaded from the agent: %s", self.name, exc)
        self.state = STOPPED
        with contextlib.suppress(Exception):
            self.agent.close()

    def set_window(self, seconds: float) -> None:
        self.stats.set_window(seconds)
        self.agreement.set_window(seconds)

    def submit(self, frame: Frame, current: Sequence[Mapping[str, Any]], defect: bool) -> bool:
        """Hand the shadow a frame the current model inspected; False (counted) if it is busy."""
        if self._stop.is_set():
            return False
        try:
            self._queue.put_nowait((frame, [dict(d) for d in current], defect))
            return True
        except queue.Full:
            self.frames_dropped += 1
            return False

    # --- the worker ------------------------------------------------------------------------

    def _fail(self, what: str, exc: BaseException) -> None:
        self._failures += 1
        self.problem = f"shadow model {self.name} ({self.package}): {what}: {exc}"
        if self._failures in (1, 10) or self._failures % 100 == 0:
            log.warning("%s (%d failure(s) so far)", self.problem, self._failures)

    def _load(self) -> bool:
        self.state = LOADING
        self.inspector.identity = {}
        try:
            manifest = read_manifest(self.package)
            if not self.configured_name and manifest.get("name"):
                self.name = str(manifest["name"])
                self.agent_name = agent_name_for(self.name)
            self.agent.wait_ready(timeout=5.0)
            model = self.inspector.load(self.agent_name, self.package)
        except (EdgekitError, OSError) as exc:
            self.state = FAILED
            self._fail("cannot be loaded", exc)
            return False
        self.version = model.version
        self.state = RUNNING
        self.problem = None
        log.info(
            "shadow model %s %s loaded as %s from %s (sha256 %s); its results are not published",
            self.name,
            model.version,
            self.agent_name,
            self.package,
            self.inspector.identity.get("package_sha256"),
        )
        return True

    def _run(self) -> None:
        next_load = 0.0
        while not self._stop.is_set():
            if self.state != RUNNING:
                if time.monotonic() < next_load:
                    self._stop.wait(min(1.0, next_load - time.monotonic()))
                    continue
                if not self._load():
                    next_load = time.monotonic() + RELOAD_INTERVAL
                    continue
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is None or self._stop.is_set():
                continue
            self.run_frame(*item)

    def run_frame(self, frame: Frame, current: list[dict[str, Any]], current_defect: bool) -> None:
        """Infer on ``frame`` and compare with the current model's detections (never raises)."""
        start = time.perf_counter()
        try:
            inspection = self.inspector.inspect_frame(frame, score_threshold=self.score_threshold())
        except AgentError as exc:
            self.stats.record_error()
            self._fail("failed on " + frame.image_name, exc)
            if getattr(exc, "code", "") in ("NOT_FOUND", "UNAVAILABLE"):
                self.state = FAILED  # the agent restarted or lost it: reload
            return
        except EdgekitError as exc:  # a model whose outputs cannot be decoded
            self.stats.record_error()
            self._fail("failed on " + frame.image_name, exc)
            return
        # Like the current model's latency (a result's latency_ms.total), it includes reading
        # and decoding the frame, which the shadow shares: the two are compared like for like.
        total = frame.read_ms + (time.perf_counter() - start) * 1000.0
        detections = [d.to_json() for d in inspection.detections]
        detections = [d for d in detections if d["box"][2] > 0 and d["box"][3] > 0]
        defect = bool(detections)
        self.stats.record_inference(total, defect)
        self.stats.record_published()  # a shadow "result" is a frame inferred on, never sent
        self.agreement.record(compare_frame(current, detections, current_defect=current_defect))
        if self.problem is not None and self.state == RUNNING:
            self.problem = None

    # --- health ----------------------------------------------------------------------------

    def entry(self) -> dict[str, Any]:
        """This shadow's entry of the health message's ``models``."""
        return model_entry(
            SHADOW,
            name=self.name,
            version=self.version,
            identity=self.inspector.identity,
            stats=self.stats.snapshot(),
            state=self.state,
            problem=self.problem,
            agreement=self.agreement.snapshot(),
            frames_dropped=self.frames_dropped,
        )
