"""Ground Truth CSV export and output manifest readers, valid and malformed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgekit.data import load_dataset, read_labels_csv, read_manifest, write_labels_csv
from edgekit.data.groundtruth import CSV_COLUMNS, group_of
from edgekit.data.types import Box
from edgekit.errors import DataError

HEADER = ",".join(CSV_COLUMNS)
GOOD = "\"[{'class_id': 0, 'top': 10, 'left': 20, 'height': 30, 'width': 40}]\""


def _image(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 90, np.uint8)).save(path)
    return path


def _row(name: str, annotations: str = GOOD, width: str = "64", height: str = "48") -> str:
    return f"images/{name},{width},{height},3,{annotations},1657199072.0,labeling-job/x,APPROVED"


def _csv(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    for name in ("a-cropped-left-top.jpg", "a-cropped-right-top.jpg", "b-cropped-left-top.jpg"):
        _image(tmp_path / "images" / name)
    path = tmp_path / "labels.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_group_of_strips_the_crop_suffix() -> None:
    assert group_of("images/image-2020-04-22-11-07-29-26-cropped-left-top.jpg") == (
        "image-2020-04-22-11-07-29-26"
    )
    assert group_of("s3://bucket/x/photo.png") == "photo"


def test_reads_a_valid_csv(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        _row("a-cropped-left-top.jpg"),
        _row("a-cropped-right-top.jpg", "[]"),
        _row("b-cropped-left-top.jpg"),
    )
    dataset = read_labels_csv(path)
    assert len(dataset) == 3
    first = dataset.samples[0]
    assert first.boxes == (Box(20.0, 10.0, 40.0, 30.0, 0),)
    assert first.image_path == tmp_path / "images" / "a-cropped-left-top.jpg"
    assert (first.width, first.height) == (64, 48)
    assert first.group == "a" and first.source_ref == "images/a-cropped-left-top.jpg"
    assert dataset.samples[1].boxes == ()
    assert [s.group for s in dataset.samples] == ["a", "a", "b"]
    assert load_dataset(tmp_path).samples == dataset.samples


def _error(func, *args, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        func(*args, **kwargs)
    return info.value


def test_missing_column_names_file_and_header_line(tmp_path: Path) -> None:
    header = HEADER.replace("annotations,", "")
    path = _csv(tmp_path, "images/a-cropped-left-top.jpg,64,48,3,0.0,job,APPROVED", header=header)
    err = _error(read_labels_csv, path)
    assert f"{path}:1:" in str(err) and "annotations" in str(err)
    assert err.path == str(path) and err.line == 1


@pytest.mark.parametrize(
    ("annotations", "needle"),
    [
        ("\"[{'class_id': 0, 'top': 1\"", "Python-literal"),
        ("\"__import__('os').system('echo hacked')\"", "Python-literal"),
        ("\"{'class_id': 0}\"", "must be a list"),
        ("\"[{'class_id': 0, 'top': 1, 'left': 2, 'height': 3}]\"", "lacks width"),
        ("\"[{'class_id': 0, 'top': 1, 'left': 2, 'height': 3, 'width': 0}]\"", "zero or negative"),
        (
            "\"[{'class_id': 0, 'top': 1, 'left': 2, 'height': -3, 'width': 4}]\"",
            "zero or negative",
        ),
        ("\"[{'class_id': 0, 'top': 1, 'left': -5, 'height': 3, 'width': 4}]\"", "outside"),
        ("\"[{'class_id': 0, 'top': 1, 'left': 50, 'height': 3, 'width': 40}]\"", "outside"),
        ("\"[{'class_id': 0, 'top': 'x', 'left': 2, 'height': 3, 'width': 4}]\"", "number"),
        ("\"[{'class_id': 0.5, 'top': 1, 'left': 2, 'height': 3, 'width': 4}]\"", "class_id"),
        ('"[7]"', "must be a dict"),
    ],
)
def test_bad_annotation_names_file_and_line(tmp_path: Path, annotations: str, needle: str) -> None:
    path = _csv(
        tmp_path, _row("a-cropped-left-top.jpg"), _row("b-cropped-left-top.jpg", annotations)
    )
    err = _error(read_labels_csv, path)
    assert f"{path}:3:" in str(err), str(err)
    assert needle in str(err)
    assert err.line == 3


def test_missing_image_names_file_line_and_image(tmp_path: Path) -> None:
    path = _csv(tmp_path, _row("nope-cropped-left-top.jpg"))
    err = _error(read_labels_csv, path)
    assert f"{path}:2:" in str(err) and "nope-cropped-left-top.jpg" in str(err)
    assert "not found" in str(err)


@pytest.mark.parametrize(("width", "height"), [("0", "48"), ("abc", "48"), ("64", "")])
def test_bad_image_size_names_line(tmp_path: Path, width: str, height: str) -> None:
    path = _csv(tmp_path, _row("a-cropped-left-top.jpg", width=width, height=height))
    assert f"{path}:2:" in str(_error(read_labels_csv, path))


def test_short_row_names_line(tmp_path: Path) -> None:
    path = _csv(tmp_path, _row("a-cropped-left-top.jpg"), "images/a-cropped-left-top.jpg,64")
    err = _error(read_labels_csv, path)
    assert f"{path}:3:" in str(err)


def test_empty_csv(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("")
    assert f"{path}:1:" in str(_error(read_labels_csv, path))


def _manifest_line(ref: str, boxes: list[dict], attr: str = "scratch-job", **extra) -> str:
    record = {
        "source-ref": ref,
        attr: {"image_size": [{"width": 64, "height": 48, "depth": 3}], "annotations": boxes},
        f"{attr}-metadata": {
            "objects": [{"confidence": 0.9} for _ in boxes],
            "class-map": {"0": "scratch", "1": "dent"},
            "type": "groundtruth/object-detection",
            "human-annotated": "yes",
            "creation-date": "2022-07-07T12:00:00.000000",
            "job-name": f"labeling-job/{attr}",
        },
        **extra,
    }
    return json.dumps(record)


BOX = {"class_id": 1, "top": 5, "left": 6, "width": 7, "height": 8}


def test_reads_a_valid_manifest(tmp_path: Path) -> None:
    _image(tmp_path / "images" / "p-cropped-left-top.jpg")
    _image(tmp_path / "local.png")
    path = tmp_path / "output.manifest"
    path.write_text(
        _manifest_line("s3://bucket/raw/p-cropped-left-top.jpg", [BOX])
        + "\n\n"
        + _manifest_line("local.png", [])
        + "\n"
    )
    dataset = read_manifest(path)
    assert len(dataset) == 2
    first = dataset.samples[0]
    assert first.image_path == tmp_path / "images" / "p-cropped-left-top.jpg"
    assert first.boxes == (Box(6.0, 5.0, 7.0, 8.0, 1),)
    assert first.group == "p" and first.source_ref.startswith("s3://")
    assert dataset.samples[1].image_path == tmp_path / "local.png"
    assert dataset.labels == {0: "scratch", 1: "dent"}
    assert load_dataset(tmp_path).samples == dataset.samples
    assert load_dataset(path).labels == dataset.labels


def test_manifest_with_two_label_attributes_needs_a_choice(tmp_path: Path) -> None:
    _image(tmp_path / "a.png")
    second = {"image_size": [{"width": 64, "height": 48, "depth": 3}], "annotations": []}
    path = tmp_path / "out.manifest"
    path.write_text(_manifest_line("a.png", [BOX], other=second) + "\n")
    err = _error(read_manifest, path)
    assert f"{path}:1:" in str(err) and "label_attribute" in str(err)
    assert read_manifest(path, label_attribute="other").samples[0].boxes == ()
    assert len(read_manifest(path, label_attribute="scratch-job").samples[0].boxes) == 1


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"job": {"annotations": []}}), "source-ref"),
        (_manifest_line("a.png", [{**BOX, "width": 0}]), "zero or negative"),
        (_manifest_line("a.png", [{"class_id": 0}]), "lacks"),
        (_manifest_line("missing.png", [BOX]), "not found"),
        (json.dumps({"source-ref": "a.png", "job": {"annotations": []}}), "image_size"),
    ],
)
def test_bad_manifest_line_names_file_and_line(tmp_path: Path, line: str, needle: str) -> None:
    _image(tmp_path / "a.png")
    path = tmp_path / "out.manifest"
    path.write_text(_manifest_line("a.png", [BOX]) + "\n" + line + "\n")
    err = _error(read_manifest, path)
    assert f"{path}:2:" in str(err), str(err)
    assert needle in str(err)


def test_load_dataset_errors(tmp_path: Path) -> None:
    assert "no labels.csv" in str(_error(load_dataset, tmp_path))
    assert "no such file" in str(_error(load_dataset, tmp_path / "absent"))
    (tmp_path / "a.manifest").write_text("")
    (tmp_path / "b.manifest").write_text("")
    assert "several label files" in str(_error(load_dataset, tmp_path))


def test_write_labels_csv_roundtrip(tmp_path: Path) -> None:
    path = _csv(tmp_path, _row("a-cropped-left-top.jpg"), _row("b-cropped-left-top.jpg", "[]"))
    dataset = read_labels_csv(path)
    out = write_labels_csv(dataset.samples, tmp_path / "copy.csv", labeling_job="job")
    again = read_labels_csv(out)
    assert again.samples == dataset.samples
    text = out.read_text().splitlines()
    assert text[0] == HEADER
    assert text[1].startswith("images/a-cropped-left-top.jpg,64,48,3,")
    assert "[{'class_id': 0, 'top': 10, 'left': 20, 'height': 30, 'width': 40}]" in text[1]


def test_reads_the_real_data_set(tag_scratches: Path) -> None:
    dataset = load_dataset(tag_scratches)
    assert len(dataset) == 152
    assert dataset.labels == {0: "scratch"}
    assert len({s.group for s in dataset.samples}) == 38
    boxes = [b for s in dataset.samples for b in s.boxes]
    assert len(boxes) == 325
    for sample in dataset.samples:
        assert sample.image_path.is_file()
        assert (sample.width, sample.height) == (450, 300)
        assert "-cropped-" not in sample.group
        for box in sample.boxes:
            x0, y0, x1, y1 = box.xyxy()
            assert box.class_id == 0 and 0 <= x0 < x1 <= 451 and 0 <= y0 < y1 <= 301
    assert sum(1 for s in dataset.samples if not s.boxes) == 3
