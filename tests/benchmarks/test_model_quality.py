"""benchmarks/model_quality.py runs end to end (``--quick``): edgekit rows, YOLO rows from a
YOLO-format ONNX built here (no ultralytics), and the skip note without one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")  # compile_model's int8 calibration path, as in model_latency

pytestmark = [pytest.mark.slow, pytest.mark.train]

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "model_quality.py"
README = SCRIPT.parents[1] / "README.md"


def tiny_yolo_onnx(path: Path, size: int = 448) -> Path:
    """An ultralytics-shaped detector: ``images`` [1, 3, 448, 448] -> ``output0`` [1, 5, 196].

    One strided convolution (the "network"), then a head like ultralytics' export:
    Reshape to anchors, Sigmoid, scaled to box pixels (cx, cy, w, h) and a 0-1 score.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    cells = (size // 32) ** 2
    weight = rng.normal(0, 0.02, (5, 3, 32, 32)).astype(np.float32)
    scale = np.array([size, size, 120, 120, 1], np.float32).reshape(1, 5, 1)
    graph = helper.make_graph(
        [
            helper.make_node(
                "Conv", ["images", "w"], ["f"], "/model.0/conv/Conv", strides=[32, 32]
            ),
            helper.make_node("Reshape", ["f", "shape"], ["r"], "/model.22/Reshape"),
            helper.make_node("Sigmoid", ["r"], ["s"], "/model.22/Sigmoid"),
            helper.make_node("Mul", ["s", "scale"], ["output0"], "/model.22/Mul"),
        ],
        "tiny-yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 5, cells])],
        [
            numpy_helper.from_array(weight, "w"),
            numpy_helper.from_array(np.array([1, 5, cells], np.int64), "shape"),
            numpy_helper.from_array(scale, "scale"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    helper.set_model_props(model, {"names": "{0: 'scratch'}", "imgsz": f"[{size}, {size}]"})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


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
    assert "| model | AP50 real val | p50 ms (1 thr) |" in section and "_Machine: " in section
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
    yolo = tiny_yolo_onnx(tmp_path / "tiny-yolo.onnx")
    stdout, result, section = _run(tmp_path, work, tag_scratches, "--yolo-onnx", str(yolo))
    rows = _rows(stdout)
    assert set(rows) == {"edgekit fp32", "edgekit int8", "YOLOv8n fp32", "YOLOv8n int8"}
    for cells in rows.values():
        assert 0.0 <= float(cells[1]) <= 1.0 and float(cells[2]) > 0
    assert "head after last convs in float" in rows["YOLOv8n int8"][-1]
    assert "faster than YOLOv8n int8" in section
    assert any("faster than YOLOv8n int8" in goal for goal in result["goals"])
    int8 = next(r for r in result["rows"] if r["name"] == "YOLOv8n int8")
    import onnx

    ops = {n.op_type for n in onnx.load(int8["file"]).graph.node}
    assert "QuantizeLinear" in ops and "Sigmoid" in ops  # the conv quantized, the head in float


def test_yolo_decoder_letterboxes_and_maps_boxes_back_to_the_photo(tmp_path: Path) -> None:
    """450x300 -> 448x448 with 74-75 px grey bands; a decoded box returns in photo pixels, NMS
    drops its duplicate, scores under the threshold go."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import model_quality
    finally:
        sys.path.remove(str(SCRIPT.parent))
    predictor = model_quality.YoloPredictor(tiny_yolo_onnx(tmp_path / "y.onnx"))
    canvas, gain, left, top = predictor.letterbox(np.zeros((300, 450, 3), np.uint8))
    assert canvas.shape == (448, 448, 3) and (left, top) == (
        0,
        74,
    )  # 299 rows, as ultralytics rounds
    assert canvas[0, 0, 0] == 114 and canvas[100, 10, 0] == 0
    assert gain == pytest.approx(448 / 450)
    # cx, cy, w, h, score per anchor: a box, its near duplicate, a low-score box.
    out = np.array(
        [
            [224.0, 225.0, 50.0],
            [224.0, 224.0, 100.0],
            [44.8, 44.8, 10.0],
            [89.6, 89.6, 10.0],
            [0.9, 0.8, 0.005],
        ],
        np.float32,
    )
    dets = predictor.decode(out, (450, 300), gain, left, top, 0.01)
    assert len(dets) == 1 and dets[0].score == pytest.approx(0.9) and dets[0].label == "scratch"
    box = dets[0].box
    assert (box.left, box.top, box.width, box.height) == pytest.approx(
        (202.5, 105.67, 45, 90), abs=0.01
    )
