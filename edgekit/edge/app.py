"""The inference app of the ``com.qualityinspection`` component: ``python -m edgekit.edge.app``.

Every ``InferenceInterval`` seconds it takes the next image of
``ImageDirectory`` (cycling through the folder, re-listed each round), asks the
model agent for a prediction, and publishes one result message per image to
``PublishResultsOnTopic`` through Greengrass IPC (PublishToIoTCore, QoS 1).

- Results are written to the on-disk spool first; a publisher thread delivers
  them in order and deletes each only after PublishToIoTCore returned.
- An unreadable image is skipped, counted and named in the periodic health
  message on ``HealthTopic``; an unchanged bad file is not retried.
- Images whose best score falls in ``CaptureBand`` go to the agent's
  CaptureData (for relabeling).
- The configuration is re-read on every SubscribeToConfigurationUpdate event;
  new values apply from the next image on, without a restart.
- The app reports RUNNING once the model is loaded, and ERRORED (with the
  reason in the component log) on a fatal error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgekit.agent.client import AgentClient
from edgekit.edge.config import AppConfig, parse_config
from edgekit.edge.health import DEGRADED, RUNNING, STARTING, STOPPING, Health
from edgekit.edge.inference import Inspection, Inspector, SkipImage
from edgekit.edge.ipc import GreengrassIpc
from edgekit.edge.spool import Spool
from edgekit.errors import AgentError, ConfigurationError, EdgekitError, ModelError

log = logging.getLogger("edgekit.edge")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
AGENT_STARTUP_TIMEOUT = 60.0
RETRY_MIN, RETRY_MAX = 0.1, 5.0
DRAIN_ON_STOP = 3.0
_CAPTURE_ID = re.compile(r"[^A-Za-z0-9._-]")


class FatalError(EdgekitError):
    """The component cannot work with what it was given; it reports ERRORED and exits."""


def utc_iso(ts: float) -> str:
    """``2026-11-23T10:00:00.123Z`` (milliseconds, truncated) for epoch seconds ``ts``."""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def result_message(
    inspection: Inspection,
    *,
    thing_name: str,
    model: Mapping[str, str],
    message_id: str,
    sequence: int,
    total_ms: float,
) -> dict[str, Any]:
    """The result message of DESIGN.md / result.schema.json for one inspection."""
    detections = []
    for det in inspection.detections:
        item = det.to_json()
        if item["box"][2] > 0 and item["box"][3] > 0:  # rounding may flatten a sliver
            detections.append(item)
    return {
        "timestamp": utc_iso(inspection.read_time),
        "thing_name": thing_name,
        "image_name": inspection.image_name,
        "model": {"name": model["name"], "version": model["version"]},
        "detections": detections,
        "defect": bool(detections),
        "latency_ms": {**inspection.latency_ms, "total": round(total_ms, 3)},
        "message_id": message_id,
        "sequence": sequence,
    }


class ImageCycle:
    """The images of a folder in name order, re-listed at the start of each round."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._names: list[Path] = []
        self._index = 0

    def _list(self) -> list[Path]:
        try:
            entries = sorted(p for p in self.folder.iterdir() if p.is_file())
        except OSError as exc:
            raise ConfigurationError(
                f"ImageDirectory {self.folder} cannot be read ({exc.strerror or exc}); set "
                "ImageDirectory to an existing folder of images"
            ) from exc
        return [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES]

    def next(self) -> Path | None:
        if self._index >= len(self._names):
            self._names = self._list()
            self._index = 0
            if not self._names:
                return None
        path = self._names[self._index]
        self._index += 1
        return path


