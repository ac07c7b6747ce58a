"""Exports: S3 export tasks (with status streams) and Kinesis Data Streams batches.

A stream whose definition has an ``s3TaskExecutor`` export holds
``S3ExportTaskDefinition`` JSON messages (``inputUrl`` ``file://`` path, ``bucket``,
``key``, ``userMetadata``). For each message, in sequence order, the exporter uploads
the file to the bucket (S3 as the device's components reach it: the emulated S3 on
the local backend) and appends ``StatusMessage`` JSON to the configured status stream:
``InProgress`` then ``Success`` (INFO) or ``Failure`` (ERROR), filtered by the
configured ``statusLevel``. Progress per export identifier is kept with the stream
(``exportStatuses`` of DescribeMessageStream; on disk for File streams, so a restart
does not upload twice). Keys may hold ``!{timestamp:<pattern>}`` (Java date patterns:
yyyy, MM, dd, HH, mm, ss), replaced with the upload time in UTC. Kinesis exports
(``kinesis``) are batched by ``edgekit.local.streammanager.kinesis``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from edgekit.local.streammanager import kinesis
from edgekit.local.streammanager.definitions import (
    MIN_MULTIPART_THRESHOLD,
    DefinitionError,
    KinesisConfig,
    S3ExecutorConfig,
    S3Task,
    parse_s3_task,
)
from edgekit.local.streammanager.store import StoreError, StreamStore, now_ms

__all__ = ["Exporter", "expand_key", "status_message"]

log = logging.getLogger(__name__)
SUCCESS, FAILURE, IN_PROGRESS, WARNING = 0, 1, 2, 3
ERROR, WARN, INFO = 0, 1, 2
S3_TASK_EVENT = 0
RETRY_SECONDS = 5.0  # before a failed Kinesis batch is tried again
_PATTERN = re.compile(r"!\{timestamp:([a-zA-Z/]+)\}")
_JAVA = [("yyyy", "%Y"), ("yy", "%y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M")]
_JAVA += [("ss", "%S")]


def expand_key(key: str, when: datetime) -> str:
    """``key`` with each ``!{timestamp:pattern}`` replaced by ``when`` in that pattern."""

    def one(match: re.Match[str]) -> str:
        fmt = match.group(1)
        for java, strf in _JAVA:
            fmt = fmt.replace(java, strf)
        return when.strftime(fmt)

    return _PATTERN.sub(one, key)


def status_message(
    status: int, level: int, message: str, stream: str, identifier: str, seq: int, task: Any
) -> bytes:
    """A StatusMessage as the SDK's ``Util.deserialize_json_bytes_to_obj`` reads it."""
    context: dict[str, Any] = {
        "exportIdentifier": identifier,
        "streamName": stream,
        "sequenceNumber": seq,
    }
    if isinstance(task, dict):
        context["s3ExportTaskDefinition"] = task
    body = {
        "eventType": S3_TASK_EVENT,
        "statusLevel": level,
        "status": status,
        "statusContext": context,
        "message": message,
        "timestampEpochMs": now_ms(),
    }
    return json.dumps(body).encode()


