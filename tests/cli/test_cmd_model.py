"""``edgekit predict``: a default output file it names, and exit 1 when no image was found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.cli import main
from edgekit.cli.cmd_model import DEFAULT_PREDICTIONS
from edgekit.data.synthetic import write_dataset


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("syn")
    write_dataset(root, 2, 0)
    return root / "images"


def test_without_out_the_results_go_to_the_default_file_and_it_says_where(
    images: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "--images", str(images)]) == 0
    written = tmp_path / DEFAULT_PREDICTIONS
    lines = [json.loads(line) for line in written.read_text().splitlines()]
    assert len(lines) == 2 and {"image_name", "detections"} <= set(lines[0])
    err = capsys.readouterr().err
    assert "2 image(s) predicted, 0 skipped" in err
    assert f"written to {written.resolve()}" in err


def test_the_message_names_the_absolute_output_file(
    images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sub" / "p.jsonl"
    assert main(["predict", "--images", str(images), "--out", str(out)]) == 0
    assert f"written to {out.resolve()}" in capsys.readouterr().err


def test_an_empty_folder_is_an_error_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    out = tmp_path / "p.jsonl"
    assert main(["predict", "--images", str(empty), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"edgekit predict: error: {empty}: no image (.bmp, .jpeg, .jpg, .png)" in err
    assert not out.exists()


def test_a_folder_of_unreadable_images_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "p.jsonl"
    assert main(["predict", "--images", str(bad), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "skipped" in err and "a.jpg" in err
    assert f"{bad}: none of the 1 image(s) could be read" in err


def test_evaluate_refuses_zero_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--count", "0"]) == 1
    assert "--count 0: score at least 1 synthetic image" in capsys.readouterr().err
    write_dataset(tmp_path / "one", 1, 0)  # one photo: the validation split is empty
    assert main(["evaluate", "--data", str(tmp_path / "one")]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'one'}: no image to score in the val split" in err
