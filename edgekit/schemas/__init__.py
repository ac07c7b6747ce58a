"""JSON Schemas of the messages devices publish, and validators that name the bad field.

``result.schema.json`` is the contract between the inference component on a
device and everything that reads its results (notebook, tests, dashboards);
``health.schema.json`` is the periodic health report. Both are draft 2020-12
and ship inside the package, so a device and a notebook validate against the
same file.

Owns: the JSON Schemas of device messages and their validators.

Must not import: any edgekit module but edgekit.errors (devices and notebooks
both import it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from edgekit.errors import InvalidMessageError

RESULT = "result"
HEALTH = "health"
SCHEMA_NAMES: tuple[str, ...] = (RESULT, HEALTH)
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
TIMESTAMP_EXAMPLE = "2026-11-23T10:00:00.123Z"


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema ``name`` ("result" or "health")."""
    if name not in SCHEMA_NAMES:
        raise KeyError(f"no schema {name!r}; known: {', '.join(SCHEMA_NAMES)}")
    text = resources.files(__package__).joinpath(f"{name}.schema.json").read_text("utf-8")
    return json.loads(text)


@cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _path(parts: Any) -> str:
    """``deque(['detections', 0, 'score'])`` -> ``detections[0].score``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(message)"


def _join(base: str, key: str) -> str:
    return key if base == "(message)" else f"{base}.{key}"


def _describe(error: Any) -> tuple[str, str]:
    """(field, reason) for one jsonschema ValidationError, in words a device author can act on."""
    field = _path(error.absolute_path)
    kind = error.validator
    if kind == "required":
        props = error.schema.get("properties", {})
        missing = [k for k in error.validator_value if k not in error.instance]
        key = missing[0] if missing else str(error.validator_value)
        hint = props.get(key, {}).get("description", "")
        return _join(field, key), "required field is missing" + (f" ({hint})" if hint else "")
    if kind == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        key = extra[0] if extra else "?"
        return _join(field, key), (
            "unexpected field; allowed fields: " + ", ".join(sorted(allowed))
        )
    if kind == "pattern" and field.endswith("timestamp"):
        return field, (
            f"{error.instance!r} is not ISO 8601 UTC with milliseconds and Z "
            f"(e.g. {TIMESTAMP_EXAMPLE})"
        )
    if kind in ("minItems", "maxItems") and field.endswith("box"):
        return field, f"{error.instance!r} must be 4 numbers [left, top, width, height]"
    if kind == "exclusiveMinimum" and error.absolute_path and field.endswith(("[2]", "[3]")):
        which = "width" if field.endswith("[2]") else "height"
        return field, f"box {which} must be > 0, got {error.instance!r}"
    return field, error.message


def _timestamp_problem(msg: Mapping[str, Any]) -> str | None:
    """The pattern checks the shape; this catches impossible dates such as month 13."""
    value = msg.get("timestamp")
    if not isinstance(value, str):
        return None
    try:
        datetime.strptime(value, TIMESTAMP_FORMAT)
    except ValueError as exc:
        return f"{value!r} is not a real UTC time ({exc})"
    return None


def _non_finite(value: Any, path: list[Any]) -> list[Any] | None:
    """The path of the first NaN/Infinity (json.loads accepts them; the schema cannot see them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    if isinstance(value, Mapping):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, [*path, key])
        if found is not None:
            return found
    return None


def parse_message(
    payload: bytes | bytearray | str | Mapping[str, Any], schema: str = RESULT
) -> dict[str, Any]:
    """A JSON object from an MQTT payload; InvalidMessageError if it is not one."""
    if isinstance(payload, Mapping):
        return dict(payload)
    try:
        text = payload.decode("utf-8") if isinstance(payload, bytes | bytearray) else payload
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        preview = bytes(payload[:60]) if not isinstance(payload, str) else payload[:60]
        raise InvalidMessageError(schema, "(payload)", f"not JSON ({exc}): {preview!r}") from exc
    if not isinstance(data, dict):
        raise InvalidMessageError(
            schema, "(payload)", f"expected a JSON object, got {type(data).__name__}"
        )
    return data


def validate_message(schema: str, msg: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``msg`` against schema ``schema`` and return it as a dict.

    Raises InvalidMessageError naming the first bad field (JSON path such as
    ``detections[0].score``) and how many problems there are in total.
    """
    data = parse_message(msg, schema)
    errors = sorted(_validator(schema).iter_errors(data), key=lambda e: list(e.absolute_path))
    stamp = _timestamp_problem(data) if not errors else None
    bad_number = _non_finite(data, []) if not errors else None
    if errors:
        from jsonschema.exceptions import best_match

        first = best_match(errors)
        field, reason = _describe(first)
        raise InvalidMessageError(schema, field, reason, problems=len(errors))
    if bad_number is not None:
        raise InvalidMessageError(
            schema, _path(bad_number), "must be a finite number, not NaN/Infinity"
        )
    if stamp is not None:
        raise InvalidMessageError(schema, "timestamp", stamp)
    return data


def validate_result(msg: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """Validate one result message (``qualityinspection/scratch-detection``)."""
    return validate_message(RESULT, msg)


def validate_health(msg: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """Validate one health message (``qualityinspection/health``)."""
    return validate_message(HEALTH, msg)


def utc_timestamp(when: datetime | None = None) -> str:
    """``when`` (default now) in the schema's timestamp format: ``2026-11-23T10:00:00.123Z``."""
    moment = (when or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_timestamp(value: str) -> datetime:
    """The aware UTC datetime of a schema timestamp."""
    return datetime.strptime(value, TIMESTAMP_FORMAT).replace(tzinfo=UTC)


__all__ = [
    "HEALTH",
    "RESULT",
    "InvalidMessageError",
    "load_schema",
    "parse_message",
    "parse_timestamp",
    "utc_timestamp",
    "validate_health",
    "validate_message",
    "validate_result",
]
