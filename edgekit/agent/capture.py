"""CaptureData: store a model's inputs, outputs and extra data, then upload them.

Each capture becomes a folder ``<capture_dir>/<capture_id>/`` with the
tensors as ``.npy`` files (raw ``.bin`` when their metadata does not describe
them), auxiliary data as files, and ``capture.json`` describing all of it plus
the upload state. The folder is written before CaptureData returns, so a
capture survives an agent restart; pending uploads resume at the next start.

One background thread uploads captures to S3 in arrival order. A failed
attempt is retried with exponential backoff (plus jitter) up to
``max_attempts`` times; botocore's own retries handle the short blips, these
handle a device that is offline for minutes.

The S3 client may live in another process: given an `UploadProcess`, the uploader puts
the files through ``python -m edgekit.agent.capture_upload``, started when a capture is
due and closed when none is, so the agent itself never imports boto3 (some 37 MB for the
device's whole life). Its failures are recorded and retried like in-process ones.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
import logging
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.agent.status import AgentStatusError, invalid_argument
from edgekit.errors import AgentError
from edgekit.files import write_text_atomic

log = logging.getLogger(__name__)

RECORD_NAME = "capture.json"
UPLOAD_RECORD_NAME = "capture.upload.json"
IN_PROGRESS, SUCCESS, FAILURE = "IN_PROGRESS", "SUCCESS", "FAILURE"
CAPTURE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ENCODING_SUFFIX = {"CSV": ".csv", "JSON": ".json", "NONE": ".bin", "BASE64": ".b64"}
FUTURE_SKEW_S = 60.0
"""A device clock may run a little ahead of the client's; more than this is refused."""


