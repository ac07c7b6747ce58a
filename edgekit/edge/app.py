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
- Health (``health.schema.json`` v2) goes out every ``HealthInterval`` seconds
  and once right after the first result is published: per model, what the
  agent verified (package sha256, key fingerprint) and its counts since start
  and over the last ``HealthWindow`` seconds (:mod:`edgekit.edge.stats`); a summary goes
  to the named device shadow ``HealthShadow`` too (:mod:`edgekit.edge.health_shadow`).
- Shadow mode: with ``ShadowPackagePath`` set, a candidate model runs on the
  same frames (:mod:`edgekit.edge.shadow`); it is measured and compared with
  the current model in health, and its results are never published.
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
from pathlib import Path
from typing import Any

from edgekit.agent.client import AgentClient
from edgekit.agent.heap import trim
from edgekit.edge.config import AppConfig, parse_config
from edgekit.edge.health import (
    CURRENT,
    DEGRADED,
    RUNNING,
    STARTING,
    STOPPING,
    Health,
    model_entry,
)
from edgekit.edge.health_shadow import HealthShadowReporter
from edgekit.edge.inference import Inspection, Inspector, SkipImage
from edgekit.edge.ipc import GreengrassIpc
from edgekit.edge.messages import ImageCycle, result_message, utc_iso
from edgekit.edge.shadow import ShadowRunner
from edgekit.edge.spool import Spool
from edgekit.edge.stats import ModelStats
from edgekit.errors import AgentError, ConfigurationError, EdgekitError, ModelError

log = logging.getLogger("edgekit.edge")

AGENT_STARTUP_TIMEOUT = 60.0
RETRY_MIN, RETRY_MAX = 0.1, 5.0
DRAIN_ON_STOP = 3.0
_CAPTURE_ID = re.compile(r"[^A-Za-z0-9._-]")