class InferenceApp:
    """The component's work; ``run()`` until ``stop()``. Returns the exit code."""

    def __init__(
        self,
        ipc: Any,
        *,
        thing_name: str,
        env: Mapping[str, str] | None = None,
        agent_factory: Callable[[str], Any] | None = None,
        work_dir: Path | None = None,
    ) -> None:
        self.ipc = ipc
        self.thing_name = thing_name
        self.env = dict(os.environ if env is None else env)
        self.work_dir = work_dir or Path.cwd()
        self.agent_factory = agent_factory or _default_agent
        self.health = Health()
        self.config: AppConfig | None = None
        self.spool: Spool | None = None
        self.agent: Any = None
        self.inspector: Inspector | None = None
        self._stop = threading.Event()
        self._config_changed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._bad_files: dict[Path, tuple[float, int]] = {}

    # --- control ---------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        self._config_changed.set()
        if self.spool is not None:
            self.spool.wake()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    # --- configuration ---------------------------------------------------------------------

    def _read_config(self) -> AppConfig:
        raw = self.ipc.get_configuration([])
        config = parse_config(raw or {}, self.env, thing_name=self.thing_name)
        if not config.spool_dir.is_absolute():
            config = _replace(config, spool_dir=self.work_dir / config.spool_dir)
        return config

    def _on_config_change(self, key_path: list[str]) -> None:
        log.info("configuration changed at /%s", "/".join(key_path))
        self._config_changed.set()

    def _apply_config_update(self) -> None:
        self._config_changed.clear()
        old = self.config
        try:
            new = self._read_config()
        except Exception as exc:  # ConfigurationError, or IPC trouble
            # A bad update must not stop inspection: keep the last good configuration.
            log.error("configuration update refused, keeping the previous values: %s", exc)
            return
        self.config = new
        assert self.spool is not None
        self.spool.max_messages = new.spool_max_messages
        self.spool.max_bytes = new.spool_max_bytes
        if old is not None and (
            new.model_name != old.model_name
            or new.model_package != old.model_package
            or new.agent_socket != old.agent_socket
        ):
            self._connect_agent(new)
        if self.inspector is not None:
            self.inspector.use_shared_memory = new.use_shared_memory
        log.info(
            "configuration: interval %.3f s, threshold %s, capture band %s, images %s",
            new.inference_interval,
            "model" if new.score_threshold is None else new.score_threshold,
            new.capture_band,
            new.image_directory,
        )

    # --- the model agent -------------------------------------------------------------------

    def _connect_agent(self, config: AppConfig, timeout: float = AGENT_STARTUP_TIMEOUT) -> None:
        """Connect to the agent and load the model; FatalError if the package is refused."""
        if self.agent is not None:
            with contextlib.suppress(Exception):
                self.agent.close()
        self.agent = self.agent_factory(config.agent_socket)
        self.inspector = Inspector(self.agent, use_shared_memory=config.use_shared_memory)
        deadline = time.monotonic() + timeout
        delay = RETRY_MIN
        while True:
            try:
                self.agent.wait_ready(timeout=min(5.0, max(0.1, deadline - time.monotonic())))
                self.inspector.load(config.model_name, config.model_package)
                return
            except AgentError as exc:
                code = getattr(exc, "code", "")
                if code not in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
                    raise FatalError(
                        f"the model agent refused model {config.model_name} from "
                        f"{config.model_package}: {exc}"
                    ) from exc
                if time.monotonic() >= deadline or self._stop.is_set():
                    raise FatalError(
                        f"no model agent answers on {config.agent_socket} after {timeout:.0f} s "
                        f"({exc}); is the agent component running?"
                    ) from exc
            except ModelError as exc:
                raise FatalError(str(exc)) from exc
            self._stop.wait(delay)
            delay = min(delay * 2, RETRY_MAX)

    # --- threads ---------------------------------------------------------------------------

    def _publish_loop(self) -> None:
        """Deliver the spool in order; delete a message only after PublishToIoTCore returned."""
        assert self.spool is not None
        spool = self.spool
        delay = RETRY_MIN
        drain_until: float | None = None
        while True:
            if self._stop.is_set():
                if drain_until is None:
                    drain_until = time.monotonic() + DRAIN_ON_STOP
                if spool.pending == 0 or time.monotonic() >= drain_until:
                    return
            elif not spool.wait(0.5):
                continue
            failed = False
            for message in spool.peek(64):
                try:
                    self.ipc.publish_to_iot_core(message.topic, message.payload, qos=1)
                except Exception as exc:
                    self.health.publish_errors += 1
                    if (
                        self.health.publish_errors in (1, 10)
                        or self.health.publish_errors % 100 == 0
                    ):
                        log.warning(
                            "PublishToIoTCore failed (%d so far; %d results spooled): %r",
                            self.health.publish_errors,
                            spool.pending,
                            exc,
                        )
                    if "closed" in str(exc).lower() or "connection" in str(exc).lower():
                        self.ipc.reconnect()
                    failed = True
                    break
                spool.delete(message)
            if failed:
                if self._stop.is_set():
                    time.sleep(delay)
                else:
                    self._stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX)
            else:
                delay = RETRY_MIN

    def health_message(self, *, sequence: int | None = None) -> dict[str, Any]:
        model = None
        if self.inspector is not None and self.inspector.model is not None:
            model = {"name": self.inspector.model.name, "version": self.inspector.model.version}
        return self.health.message(
            timestamp=utc_iso(time.time()),
            thing_name=self.thing_name,
            spool_pending=self.spool.pending if self.spool else 0,
            spool_dropped=self.spool.dropped if self.spool else 0,
            model=model,
        )

    def publish_health(self) -> None:
        if self.config is None:
            return
        payload = json.dumps(self.health_message(), separators=(",", ":")).encode()
        try:
            self.ipc.publish_to_iot_core(self.config.health_topic, payload, qos=1)
        except Exception as exc:
            log.warning("health message not published: %r", exc)

    def _health_loop(self) -> None:
        while not self._stop.is_set():
            self.publish_health()
            interval = self.config.health_interval if self.config else 30.0
            self._stop.wait(interval)

    # --- one image -------------------------------------------------------------------------

    def _is_known_bad(self, path: Path) -> bool:
        seen = self._bad_files.get(path)
        if seen is None:
            return False
        try:
            st = path.stat()
        except OSError:
            return True
        if (st.st_mtime, st.st_size) == seen:
            return True
        del self._bad_files[path]  # the file changed: try it again
        return False

    def _skip(self, path: Path, reason: str) -> None:
        try:
            st = path.stat()
            self._bad_files[path] = (st.st_mtime, st.st_size)
        except OSError:
            self._bad_files[path] = (0.0, -1)
        self.health.record_skip(path.name, reason)
        log.warning("skipped image %s: %s", path.name, reason)

    def inspect_one(self, path: Path) -> dict[str, Any] | None:
        """Inspect ``path`` and spool its result; None if the image was skipped."""
        config = self.config
        assert config is not None and self.spool is not None and self.inspector is not None
        start = time.perf_counter()
        band = config.capture_band
        try:
            inspection = self.inspector.inspect(
                path,
                score_threshold=config.score_threshold,
                band_low=band[0] if band else None,
                keep_bytes=band is not None,
            )
        except SkipImage as exc:
            self._skip(path, str(exc))
            return None
        model = self.inspector.require()
        sequence = self.spool.next_sequence()
        message_id = f"{self.thing_name}-{self.spool.spool_id}-{sequence:010d}"[-128:]
        message = result_message(
            inspection,
            thing_name=self.thing_name,
            model={"name": model.name, "version": model.version},
            message_id=message_id,
            sequence=sequence,
            total_ms=(time.perf_counter() - start) * 1000.0,
        )
        payload = json.dumps(message, separators=(",", ":")).encode()
        self.spool.append(config.results_topic, payload, message_id)
        self.health.record_processed()
        if band is not None and band[0] <= inspection.best_score <= band[1]:
            self._capture(inspection, message, model.name)
        return message

    def _capture(self, inspection: Inspection, message: dict[str, Any], model: str) -> None:
        capture_id = _CAPTURE_ID.sub("_", message["message_id"]).lstrip("._-")[:128]
        try:
            self.agent.capture_data(
                model,
                capture_id,
                aux_inputs={"image": ("NONE", inspection.image_bytes)},
                aux_outputs={"result": ("JSON", json.dumps(message).encode())},
                inference_time=inspection.read_time,
            )
            self.health.captures += 1
        except AgentError as exc:
            self.health.capture_errors += 1
            if self.health.capture_errors in (1, 10) or self.health.capture_errors % 100 == 0:
                log.warning("CaptureData failed (%d so far): %s", self.health.capture_errors, exc)

    # --- the main loop ---------------------------------------------------------------------

    def start(self) -> None:
        """Read the configuration, open the spool, start the publisher and load the model."""
        self.config = self._read_config()
        self.spool = Spool(
            self.config.spool_dir / "results.sqlite3",
            max_messages=self.config.spool_max_messages,
            max_bytes=self.config.spool_max_bytes,
        )
        if self.spool.pending:
            log.info("%d results from an earlier run wait in the spool", self.spool.pending)
        self.ipc.subscribe_to_configuration_update(self._on_config_change)
        for target, name in ((self._publish_loop, "publisher"), (self._health_loop, "health")):
            thread = threading.Thread(target=target, name=f"edgekit-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._connect_agent(self.config)
        self.health.set_state(RUNNING)
        self.ipc.update_state("RUNNING")
        log.info(
            "inspecting %s every %.3f s with %s %s; results to %s",
            self.config.image_directory,
            self.config.inference_interval,
            self.inspector.model.name if self.inspector and self.inspector.model else "?",
            self.inspector.model.version if self.inspector and self.inspector.model else "?",
            self.config.results_topic,
        )

    def loop(self, max_images: int | None = None) -> None:
        """Inspect images until stopped (or ``max_images`` were handled)."""
        assert self.config is not None
        cycle = ImageCycle(self.config.image_directory)
        next_at = time.monotonic()
        handled = 0
        delay = RETRY_MIN
        while not self._stop.is_set():
            if self._config_changed.is_set():
                self._apply_config_update()
                if self._stop.is_set():
                    break
                if cycle.folder != self.config.image_directory:
                    cycle = ImageCycle(self.config.image_directory)
            try:
                path = cycle.next()
            except ConfigurationError as exc:
                self.health.set_state(DEGRADED, str(exc))
                log.error("%s", exc)
                path = None
            if path is not None and not self._is_known_bad(path):
                try:
                    self.inspect_one(path)
                    delay = RETRY_MIN
                    if self.health.state == DEGRADED:
                        self.health.set_state(RUNNING)
                except AgentError as exc:
                    self.health.set_state(DEGRADED, str(exc))
                    log.warning("the model agent failed on %s: %s; retrying", path.name, exc)
                    self._stop.wait(delay)
                    delay = min(delay * 2, RETRY_MAX)
                    with contextlib.suppress(AgentError, FatalError):
                        self._connect_agent(self.config, timeout=1.0)
                handled += 1
                if max_images is not None and handled >= max_images:
                    return
            next_at += self.config.inference_interval
            now = time.monotonic()
            if next_at < now - self.config.inference_interval:
                next_at = now  # fell behind (slow model, agent retry): do not burst to catch up
            if next_at > now:
                self._config_changed.wait(next_at - now)

    def close(self) -> None:
        """Stop the threads (the publisher drains briefly), say goodbye, close the spool."""
        self.health.set_state(STOPPING)
        self.stop()
        for thread in self._threads:
            thread.join(DRAIN_ON_STOP + 2.0)
        self.publish_health()
        if self.agent is not None:
            with contextlib.suppress(Exception):
                self.agent.close()
        if self.spool is not None:
            self.spool.close()

    def run(self) -> int:
        """The component's life: start, inspect until SIGTERM, close. Exit code 0 or 1."""
        self.health.set_state(STARTING)
        try:
            self.start()
            self.loop()
            return 0
        except (FatalError, EdgekitError) as exc:
            log.error("fatal: %s", exc)
            with contextlib.suppress(Exception):
                self.ipc.update_state("ERRORED")
            return 1
        finally:
            self.close()


def _replace(config: AppConfig, **changes: Any) -> AppConfig:
    return dataclasses.replace(config, **changes)


def _default_agent(socket_path: str) -> Any:
    return AgentClient(socket_path, timeout=30.0)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("EDGEKIT_LOG_LEVEL", "INFO").upper(),
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    thing = os.environ.get("AWS_IOT_THING_NAME", "")
    if not thing:
        log.error("AWS_IOT_THING_NAME is not set: run this app as a Greengrass component")
        return 1
    ipc = GreengrassIpc()
    app = InferenceApp(ipc, thing_name=thing)

    def on_signal(signum: int, frame: object) -> None:
        log.info("signal %d: stopping", signum)
        app.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        return app.run()
    finally:
        ipc.close()


if __name__ == "__main__":
    sys.exit(main())