def _utc_iso(ts: float) -> str:
    return (
        dt.datetime.fromtimestamp(ts, dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _safe(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned[:64] or "tensor"


@dataclass
class CapturedTensor:
    """One tensor of a capture: an array with known type and shape, or raw bytes."""

    name: str
    array: np.ndarray | None = None
    raw: bytes | None = None
    data_type: str | None = None
    shape: list[int] | None = None


@dataclass
class CapturedData:
    """One auxiliary payload: name, encoding name (CSV, JSON, NONE, BASE64) and bytes."""

    name: str
    encoding: str
    data: bytes


S3Factory = Callable[[], Any]


class UploadProcess:
    """Puts files into S3 from a child process (``python -m edgekit.agent.capture_upload``).

    ``factory`` is ``module:name`` of a function of no arguments returning the S3 client,
    called in the child (None: plain ``boto3.client("s3")`` from the environment). The
    child starts at the first `put_files` and ends at `close`; one that died is started
    again at the next call. Not thread-safe: the capture store's one upload thread uses it.
    """

    def __init__(self, factory: str | None = None, *, python: str | None = None) -> None:
        self.factory = factory
        self.python = python or sys.executable
        self._child: subprocess.Popen[str] | None = None

    @property
    def running(self) -> bool:
        return self._child is not None

    def command(self) -> list[str]:
        argv = [self.python, "-m", "edgekit.agent.capture_upload"]
        return argv + (["--factory", self.factory] if self.factory else [])

    def put_files(self, bucket: str, files: list[tuple[Path, str]]) -> list[str]:
        """Put each (local file, key) in order; return the keys. AgentError on a failure."""
        if self._child is None:
            self._child = subprocess.Popen(
                self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
        child = self._child
        assert child.stdin is not None and child.stdout is not None
        request = {"bucket": bucket, "files": [[str(path), key] for path, key in files]}
        try:
            child.stdin.write(json.dumps(request) + "\n")
            child.stdin.flush()
            line = child.stdout.readline()
        except OSError as exc:
            line = ""
            log.warning("capture upload process %d: %s", child.pid, exc)
        if not line:
            self.close()
            raise AgentError(
                f"capture upload process ({' '.join(self.command())}) exited with code "
                f"{child.returncode} before answering; its error is in the agent's log above"
            )
        reply = json.loads(line)
        if "error" in reply:
            raise AgentError(str(reply["error"]))
        return [str(k) for k in reply["keys"]]

    def close(self, timeout: float = 10.0) -> None:
        """End the child (it exits at the end of its input); no-op when none runs."""
        child, self._child = self._child, None
        if child is None:
            return
        if child.stdin is not None:
            try:
                child.stdin.close()
            except OSError as exc:  # it died meanwhile: wait() below reaps it
                log.debug("capture upload process %d: %s", child.pid, exc)
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning(
                "capture upload process %d did not exit in %.0f s; killed", child.pid, timeout
            )
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


class CaptureUploader:
    """Uploads capture folders to ``s3://bucket/prefix/<model>/<capture_id>/``.

    ``s3`` is a boto3 S3 client, a function that returns one (called once, in the
    upload thread, so the agent starts even when credentials come later), or an
    `UploadProcess` (the client lives in a child process while uploads are due).
    """

    def __init__(
        self,
        s3: Any,
        bucket: str,
        prefix: str = "",
        *,
        max_attempts: int = 8,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
    ) -> None:
        if not bucket:
            raise AgentStatusError("INVALID_ARGUMENT", "capture upload needs a bucket name")
        if max_attempts < 1:
            raise AgentStatusError("INVALID_ARGUMENT", "max_attempts must be at least 1")
        self._s3 = s3
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._client: Any = None

    @property
    def process(self) -> UploadProcess | None:
        """The child process uploads go through, if they do."""
        return self._s3 if isinstance(self._s3, UploadProcess) else None

    def idle(self) -> None:
        """Nothing is due: end the upload process, if any (the next upload starts it again)."""
        if self.process is not None:
            self.process.close()

    def client(self) -> Any:
        if self._client is None:
            self._client = self._s3 if hasattr(self._s3, "put_object") else self._s3()
        return self._client

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return base * random.uniform(0.8, 1.2)

    def key_prefix(self, model_name: str, capture_id: str) -> str:
        parts = [p for p in (self.prefix, model_name or "unknown-model", capture_id) if p]
        return "/".join(parts)

    def upload(self, folder: Path, files: list[tuple[str, str]], key_prefix: str) -> list[str]:
        """Put each (local file, key name) in order; return the keys. Raises on failure."""
        if self.process is not None:
            return self.process.put_files(
                self.bucket, [(folder / rel, f"{key_prefix}/{name}") for rel, name in files]
            )
        client = self.client()
        keys = []
        for rel, name in files:
            key = f"{key_prefix}/{name}"
            with open(folder / rel, "rb") as body:
                client.put_object(Bucket=self.bucket, Key=key, Body=body)
            keys.append(key)
        return keys


class CaptureStore:
    """Writes captures under ``root`` and drives their upload; answers status queries."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        uploader: CaptureUploader | None = None,
        *,
        max_pending: int = 1000,
    ) -> None:
        self.root = Path(root)
        self.uploader = uploader
        self.max_pending = max_pending
        self._lock = threading.Condition()
        self._status: dict[str, str] = {}
        self._due: list[tuple[float, int, str]] = []  # (when, tie-breaker, capture_id)
        self._seq = 0
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        """Load the states of earlier captures and resume their uploads."""
        self.root.mkdir(parents=True, exist_ok=True)
        for record_path in sorted(self.root.glob(f"*/{RECORD_NAME}")):
            try:
                record = json.loads(record_path.read_text(encoding="utf-8"))
                capture_id = record["capture_id"]
                status = record["upload"]["status"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("%s: unreadable capture record, ignored (%s)", record_path, exc)
                continue
            with self._lock:
                self._status[capture_id] = status
                if status == IN_PROGRESS:
                    if self.uploader is None:
                        # Kept on the device, nothing to upload to: the capture is complete.
                        self._status[capture_id] = SUCCESS
                    else:
                        self._schedule(capture_id, time.monotonic())
        if self.uploader is not None:
            self._stopping = False
            self._thread = threading.Thread(
                target=self._run, name="edgekit-capture-upload", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop uploading; pending captures stay on disk and resume at the next start."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self.uploader is not None:
            self.uploader.idle()

    # -- requests --------------------------------------------------------------
    def status(self, capture_id: str) -> str:
        with self._lock:
            status = self._status.get(capture_id)
        if status is None:
            raise AgentStatusError(
                "NOT_FOUND", f"capture_id {capture_id!r} is not known to this agent"
            )
        return status

    def record(self, capture_id: str) -> dict[str, Any]:
        """The capture's ``capture.json`` as stored now."""
        self.status(capture_id)
        return json.loads((self.root / capture_id / RECORD_NAME).read_text(encoding="utf-8"))

    def capture(
        self,
        *,
        model_name: str,
        capture_id: str,
        inference_time: float | None,
        input_tensors: list[CapturedTensor],
        output_tensors: list[CapturedTensor],
        inputs: list[CapturedData],
        outputs: list[CapturedData],
    ) -> None:
        """Store one capture and queue its upload; refuses with the API's status codes."""
        if not CAPTURE_ID.match(capture_id or ""):
            raise invalid_argument(
                f"capture_id {capture_id!r} is not valid; use 1-128 letters, digits, '.', '_' "
                "or '-' (a UUID string works)"
            )
        now = time.time()
        if inference_time is not None and inference_time > now + FUTURE_SKEW_S:
            raise AgentStatusError(
                "OUT_OF_RANGE",
                f"inference_timestamp {_utc_iso(inference_time)} is in the future "
                f"(agent clock {_utc_iso(now)})",
            )
        folder = self.root / capture_id
        with self._lock:
            if capture_id in self._status or folder.exists():
                raise AgentStatusError(
                    "ALREADY_EXISTS", f"capture_id {capture_id!r} was captured before"
                )
            pending = sum(1 for s in self._status.values() if s == IN_PROGRESS)
            if pending >= self.max_pending:
                raise AgentStatusError(
                    "RESOURCE_EXHAUSTED",
                    f"{pending} captures are waiting for upload (limit {self.max_pending}); "
                    "try again later",
                )
            self._status[capture_id] = IN_PROGRESS  # reserve the id while writing
        try:
            record = self._write(
                folder,
                model_name=model_name,
                capture_id=capture_id,
                inference_time=inference_time,
                received=now,
                groups={
                    "input_tensors": input_tensors,
                    "output_tensors": output_tensors,
                },
                aux={"inputs": inputs, "outputs": outputs},
            )
        except BaseException:
            with self._lock:
                self._status.pop(capture_id, None)
            raise
        with self._lock:
            self._status[capture_id] = record["upload"]["status"]
            if record["upload"]["status"] == IN_PROGRESS:
                self._schedule(capture_id, time.monotonic())

    # -- storage ---------------------------------------------------------------
    def _write(
        self,
        folder: Path,
        *,
        model_name: str,
        capture_id: str,
        inference_time: float | None,
        received: float,
        groups: dict[str, list[CapturedTensor]],
        aux: dict[str, list[CapturedData]],
    ) -> dict[str, Any]:
        folder.mkdir(parents=True)
        record: dict[str, Any] = {
            "capture_id": capture_id,
            "model_name": model_name,
            "inference_timestamp": _utc_iso(inference_time) if inference_time else None,
            "received_at": _utc_iso(received),
        }
        files: list[str] = []
        for group, tensors in groups.items():
            (folder / group).mkdir()
            entries = []
            for i, tensor in enumerate(tensors):
                stem = f"{group}/{i}-{_safe(tensor.name)}"
                if tensor.array is not None:
                    rel = stem + ".npy"
                    np.save(folder / rel, tensor.array, allow_pickle=False)
                else:
                    rel = stem + ".bin"
                    (folder / rel).write_bytes(tensor.raw or b"")
                files.append(rel)
                entries.append(
                    {
                        "name": tensor.name,
                        "data_type": tensor.data_type,
                        "shape": tensor.shape,
                        "file": rel,
                    }
                )
            record[group] = entries
        for group, items in aux.items():
            (folder / group).mkdir()
            entries = []
            for i, item in enumerate(items):
                rel = f"{group}/{i}-{_safe(item.name)}{ENCODING_SUFFIX.get(item.encoding, '.bin')}"
                (folder / rel).write_bytes(item.data)
                files.append(rel)
                entries.append({"name": item.name, "encoding": item.encoding, "file": rel})
            record[group] = entries
        record["files"] = files
        record["upload"] = {
            "status": IN_PROGRESS if self.uploader is not None else SUCCESS,
            "destination": None
            if self.uploader is None
            else f"s3://{self.uploader.bucket}/{self.uploader.key_prefix(model_name, capture_id)}/",
            "attempts": 0,
            "last_error": None,
            "uploaded_at": None,
        }
        self._save(folder, record)
        return record

    @staticmethod
    def _save(folder: Path, record: dict[str, Any]) -> None:
        text = json.dumps(record, indent=2, sort_keys=True) + "\n"
        write_text_atomic(folder / RECORD_NAME, text, fsync=False)

    # -- upload thread ---------------------------------------------------------
    def _schedule(self, capture_id: str, when: float) -> None:
        """Queue an upload attempt (caller holds the lock)."""
        self._seq += 1
        heapq.heappush(self._due, (when, self._seq, capture_id))
        self._lock.notify_all()

    def _run(self) -> None:
        assert self.uploader is not None
        while True:
            idle = False
            with self._lock:
                while not self._stopping:
                    if self._due and self._due[0][0] <= time.monotonic():
                        break
                    timeout = self._due[0][0] - time.monotonic() if self._due else None
                    if self.uploader.process is not None and self.uploader.process.running:
                        idle = True  # nothing due now: end the upload process first
                        break
                    self._lock.wait(timeout)
                if self._stopping:
                    return
                if not idle:
                    _, _, capture_id = heapq.heappop(self._due)
            if idle:
                self.uploader.idle()
            else:
                self._attempt(capture_id)

    def _attempt(self, capture_id: str) -> None:
        assert self.uploader is not None
        folder = self.root / capture_id
        try:
            record = json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.error("capture %s: record unreadable, upload abandoned (%s)", capture_id, exc)
            with self._lock:
                self._status[capture_id] = FAILURE
            return
        upload = record["upload"]
        upload["attempts"] = int(upload.get("attempts") or 0) + 1
        key_prefix = self.uploader.key_prefix(record.get("model_name") or "", capture_id)
        # The uploaded record describes the capture; upload bookkeeping stays local.
        shared = {k: v for k, v in record.items() if k != "upload"}
        shared_path = folder / UPLOAD_RECORD_NAME
        shared_path.write_text(json.dumps(shared, indent=2, sort_keys=True) + "\n", "utf-8")
        # Data first, the record last: a record in S3 means its files are there too.
        items = [(rel, rel) for rel in record["files"]] + [(UPLOAD_RECORD_NAME, RECORD_NAME)]
        try:
            self.uploader.upload(folder, items, key_prefix)
        except Exception as exc:  # boto3 raises ClientError, EndpointConnectionError, ...
            # An upload process reports its exception as "<type>: <message>" already.
            from_child = isinstance(exc, AgentError) and self.uploader.process is not None
            upload["last_error"] = str(exc) if from_child else f"{type(exc).__name__}: {exc}"
            retry = upload["attempts"] < self.uploader.max_attempts
            upload["status"] = IN_PROGRESS if retry else FAILURE
            self._save(folder, record)
            delay = self.uploader.delay(upload["attempts"]) if retry else 0.0
            log.warning(
                "capture %s: upload attempt %d/%d failed: %s%s",
                capture_id,
                upload["attempts"],
                self.uploader.max_attempts,
                upload["last_error"],
                f"; retrying in {delay:.1f} s" if retry else "; giving up",
            )
            with self._lock:
                self._status[capture_id] = upload["status"]
                if retry:
                    self._schedule(capture_id, time.monotonic() + delay)
            return
        finally:
            shared_path.unlink(missing_ok=True)
        upload["status"] = SUCCESS
        upload["uploaded_at"] = _utc_iso(time.time())
        self._save(folder, record)
        with self._lock:
            self._status[capture_id] = SUCCESS
