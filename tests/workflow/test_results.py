"""edgekit.workflow.results: where notebook 04's images are, and did any result arrive."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from edgekit.errors import ConfigurationError, NoResultsError
from edgekit.results import ResultsTable
from edgekit.settings import Settings
from edgekit.workflow.results import (
    check_results,
    find_image_dir,
    regenerate_sample_images,
    summary_rows,
)

SETTINGS = Settings(backend="local")
AWS = Settings(backend="aws", region="eu-west-1")
APP = SETTINGS.inference_component


def result_message(
    thing: str, image: str, second: int, *, defect: bool, total: float = 10.0
) -> dict:
    detections = (
        [{"class_id": 0, "label": "scratch", "score": 0.8, "box": [10, 20, 30, 40]}]
        if defect
        else []
    )
    return {
        "timestamp": f"2026-01-01T00:00:{second:02d}.000Z",
        "thing_name": thing,
        "image_name": image,
        "model": {"name": "tag-scratch-detector", "version": "1.0.0"},
        "detections": detections,
        "defect": defect,
        "latency_ms": {"preprocess": 1.0, "inference": total - 1.0, "total": total},
    }


def test_summary_rows_and_check_results() -> None:
    table = ResultsTable(
        [result_message("core-10", "a.jpg", 1, defect=True)]
        + [result_message("core-2", f"{i}.jpg", i, defect=i == 0) for i in range(4)]
    )
    rows = summary_rows(table)
    assert [r["thing_name"] for r in rows] == ["core-2", "core-10"]
    assert rows[0]["defect_rate"] == "25 %" and rows[1]["defect_rate"] == "100 %"
    assert rows[0]["model_versions"] == "tag-scratch-detector@1.0.0"
    check_results(SETTINGS, table, things=["core-2"], timeout=5)
    with pytest.raises(NoResultsError, match=f"no result on topic .* {APP}"):
        check_results(SETTINGS, ResultsTable(), things=["core-2"], timeout=5)


def test_regenerated_sample_images_are_the_components_images(tmp_path: Path) -> None:
    from edgekit.components.artifacts import sample_images_zip

    folder = regenerate_sample_images(tmp_path)
    with zipfile.ZipFile(sample_images_zip(tmp_path / "zip")) as zf:
        shipped = {name: zf.read(name) for name in zf.namelist()}
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == shipped
    assert not (tmp_path / ".sample-images-build").exists()
    assert regenerate_sample_images(tmp_path) == folder  # found, not made again


def test_find_image_dir_prefers_the_parameter(tmp_path: Path) -> None:
    assert find_image_dir(AWS, tmp_path, image_dir=tmp_path) == (tmp_path, "image_dir parameter")
    with pytest.raises(ConfigurationError, match="image_dir="):
        find_image_dir(AWS, tmp_path, image_dir=tmp_path / "nope")
    folder, how = find_image_dir(AWS, tmp_path)  # aws: no device folder to read
    assert folder == tmp_path / "sample-images" and "regenerated" in how
