"""ResultsTable numbers, rows and files; Intake's validation and de-duplication (no network)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgekit.errors import ConfigurationError, DataError
from edgekit.results import Intake, Message, ResultsTable, percentile
from edgekit.results.table import ROW_COLUMNS, SUMMARY_COLUMNS


def result(
    thing: str,
    seq: int,
    total: float,
    *,
    defect: bool = False,
    version: str = "1.0.0",
    second: int = 0,
) -> dict[str, Any]:
    dets = (
        [{"class_id": 0, "label": "scratch", "score": 0.9, "box": [1.0, 2.0, 3.0, 4.0]}]
        if defect
        else []
    )
    return {
        "timestamp": f"2026-11-23T10:00:{second:02d}.000Z",
        "thing_name": thing,
        "image_name": f"img-{seq:03d}.jpg",
        "model": {"name": "tag-scratch-detector", "version": version},
        "detections": dets,
        "defect": defect,
        "latency_ms": {"preprocess": 1.0, "inference": total - 2.0, "total": total},
        "message_id": f"{thing}-{seq}",
        "sequence": seq,
    }


def hand_made() -> list[dict[str, Any]]:
    return [
        result("dev-a", 1, 10.0, defect=True),
        result("dev-b", 1, 40.0),
        result("dev-a", 2, 20.0),
        result("dev-a", 3, 30.0, version="1.1.0"),
        result("dev-a", 4, 40.0, defect=True, version="1.1.0"),
    ]


def test_percentile_matches_numpy() -> None:
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]
    for q in (0, 5, 50, 90, 95, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert math.isnan(percentile([], 50))
    assert percentile([7.0], 95) == 7.0


def test_summary_per_device() -> None:
    table = ResultsTable(hand_made())
    summary = table.summary()
    assert summary.columns == SUMMARY_COLUMNS
    rows = {row["thing_name"]: row for row in summary}
    assert list(rows) == ["dev-a", "dev-b"]  # order of first appearance
    a = rows["dev-a"]
    assert a["results"] == 4
    assert a["defects"] == 2
    assert a["defect_rate"] == 0.5
    assert a["p50_total_ms"] == pytest.approx(25.0)  # totals 10, 20, 30, 40
    assert a["p95_total_ms"] == pytest.approx(38.5)  # 30 + 0.85 * 10
    assert a["model_versions"] == ["tag-scratch-detector@1.0.0", "tag-scratch-detector@1.1.0"]
    b = rows["dev-b"]
    assert (b["results"], b["defects"], b["defect_rate"]) == (1, 0, 0.0)
    assert b["p50_total_ms"] == b["p95_total_ms"] == 40.0
    text = summary.format()
    assert "dev-a" in text and "tag-scratch-detector@1.1.0" in text
    assert "<td>dev-b</td>" in summary._repr_html_()
    assert "dev-a" in table._repr_html_()


def test_empty_table() -> None:
    table = ResultsTable()
    assert len(table) == 0
    assert len(table.summary()) == 0
    assert table.to_rows() == []


def test_rows_are_flat() -> None:
    rows = ResultsTable(hand_made()).to_rows()
    assert set(rows[0]) == set(ROW_COLUMNS)
    assert rows[0]["detections"] == 1 and rows[0]["max_score"] == 0.9
    assert rows[1]["detections"] == 0 and rows[1]["max_score"] is None
    assert rows[3]["model_version"] == "1.1.0"
    assert rows[3]["total_ms"] == 30.0


def test_jsonl_round_trip(tmp_path: Path) -> None:
    table = ResultsTable(hand_made())
    path = table.save_jsonl(tmp_path / "sub" / "results.jsonl")
    assert len(path.read_text().splitlines()) == 5
    again = ResultsTable.load_jsonl(path)
    assert again.results == table.results


def test_load_jsonl_names_file_and_line(tmp_path: Path) -> None:
    good = json.dumps(result("dev-a", 1, 10.0))
    bad = result("dev-a", 2, 10.0)
    bad["detections"] = [{"class_id": 0, "label": "scratch", "score": 3, "box": [0, 0, 1, 1]}]
    path = tmp_path / "r.jsonl"
    path.write_text(f"{good}\n\n{json.dumps(bad)}\n")
    with pytest.raises(DataError, match=r"r\.jsonl:3: .*detections\[0\]\.score"):
        ResultsTable.load_jsonl(path)
    assert len(ResultsTable.load_jsonl(path, validate=False)) == 2
    path.write_text(f"{good}\n{{oops\n")
    with pytest.raises(DataError, match=r"r\.jsonl:2: "):
        ResultsTable.load_jsonl(path, validate=False)
    with pytest.raises(DataError, match="missing.jsonl"):
        ResultsTable.load_jsonl(tmp_path / "missing.jsonl")


@pytest.mark.skipif(importlib.util.find_spec("pandas") is not None, reason="pandas installed")
def test_to_dataframe_without_pandas_says_what_to_do() -> None:
    with pytest.raises(ConfigurationError, match="pip install pandas"):
        ResultsTable(hand_made()).to_dataframe()


@pytest.mark.skipif(importlib.util.find_spec("pandas") is None, reason="pandas not installed")
def test_to_dataframe_with_pandas() -> None:
    frame = ResultsTable(hand_made()).to_dataframe()
    assert list(frame.columns) == list(ROW_COLUMNS)
    assert len(frame) == 5


def _msg(payload: Any) -> Message:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Message("qualityinspection/scratch-detection", raw)


def test_intake_dedups_and_keeps_invalid_aside() -> None:
    intake = Intake()
    first = result("dev-a", 1, 10.0)
    assert intake.accept(_msg(first)) == first
    assert intake.accept(_msg(first)) is None  # the spool re-sent it
    no_id = result("dev-a", 2, 10.0)
    del no_id["message_id"]
    assert intake.accept(_msg(no_id)) is not None
    assert intake.accept(_msg(no_id)) is not None  # without an id nothing tells them apart
    assert intake.accept(_msg(b"not json")) is None
    broken = result("dev-a", 3, 10.0)
    broken["latency_ms"]["total"] = -1
    assert intake.accept(_msg(broken)) is None
    table = intake.table()
    assert len(table) == 3 and table.duplicates == 1
    assert [i.field for i in table.invalid] == ["(payload)", "latency_ms.total"]
    assert "minimum" in table.invalid[1].reason
    assert table.invalid[1].to_json()["topic"] == "qualityinspection/scratch-detection"


def test_intake_without_validation_still_needs_json_objects() -> None:
    intake = Intake(validate=False)
    assert intake.accept(_msg({"anything": 1})) == {"anything": 1}
    assert intake.accept(_msg(b"[1]")) is None
    assert intake.invalid_count == 1


def test_intake_bounds() -> None:
    intake = Intake(keep_results=False, max_invalid=2, dedup_window=2)
    for i in range(4):
        intake.accept(_msg(b"x"))
        assert intake.accept(_msg(result("d", i, 5.0))) is not None
    assert intake.results == []
    assert intake.invalid_count == 4 and len(intake.invalid) == 2
    # id 0 fell out of the two-id window, id 3 did not
    assert intake.accept(_msg(result("d", 0, 5.0))) is not None
    assert intake.accept(_msg(result("d", 3, 5.0))) is None


def test_intake_for_health_reports() -> None:
    from edgekit.schemas import load_schema

    health = load_schema("health")["examples"][0]
    intake = Intake(schema="health")
    assert intake.accept(_msg(health)) == health
    assert intake.accept(_msg(result("dev-a", 1, 10.0))) is None  # a result is not a health report
    assert intake.invalid[0].field == "images_processed"
