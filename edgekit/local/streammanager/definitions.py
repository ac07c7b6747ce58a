"""Message stream definitions and S3 export tasks: validation of what clients send.

The server checks requests itself (any SDK, or none, may be on the other side) with the
limits the SDKs document: names of 1-255 characters from ``[\\w ,.\\-_]``, ``maxSize`` and
``streamSegmentSize`` of at least 1 KiB, ``timeToLiveMillis`` of at least 60 s... A bad
value raises `DefinitionError` naming the field, which the server answers as
InvalidRequest.

Export destinations: S3 export tasks (``s3TaskExecutor``) and Kinesis Data Streams
(``kinesis``) run here against the emulated S3 and Kinesis. IoT Analytics, IoT SiteWise
and HTTP exports are refused: the local backend has no emulation to export them to
honestly.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from edgekit.errors import LocalBackendError

__all__ = [
    "DEFAULT_MAX_SIZE",
    "DEFAULT_SEGMENT_SIZE",
    "PERSISTENCE_FILE",
    "PERSISTENCE_MEMORY",
    "DefinitionError",
    "KinesisConfig",
    "S3ExecutorConfig",
    "S3Task",
    "StreamDefinition",
    "parse_definition",
    "parse_s3_task",
]

NAME = re.compile(r"^[\w ,.\-_]*$")
BUCKET = re.compile(
    r"(?=^.{3,63}$)(?!^(\d+\.)+\d+$)"
    r"(^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$)"
)
KEY = re.compile(r"^([^\\{ }%`\[\]\"'><~#^?|]|!\{[a-zA-Z]+:[a-zA-Z/]+\})*$")
DEFAULT_MAX_SIZE = 256 * 1024 * 1024
DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024
MAX_INT64 = 2**63 - 1
REJECT_NEW_DATA, OVERWRITE_OLDEST_DATA = 0, 1
PERSISTENCE_FILE, PERSISTENCE_MEMORY = 0, 1
MIN_MULTIPART_THRESHOLD = 5 * 1024 * 1024
#: Export kinds the local stream manager runs, by wire key.
SUPPORTED_EXPORTS = ("s3TaskExecutor", "kinesis")
#: Export kinds of ExportDefinition that the local stream manager refuses, by wire key.
UNSUPPORTED_EXPORTS = {
    "iotAnalytics": "IoT Analytics (iotAnalytics)",
    "IotSitewise": "IoT SiteWise (IotSitewise)",
    "http": "HTTP (http)",
}


class DefinitionError(LocalBackendError):
    """A request field is missing or out of its documented range; the message names it
    (internal: the server answers it as InvalidRequest)."""


@dataclass(frozen=True)
class S3ExecutorConfig:
    identifier: str
    multipart_threshold: int | None
    priority: int | None
    disabled: bool
    status_stream: str | None
    status_level: int  # StatusLevel: ERROR=0 .. TRACE=4


@dataclass(frozen=True)
class KinesisConfig:
    identifier: str
    stream_name: str
    batch_size: int  # messages per PutRecords, 1-500
    batch_interval_millis: int | None
    start_sequence_number: int
    disabled: bool


@dataclass
class StreamDefinition:
    name: str
    max_size: int
    segment_size: int
    ttl_millis: int | None
    strategy_on_full: int
    persistence: int
    flush_on_write: bool
    s3_exports: list[S3ExecutorConfig] = field(default_factory=list)
    kinesis_exports: list[KinesisConfig] = field(default_factory=list)
    raw_export: dict[str, Any] = field(default_factory=dict)

    def as_wire(self) -> dict[str, Any]:
        """The definition as DescribeMessageStream returns it (defaults filled in)."""
        out: dict[str, Any] = {
            "name": self.name,
            "maxSize": self.max_size,
            "streamSegmentSize": self.segment_size,
            "strategyOnFull": self.strategy_on_full,
            "persistence": self.persistence,
            "flushOnWrite": self.flush_on_write,
        }
        if self.ttl_millis is not None:
            out["timeToLiveMillis"] = self.ttl_millis
        if self.raw_export:
            out["exportDefinition"] = copy.deepcopy(self.raw_export)
        return out


@dataclass(frozen=True)
class S3Task:
    input_url: str
    path: str
    bucket: str
    key: str
    user_metadata: dict[str, Any]
    raw: dict[str, Any]


def stream_name(value: Any, field_name: str = "name") -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 255 or not NAME.match(value):
        raise DefinitionError(
            f"{field_name} must be 1-255 characters of letters, digits, spaces, commas, "
            f"periods, hyphens and underscores; got {value!r}"
        )
    return value


def _int(d: dict[str, Any], key: str, lo: int, hi: int, default: int | None) -> int | None:
    value = d.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise DefinitionError(f"{key} must be an integer from {lo} to {hi}; got {value!r}")
    return value


def _choice(d: dict[str, Any], key: str, choices: tuple[int, ...], default: int | None) -> int:
    value = d.get(key, default)
    if value is None:
        raise DefinitionError(f"{key} is required (one of {', '.join(map(str, choices))})")
    if isinstance(value, bool) or value not in choices:
        raise DefinitionError(f"{key} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return int(value)


def _bool(d: dict[str, Any], key: str) -> bool:
    value = d.get(key, False)
    if not isinstance(value, bool):
        raise DefinitionError(f"{key} must be a boolean; got {value!r}")
    return value


def parse_definition(d: Any) -> StreamDefinition:
    """A MessageStreamDefinition map from the wire, validated, defaults filled in."""
    if not isinstance(d, dict):
        raise DefinitionError("definition is required (a MessageStreamDefinition)")
    name = stream_name(d.get("name"), "definition.name")
    export = d.get("exportDefinition") or {}
    if not isinstance(export, dict):
        raise DefinitionError("exportDefinition must be an ExportDefinition map")
    for key, label in UNSUPPORTED_EXPORTS.items():
        if export.get(key):
            raise DefinitionError(
                f"stream {name}: export to {label} is not supported by the local stream "
                "manager (edgekit emulates S3 and Kinesis only); use an s3TaskExecutor or "
                "kinesis export, or deploy to a real Greengrass core device for this destination"
            )
    unknown = sorted(set(export) - set(UNSUPPORTED_EXPORTS) - set(SUPPORTED_EXPORTS))
    if unknown:
        raise DefinitionError(f"exportDefinition has unknown export kinds: {', '.join(unknown)}")
    s3 = [_s3_executor(c, i) for i, c in enumerate(_list(export, "s3TaskExecutor"))]
    kinesis = [_kinesis(c, i) for i, c in enumerate(_list(export, "kinesis"))]
    ids = [c.identifier for c in s3] + [c.identifier for c in kinesis]
    if len(set(ids)) != len(ids):
        raise DefinitionError(f"stream {name}: export identifiers must be unique; got {ids}")
    return StreamDefinition(
        name=name,
        max_size=_int(d, "maxSize", 1024, MAX_INT64, DEFAULT_MAX_SIZE) or DEFAULT_MAX_SIZE,
        segment_size=_int(d, "streamSegmentSize", 1024, 2**31 - 1, DEFAULT_SEGMENT_SIZE)
        or DEFAULT_SEGMENT_SIZE,
        ttl_millis=_int(d, "timeToLiveMillis", 60000, 9223372036854, None),
        strategy_on_full=_choice(
            d, "strategyOnFull", (REJECT_NEW_DATA, OVERWRITE_OLDEST_DATA), None
        ),
        persistence=_choice(d, "persistence", (PERSISTENCE_FILE, PERSISTENCE_MEMORY), 0),
        flush_on_write=_bool(d, "flushOnWrite"),
        s3_exports=s3,
        kinesis_exports=kinesis,
        raw_export={k: copy.deepcopy(export[k]) for k in SUPPORTED_EXPORTS if export.get(k)},
    )


def _list(export: dict[str, Any], key: str) -> list[Any]:
    value = export.get(key) or []
    if not isinstance(value, list):
        raise DefinitionError(f"exportDefinition.{key} must be a list")
    return value


def _kinesis(c: Any, i: int) -> KinesisConfig:
    where = f"exportDefinition.kinesis[{i}]"
    if not isinstance(c, dict):
        raise DefinitionError(f"{where} must be a KinesisConfig map")
    name = c.get("kinesisStreamName")
    if not isinstance(name, str) or not name:
        raise DefinitionError(f"{where}.kinesisStreamName is required")
    return KinesisConfig(
        identifier=stream_name(c.get("identifier"), f"{where}.identifier"),
        stream_name=name,
        batch_size=_int(c, "batchSize", 1, 500, 500) or 500,
        batch_interval_millis=_int(c, "batchIntervalMillis", 60000, 9223372036854, None),
        start_sequence_number=_int(c, "startSequenceNumber", 0, MAX_INT64, 0) or 0,
        disabled=_bool(c, "disabled"),
    )


def _s3_executor(c: Any, i: int) -> S3ExecutorConfig:
    where = f"exportDefinition.s3TaskExecutor[{i}]"
    if not isinstance(c, dict):
        raise DefinitionError(f"{where} must be an S3ExportTaskExecutorConfig map")
    identifier = stream_name(c.get("identifier"), f"{where}.identifier")
    status = c.get("statusConfig") or {}
    if not isinstance(status, dict):
        raise DefinitionError(f"{where}.statusConfig must be a StatusConfig map")
    status_stream = status.get("statusStreamName")
    if status_stream is not None:
        stream_name(status_stream, f"{where}.statusConfig.statusStreamName")
    level = status.get("statusLevel", 2)  # INFO
    if isinstance(level, bool) or level not in (0, 1, 2, 3, 4):
        raise DefinitionError(f"{where}.statusConfig.statusLevel must be 0-4; got {level!r}")
    return S3ExecutorConfig(
        identifier=identifier,
        multipart_threshold=_int(
            c, "sizeThresholdForMultipartUploadBytes", MIN_MULTIPART_THRESHOLD, MAX_INT64, None
        ),
        priority=_int(c, "priority", 1, 10, None),
        disabled=_bool(c, "disabled"),
        status_stream=status_stream,
        status_level=level,
    )


def parse_s3_task(d: Any) -> S3Task:
    """An S3ExportTaskDefinition (the JSON a component appends to an S3 export stream)."""
    if not isinstance(d, dict):
        raise DefinitionError("the message is not an S3ExportTaskDefinition JSON object")
    url = d.get("inputUrl")
    if not isinstance(url, str) or not url.startswith("file:"):
        raise DefinitionError(f"inputUrl must be a file:// URL of a local file; got {url!r}")
    path = url[len("file://") :] if url.startswith("file://") else url[len("file:") :]
    if not path.startswith("/"):
        raise DefinitionError(f"inputUrl must name an absolute path (file:///...); got {url!r}")
    bucket = d.get("bucket")
    if not isinstance(bucket, str) or not BUCKET.match(bucket):
        raise DefinitionError(f"bucket is not a valid S3 bucket name: {bucket!r}")
    key = d.get("key")
    if not isinstance(key, str) or not 1 <= len(key) <= 1024 or not KEY.match(key):
        raise DefinitionError(f"key is not a valid S3 object key: {key!r}")
    meta = d.get("userMetadata") or {}
    if not isinstance(meta, dict):
        raise DefinitionError("userMetadata must be a map of strings")
    return S3Task(url, path, bucket, key, meta, d)
