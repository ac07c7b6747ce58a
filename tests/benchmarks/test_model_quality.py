"""benchmarks/model_quality.py runs end to end (``--quick``): edgekit rows, YOLO rows from a
YOLO-format ONNX (``edgekit.compile.testing.build_yolo_model``, no ultralytics) through
edgekit's own YOLO support, and the skip note without one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")  # compile_model's int8 calibration path, as in model_latency

pytestmark = [pytest.mark.slow, pytest.mark.train]

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "model_quality.py"
README = SCRIPT.parents[1] / "README.md"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for both runs, so edgekit's models are compiled once."""
    return tmp_path_factory.mktemp("model-quality-work")


def _run(tmp_path: Path, work: Path, data: Path, *extra: str) -> tuple[str, dict, str]:
    out = tmp_path / "result.json"
    readme = tmp_path / "README.md"
    readme.write_text(README.read_text())
    command = [
        sys.executable,
        str(SCRIPT),
        "--quick",
        "--iterations",
        "3",
        "--data",
        str(data),
        "--work",
        str(work),
        "--json",
        str(out),
        "--readme",
        str(readme),
        *extra,
    ]
    env = {**os.environ, "EDGEKIT_QUIET": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    text = readme.read_text()
    start = text.index("<!-- bench:model_quality -->\n")
    section = text[start : text.index("<!-- /bench -->", start)]
    assert (
        "| model | AP50 real val | AP75 | AP50:95 | p50 ms (1 thr) |" in section
        and "_Machine: " in section
    )
    return done.stdout, json.loads(out.read_text()), section


def _rows(stdout: str) -> dict[str, list[str]]:
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| edgekit") or line.startswith("| YOLOv8n"):
            rows[cells[0]] = cells
    return rows


def test_yolo_rows_skipped_with_a_note_without_a_yolo_model(
    tmp_path: Path, work: Path, tag_scratches: Path
) -> None:
    stdout, result, _ = _run(tmp_path, work, tag_scratches)
    rows = _rows(stdout)
    assert set(rows) == {"edgekit fp32", "edgekit int8", "YOLOv8n fp32 / int8"}
    assert "YOLOv8n rows skipped: no --yolo-onnx given" in rows["YOLOv8n fp32 / int8"][-1]
    for name in ("edgekit fp32", "edgekit int8"):
        assert 0.0 <= float(rows[name][1]) <= 1.0 and float(rows[name][2]) > 0
    assert result["validation_images"] == 32
    assert "val_fraction 0.2, seed 0" in stdout and "load average" in stdout
    assert "goal: edgekit int8 AP50 within 0.01 of fp32" in stdout


def test_yolo_rows_from_an_ultralytics_format_onnx(
    tmp_path: Path, work: Path, tag_scratches: Path
) -> None:
    from edgekit.compile.testing import build_yolo_model

    yolo = build_yolo_model(tmp_path / "yolo.onnx", height=448, width=448)
    stdout, result, section = _run(tmp_path, work, tag_scratches, "--yolo-onnx", str(yolo))
    rows = _rows(stdout)
    assert set(rows) == {"edgekit fp32", "edgekit int8", "YOLOv8n fp32", "YOLOv8n int8"}
    for cells in rows.values():
        assert 0.0 <= float(cells[1]) <= 1.0 and float(cells[2]) > 0
    assert "head after last convs in float" in rows["YOLOv8n int8"][-1]
    assert "YOLO detected" in rows["YOLOv8n fp32"][-1]
    assert "faster than YOLOv8n int8" in section
    assert any("faster than YOLOv8n int8" in goal for goal in result["goals"])
    int8 = next(r for r in result["rows"] if r["name"] == "YOLOv8n int8")
    import onnx

    ops = {n.op_type for n in onnx.load(int8["file"]).graph.node}
    assert "QuantizeLinear" in ops and "Sigmoid" in ops  # the conv quantized, the head in float