class FatalError(EdgekitError):
    """The component cannot work with what it was given; it reports ERRORED and exits."""


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
        self.started_at = utc_iso(time.time())
        self.current_stats = ModelStats()
        self.shadow: ShadowRunner | None = None
        self.shadow_reporter = HealthShadowReporter()
        self._current_key: tuple[Any, ...] | None = None
        self._health_soon = threading.Event()
        self._first_result_published = False
        self._model_problem: str | None = None
        """The current model's last failure (an agent error), until it inspects again."""
        self.unattributed_published = 0
        """Results published for another model than the current one (an earlier run's spool)."""
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
        self._health_soon.set()
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
            config = dataclasses.replace(config, spool_dir=self.work_dir / config.spool_dir)
        if config.shadow_package is not None and not config.shadow_package.is_absolute():
            # Relative to the nucleus's work folder, which holds every component's work folder.
            shadow = self.work_dir.parent / config.shadow_package
            config = dataclasses.replace(config, shadow_package=shadow)
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
        self.current_stats.set_window(new.health_window)
        if old is None or (new.shadow_package, new.shadow_model_name, new.agent_socket) != (
            old.shadow_package,
            old.shadow_model_name,
            old.agent_socket,
        ):
            self._configure_shadow(new)
        elif self.shadow is not None:
            self.shadow.set_window(new.health_window)
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
                model = self.inspector.load(config.model_name, config.model_package)
                identity = self.inspector.identity
                key = (model.name, model.version, identity.get("package_sha256"))
                if key != self._current_key:  # another model: its counts start from zero
                    self._current_key = key
                    self.current_stats = ModelStats(config.health_window)
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

    def _configure_shadow(self, config: AppConfig) -> None:
        """Start, replace or stop the shadow model as ShadowPackagePath says."""
        if self.shadow is not None:
            self.shadow.stop()
            self.shadow = None
        if config.shadow_package is None:
            return
        self.shadow = ShadowRunner(
            self.agent_factory(config.agent_socket),
            config.shadow_package,
            name=config.shadow_model_name,
            window_seconds=config.health_window,
            use_shared_memory=config.use_shared_memory,
            score_threshold=lambda: self.config.score_threshold if self.config else None,
        ).start()
        log.info(
            "shadow model from %s: measured on every frame, never published", config.shadow_package
        )

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
                if message.topic == (self.config.results_topic if self.config else None):
                    self._count_published(message.payload)
            if failed:
                if self._stop.is_set():
                    time.sleep(delay)
                else:
                    self._stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX)
            else:
                delay = RETRY_MIN

    def _count_published(self, payload: bytes) -> None:
        """Count a delivered result for the current model (if it is the current model's)."""
        try:
            model = json.loads(payload).get("model") or {}
        except (ValueError, AttributeError) as exc:  # our own spool: should not happen
            log.warning("a published result is not a JSON object (%s); not counted", exc)
            self.unattributed_published += 1
            return
        current = self.inspector.model if self.inspector is not None else None
        sha = self.inspector.identity.get("package_sha256") if self.inspector else None
        if (
            current is not None
            and model.get("name") == current.name
            and model.get("version") == current.version
            and model.get("package_sha256") == sha
        ):
            self.current_stats.record_published()
        else:
            self.unattributed_published += 1
        if not self._first_result_published:
            self._first_result_published = True
            self._health_soon.set()  # the first result is out: say so without waiting

    def model_entries(self) -> list[dict[str, Any]]:
        """The health message's ``models``: the current model, then the shadow if configured."""
        entries = []
        inspector = self.inspector
        if inspector is not None and inspector.model is not None:
            entries.append(
                model_entry(
                    CURRENT,
                    name=inspector.model.name,
                    version=inspector.model.version,
                    identity=inspector.identity,
                    stats=self.current_stats.snapshot(),
                    state="failed" if self._model_problem else "running",
                    problem=self._model_problem,
                )
            )
        if self.shadow is not None:
            entries.append(self.shadow.entry())
        return entries

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
            started_at=self.started_at,
            models=self.model_entries(),
            other_model_results=self.unattributed_published,
        )

    def publish_health(self) -> None:
        if self.config is None:
            return
        message = self.health_message()
        payload = json.dumps(message, separators=(",", ":")).encode()
        try:
            self.ipc.publish_to_iot_core(self.config.health_topic, payload, qos=1)
        except Exception as exc:
            self.health.health_publish_errors += 1  # reported in the next health message
            log.warning(
                "health message not published to %s (%d so far): %r",
                self.config.health_topic,
                self.health.health_publish_errors,
                exc,
            )
        shadow = (self.config.health_shadow, self.config.health_shadow_interval)  # when due
        self.shadow_reporter.report(self.ipc, self.health, self.thing_name, *shadow, message)

    def _health_loop(self) -> None:
        while not self._stop.is_set():
            self.publish_health()
            trim()  # the C heap's free pages back to the system; here, no image waits for it
            interval = self.config.health_interval if self.config else 5.0
            self._health_soon.wait(interval)
            self._health_soon.clear()

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
        total_ms = (time.perf_counter() - start) * 1000.0
        identity = {
            "name": model.name,
            "version": model.version,
            "package_sha256": self.inspector.identity.get("package_sha256") or "",
        }
        built: dict[str, Any] = {}

        def build(sequence: int) -> tuple[bytes, str]:
            # The sequence is taken in the same spool transaction that stores the result.
            message_id = f"{self.thing_name}-{self.spool.spool_id}-{sequence:010d}"[-128:]
            built["message"] = result_message(
                inspection,
                thing_name=self.thing_name,
                model=identity,
                message_id=message_id,
                sequence=sequence,
                total_ms=total_ms,
            )
            return json.dumps(built["message"], separators=(",", ":")).encode(), message_id

        self.spool.append_next(config.results_topic, build)
        message = built["message"]
        self.health.record_processed()
        self.current_stats.record_inference(total_ms, message["defect"])
        if self.shadow is not None and inspection.frame is not None:
            self.shadow.submit(inspection.frame, message["detections"], message["defect"])
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
        self.current_stats.set_window(self.config.health_window)
        self._configure_shadow(self.config)
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
                    self._model_problem = None
                    delay = RETRY_MIN
                    if self.health.state == DEGRADED:
                        self.health.set_state(RUNNING)
                except AgentError as exc:
                    self.current_stats.record_error()
                    self._model_problem = f"model {self.config.model_name} on {path.name}: {exc}"
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
        if self.shadow is not None:
            self.shadow.stop()
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
