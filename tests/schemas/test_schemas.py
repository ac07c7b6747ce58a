"""The result and health message schemas: accept the documented messages, name each bad field."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edgekit.data.types import Box, Detection
from edgekit.schemas import (
    InvalidMessageError,
    load_schema,
    parse_timestamp,
    utc_timestamp,
    validate_health,
    validate_message,
    validate_result,
)

DESIGN = Path(__file__).resolve().parents[3] / "shared" / "DESIGN.md"


def design_example() -> dict[str, Any]:
    """The result message of DESIGN.md with its placeholders filled in."""
    return {
        "timestamp": "2026-11-23T10:00:00.123Z",
        "thing_name": "edgekit-device-1",
        "image_name": "tag-0001.jpg",
        "model": {"name": "tag-scratch-detector", "version": "1.0.0"},
        "detections": [
            {"class_id": 0, "label": "scratch", "score": 0.93, "box": [10.0, 20.0, 30.5, 4.0]}
        ],
        "defect": True,
        "latency_ms": {"preprocess": 0.0, "inference": 0.0, "total": 0.0},
    }


def health_example() -> dict[str, Any]:
    return copy.deepcopy(load_schema("health")["examples"][0])


def test_schemas_are_valid_draft_2020_12() -> None:
    from jsonschema import Draft202012Validator

    for name in ("result", "health"):
        schema = load_schema(name)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)


def test_design_example_is_accepted() -> None:
    msg = design_example()
    assert validate_result(msg) == msg
    assert validate_result(json.dumps(msg).encode()) == msg


def test_design_md_message_keys_match_schema() -> None:
    """The keys DESIGN.md shows are exactly the schema's required keys."""
    if not DESIGN.is_file():
        pytest.skip(f"{DESIGN} not found")
    text = DESIGN.read_text()
    block = text.split("## Result message", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    keys = set(re.findall(r'"([a-z_]+)":', block))
    schema = load_schema("result")
    assert set(schema["required"]) <= keys
    assert {"class_id", "label", "score", "box"} == set(schema["$defs"]["detection"]["required"])


def test_schema_examples_and_optional_fields_are_accepted() -> None:
    for example in load_schema("result")["examples"]:
        validate_result(example)
    msg = design_example() | {"message_id": "dev-1-000001", "sequence": 1}
    msg["detections"] = []
    msg["defect"] = False
    msg["latency_ms"]["postprocess"] = 0.4  # extra stages are allowed
    validate_result(msg)
    validate_health(health_example())
    validate_health(health_example() | {"model": None, "state": "starting"})


def test_detection_to_json_matches_the_detection_schema() -> None:
    """What the model helper emits per detection is what the schema accepts."""
    msg = design_example()
    msg["detections"] = [Detection(Box(1.04, 2.0, 3.0, 4.0), 0.87654).to_json()]
    validate_result(msg)


def _set(path: str, value: Any) -> Any:
    def mutate(msg: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = msg
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value

    return mutate


def _drop(path: str) -> Any:
    def mutate(msg: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = msg
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        del target[last]

    return mutate


BAD_RESULTS = [
    (_drop("timestamp"), "timestamp", "required"),
    (_drop("latency_ms"), "latency_ms", "required"),
    (_drop("model.version"), "model.version", "required"),
    (_drop("latency_ms.total"), "latency_ms.total", "required"),
    (_drop("detections.0.box"), r"detections\[0\]\.box", "required"),
    (_set("extra", 1), "extra", "unexpected field"),
    (_set("model.sha", "x"), "model.sha", "unexpected field"),
    (_set("timestamp", "2026-11-23T10:00:00Z"), "timestamp", "milliseconds"),
    (_set("timestamp", "2026-11-23 10:00:00.123"), "timestamp", "milliseconds"),
    (_set("timestamp", "2026-13-23T10:00:00.123Z"), "timestamp", "not a real UTC time"),
    (_set("thing_name", ""), "thing_name", "non-empty"),
    (_set("thing_name", "bad name!"), "thing_name", "does not match"),
    (_set("image_name", 7), "image_name", "not of type 'string'"),
    (_set("defect", "yes"), "defect", "boolean"),
    (_set("detections", {}), "detections", "array"),
    (_set("detections.0.class_id", -1), r"detections\[0\]\.class_id", "minimum"),
    (_set("detections.0.class_id", 0.5), r"detections\[0\]\.class_id", "integer"),
    (_set("detections.0.score", 1.5), r"detections\[0\]\.score", "maximum"),
    (_set("detections.0.score", -0.1), r"detections\[0\]\.score", "minimum"),
    (_set("detections.0.label", ""), r"detections\[0\]\.label", "non-empty"),
    (_set("detections.0.box", [1, 2, 3]), r"detections\[0\]\.box", r"\[left, top, width"),
    (_set("detections.0.box", [1, 2, 3, 4, 5]), r"detections\[0\]\.box", "4 numbers"),
    (_set("detections.0.box", [1, 2, 0, 4]), r"detections\[0\]\.box\[2\]", "width must be > 0"),
    (_set("detections.0.box", [1, 2, 3, -4]), r"detections\[0\]\.box\[3\]", "height must be > 0"),
    (_set("detections.0.box", [1, "2", 3, 4]), r"detections\[0\]\.box\[1\]", "number"),
    (_set("detections.0.extra", 1), r"detections\[0\]\.extra", "unexpected field"),
    (_set("latency_ms.inference", -1.0), "latency_ms.inference", "minimum"),
    (_set("latency_ms.total", "3"), "latency_ms.total", "number"),
    (_set("latency_ms.total", float("nan")), "latency_ms.total", "finite"),
    (_set("detections.0.score", float("inf")), r"detections\[0\]\.score", "maximum"),
    (_set("message_id", ""), "message_id", "non-empty"),
    (_set("sequence", 1.5), "sequence", "integer"),
    (_set("sequence", -1), "sequence", "minimum"),
]


@pytest.mark.parametrize(("mutate", "field", "reason"), BAD_RESULTS)
def test_bad_result_names_the_field(mutate: Any, field: str, reason: str) -> None:
    msg = design_example()
    mutate(msg)
    with pytest.raises(InvalidMessageError, match=reason) as info:
        validate_result(msg)
    assert re.fullmatch(field, info.value.field), info.value.field
    assert re.search(rf"invalid result message: {field}: ", str(info.value))


@pytest.mark.parametrize(
    "payload",
    [b"{not json", b"\xff\xfe", b"[1, 2]", "null", b""],
)
def test_unparseable_payloads_are_rejected(payload: bytes | str) -> None:
    with pytest.raises(InvalidMessageError) as info:
        validate_result(payload)
    assert info.value.field == "(payload)"


def test_error_counts_every_problem() -> None:
    msg = design_example()
    msg["defect"] = "yes"
    msg["detections"][0]["score"] = 2
    with pytest.raises(InvalidMessageError, match=r"and 1 more problem") as info:
        validate_result(msg)
    assert info.value.problems == 2


BAD_HEALTH = [
    (_drop("spool"), "spool", "required"),
    (_set("spool.pending", -1), "spool.pending", "minimum"),
    (_set("state", "sleeping"), "state", "is not one of"),
    (_set("images_processed", 1.5), "images_processed", "integer"),
    (_set("skipped", [{"image_name": "a.jpg", "reason": "x"}] * 51), "skipped", "too long"),
    (_set("skipped", [{"image_name": "a.jpg"}]), r"skipped\[0\]\.reason", "required"),
    (_set("model", {"name": "m"}), "model.version", "required"),
    (_set("uptime", 3), "uptime", "unexpected field"),
]


@pytest.mark.parametrize(("mutate", "field", "reason"), BAD_HEALTH)
def test_bad_health_names_the_field(mutate: Any, field: str, reason: str) -> None:
    msg = health_example()
    mutate(msg)
    with pytest.raises(InvalidMessageError, match=reason) as info:
        validate_health(msg)
    assert re.fullmatch(field, info.value.field), info.value.field


def test_timestamps_round_trip() -> None:
    when = datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=UTC)
    text = utc_timestamp(when)
    assert text == "2026-11-23T10:00:00.123Z"
    assert parse_timestamp(text) == when.replace(microsecond=123000)
    validate_result(design_example() | {"timestamp": utc_timestamp()})


def test_unknown_schema_name() -> None:
    with pytest.raises(KeyError, match="result, health"):
        validate_message("nope", {})


# --- health v2: per-model entries (edgekit/edge/health.py model_entry) -------------------------


def health_v2_example() -> dict[str, Any]:
    return copy.deepcopy(load_schema("health")["examples"][1])


def test_health_v2_example_and_v1_messages_are_accepted() -> None:
    schema = load_schema("health")
    assert schema["$id"] == "urn:edgekit:schema:health:2"
    msg = health_v2_example()
    assert validate_health(msg) == msg
    assert [m["role"] for m in msg["models"]] == ["current", "shadow"]
    validate_health(health_example())  # a version 1 message is still valid
    nulls = health_v2_example()
    entry = nulls["models"][0]
    entry.update(package_sha256=None, package_sha256_source=None, key_fingerprint=None)
    entry["since_start"].update(
        images=0, results_published=0, defect_rate=None, latency_ms={"p50": None, "p95": None}
    )
    validate_health(nulls)


BAD_HEALTH_V2 = [
    (_set("models.0.package_sha256", "abc"), r"models\[0\]\.package_sha256", "does not match"),
    (_set("models.0.role", "candidate"), r"models\[0\]\.role", "is not one of"),
    (_drop("models.0.window.seconds"), r"models\[0\]\.window\.seconds", "required"),
    (_set("models.0.window.seconds", 0), r"models\[0\]\.window\.seconds", "less than or equal"),
    (_drop("models.0.key_fingerprint"), r"models\[0\]\.key_fingerprint", "required"),
    (
        _set("models.0.since_start.defect_rate", 1.5),
        r"models\[0\]\.since_start\.defect_rate",
        "maximum",
    ),
    (
        _set("models.1.agreement.window.detection_agreement", -0.1),
        r"models\[1\]\.agreement\.window\.detection_agreement",
        "minimum",
    ),
    (_set("models.1.state", "sleeping"), r"models\[1\]\.state", "is not one of"),
    (_set("started_at", "yesterday"), "started_at", "does not match"),
    (_set("models.0.accuracy", 1), r"models\[0\]\.accuracy", "unexpected field"),
]


@pytest.mark.parametrize(("mutate", "field", "reason"), BAD_HEALTH_V2)
def test_bad_health_v2_names_the_field(mutate: Any, field: str, reason: str) -> None:
    msg = health_v2_example()
    mutate(msg)
    with pytest.raises(InvalidMessageError, match=reason) as info:
        validate_health(msg)
    assert re.fullmatch(field, info.value.field), info.value.field


def test_result_model_may_carry_the_package_sha256() -> None:
    msg = design_example()
    msg["model"]["package_sha256"] = "0" * 64
    validate_result(msg)
    msg["model"]["package_sha256"] = "0" * 63
    with pytest.raises(InvalidMessageError) as info:
        validate_result(msg)
    assert info.value.field == "model.package_sha256"
