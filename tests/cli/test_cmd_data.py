"""``edgekit data synth`` and ``edgekit data inspect``."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.cli import main


def test_synth_then_inspect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "syn"
    assert main(["data", "synth", "--out", str(out), "--count", "5", "--seed", "2"]) == 0
    assert len(list((out / "images").glob("*.jpg"))) == 5
    assert (out / "labels.csv").is_file()
    capsys.readouterr()
    assert main(["data", "inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "images         5 (5 groups)" in text
    assert "box width px" in text and "train 4 images, val 1 images" in text


def test_inspect_reports_errors_as_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", "inspect", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("edgekit data: error:") and str(tmp_path) in err
    assert err.count("\n") == 1


def test_inspect_real_set(tag_scratches: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "inspect", str(tag_scratches)]) == 0
    text = capsys.readouterr().out
    assert "images         152 (38 groups)" in text
    assert "boxes          325 (3 images without boxes)" in text
    assert "train 120 images, val 32 images (8 groups)" in text