class Exporter:
    """Runs the exports of every stream (S3 tasks, Kinesis); ``notify(name)`` after appends.

    ``aws_client(service)`` makes the boto3 client of ``"s3"`` or ``"kinesis"``."""

    def __init__(
        self,
        store: StreamStore,
        aws_client: Callable[[str], Any],
        *,
        threads: int = 5,
        min_part_size: int = MIN_MULTIPART_THRESHOLD,
        sweep: float = 1.0,
    ) -> None:
        self.store = store
        self._aws_client = aws_client
        self._clients: dict[str, Any] = {}
        self._retry_at: dict[tuple[str, str], float] = {}
        self.min_part_size = max(min_part_size, MIN_MULTIPART_THRESHOLD)
        self.sweep = sweep
        self._pool = ThreadPoolExecutor(max_workers=max(threads, 1), thread_name_prefix="export")
        self._busy: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="export-dispatch", daemon=True)

    def start(self) -> Exporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(5)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def notify(self, name: str) -> None:
        self._wake.set()

    def _client(self, service: str) -> Any:
        with self._lock:
            client = self._clients.get(service)
            if client is None:
                client = self._clients[service] = self._aws_client(service)
            return client

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.sweep)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.store.expire_all()
                self._dispatch()
            except Exception:  # the dispatcher must outlive one bad stream; logged in full
                log.exception("export dispatch failed")

    def _dispatch(self) -> None:
        now = time.monotonic()
        with self.store.lock:
            jobs = [
                (name, config)
                for name, stream in self.store.streams.items()
                for config in [*stream.definition.s3_exports, *stream.definition.kinesis_exports]
                if not config.disabled
                and stream.next_seq > self._next(name, config)
                and self._retry_at.get((name, config.identifier), 0.0) <= now
            ]
        for name, config in jobs:
            key = (name, config.identifier)
            with self._lock:
                if key in self._busy:
                    continue
                self._busy.add(key)
            self._pool.submit(self._drain, name, config)

    def _next(self, name: str, config: S3ExecutorConfig | KinesisConfig) -> int:
        """The next sequence number to export (messages deleted meanwhile are skipped)."""
        stream = self.store.streams[name]
        progress = stream.progress.get(config.identifier)
        if progress is None:
            start = getattr(config, "start_sequence_number", 0)
        else:
            start = int(progress.get("lastExportedSequenceNumber", -1)) + 1
        return max(start, stream.oldest)

    def _drain(self, name: str, config: S3ExecutorConfig | KinesisConfig) -> None:
        try:
            while not self._stop.is_set():
                with self.store.lock:
                    if name not in self.store.streams:
                        return
                    start = self._next(name, config)
                    progress = self.store.streams[name].progress.get(config.identifier, {})
                    last = int(progress.get("lastExportTime", 0))
                batch = config.batch_size if isinstance(config, KinesisConfig) else 10
                try:
                    messages = self.store.read(name, start, 1, batch)
                except StoreError as exc:
                    log.error("export %s of stream %s: %s", config.identifier, name, exc)
                    self._retry_at[(name, config.identifier)] = time.monotonic() + RETRY_SECONDS
                    return
                if isinstance(config, KinesisConfig):
                    now = now_ms()
                    if not kinesis.ready(config, len(messages), last, now):
                        # a partial batch waits for batchIntervalMillis after the last export
                        wait = (last + (config.batch_interval_millis or 0) - now) / 1000
                        self._retry_at[(name, config.identifier)] = time.monotonic() + wait
                        return
                    if not self._kinesis(name, config, messages):
                        return
                    continue
                for message in messages:
                    if self._stop.is_set():
                        return
                    self._export(name, config, message)
        except Exception:  # one export's bug must not end the exporter; logged in full
            log.exception("export %s of stream %s failed", config.identifier, name)
        finally:
            with self._lock:
                self._busy.discard((name, config.identifier))
            self._wake.set()

    def _kinesis(self, name: str, config: KinesisConfig, messages: list[dict[str, Any]]) -> bool:
        """One PutRecords batch; False when it must be tried again later."""
        taken, error = kinesis.put_batch(self._client("kinesis"), config, messages)
        if error:
            log.error("Kinesis export %s of stream %s: %s", config.identifier, name, error)
            self._retry_at[(name, config.identifier)] = time.monotonic() + RETRY_SECONDS
        else:
            self._retry_at.pop((name, config.identifier), None)
        done = messages[:taken]
        self._progress(
            name,
            config.identifier,
            done[-1]["sequenceNumber"] if done else None,
            sum(len(m["payload"]) for m in done),
            len(done),
            error,
        )
        return not error

    def _progress(
        self, name: str, identifier: str, seq: int | None, size: int, count: int, error: str
    ) -> None:
        with self.store.lock:
            stream = self.store.streams.get(name)
            if stream is None:
                return
            progress = stream.progress.setdefault(identifier, {})
            if seq is not None:
                progress["lastExportedSequenceNumber"] = seq
                progress["lastExportTime"] = now_ms()
            progress["exportedBytesFromStream"] = (
                int(progress.get("exportedBytesFromStream", 0)) + size
            )
            progress["exportedMessagesCount"] = (
                int(progress.get("exportedMessagesCount", 0)) + count
            )
            if error:
                progress["errorMessage"] = error
            else:
                progress.pop("errorMessage", None)
            stream.save_progress()

    def _export(self, name: str, config: S3ExecutorConfig, message: dict[str, Any]) -> None:
        seq = message["sequenceNumber"]
        payload: bytes = message["payload"]
        raw: Any = None
        error = where = ""
        try:
            raw = json.loads(payload.decode("utf-8"))
            task = parse_s3_task(raw)
        except (UnicodeDecodeError, ValueError, DefinitionError) as exc:
            error = f"message {seq} of stream {name} is not a valid S3ExportTaskDefinition: {exc}"
        if not error:
            self._status(config, name, seq, raw, IN_PROGRESS, INFO, "the upload started")
            error, where = self._upload(task, config)
        # progress first: a reader that sees the status sees it too
        self._progress(name, config.identifier, seq, len(payload), 1, error)
        if error:
            log.error("S3 export %s of stream %s: %s", config.identifier, name, error)
            self._status(config, name, seq, raw, FAILURE, ERROR, error)
        else:
            self._status(config, name, seq, raw, SUCCESS, INFO, f"uploaded {task.path} to {where}")

    def _upload(self, task: S3Task, export: S3ExecutorConfig) -> tuple[str, str]:
        """(error text or "", the s3:// URL written)."""
        key = expand_key(task.key, datetime.now(UTC))
        metadata = {
            str(k): str(v)
            for k, v in task.user_metadata.items()
            if not str(k).startswith("$aws-gg-")
        }
        threshold = export.multipart_threshold or MIN_MULTIPART_THRESHOLD
        config = TransferConfig(
            multipart_threshold=threshold, multipart_chunksize=self.min_part_size
        )
        url = f"s3://{task.bucket}/{key}"
        started = time.monotonic()
        try:
            self._client("s3").upload_file(
                task.path, task.bucket, key, ExtraArgs={"Metadata": metadata}, Config=config
            )
        except FileNotFoundError:
            return f"the file {task.path} of inputUrl {task.input_url} does not exist", url
        except (OSError, ClientError, BotoCoreError) as exc:
            return f"uploading {task.path} to {url} failed: {exc}", url
        log.info("uploaded %s to %s in %.2f s", task.path, url, time.monotonic() - started)
        return "", url

    def _status(
        self,
        config: S3ExecutorConfig,
        name: str,
        seq: int,
        task: Any,
        status: int,
        level: int,
        text: str,
    ) -> None:
        if config.status_stream is None or level > config.status_level:
            return
        body = status_message(status, level, text, name, config.identifier, seq, task)
        try:
            self.store.append(config.status_stream, body)
        except StoreError as exc:
            log.warning(
                "S3 export %s of stream %s: status not written to %s: %s",
                config.identifier,
                name,
                config.status_stream,
                exc,
            )
