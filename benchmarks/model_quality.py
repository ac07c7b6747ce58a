"""Accuracy and speed in one run: edgekit's detector against a YOLOv8n ONNX (optional).

Four rows, each scored on the same photos with the same evaluator and timed on the
same image with the same clock:

1. edgekit fp32: the shipped model (or ``--model``), ``compile_model(..., "onnxruntime-fp32")``;
2. edgekit int8: ``compile_model(..., "onnxruntime-int8")`` (static QDQ, edgekit's parity gate);
3. YOLOv8n fp32: ``--yolo-onnx PATH`` (ultralytics' ONNX export, output ``[1, 4 + classes,
   anchors]``, letterboxed input), with ONNX Runtime;
4. YOLOv8n int8: the same file quantized with ONNX Runtime's static QDQ, every node after the
   head's last convolutions kept in float (the issue's "head in float": quantizing the final
   concat, which mixes box pixels with 0-1 scores, destroys it), calibrated on training photos.

AP50 comes from ``edgekit.model.evaluate.evaluate`` on ``evaluation_data(<data>, "val")``:
the real validation split ``edgekit evaluate --data <data> --split val`` uses
(``split_dataset(val_fraction=0.2, seed=0)``, by photo). Latency is end to end
(image array -> detections in original pixels: resize/letterbox, the network, decoding
and NMS), batch 1, one thread, p50.

The YOLO rows run through a small decoder in this file (letterbox 114 grey, /255, per-anchor
best class, greedy NMS at IoU 0.7 as ultralytics validates, boxes mapped back to the
photo); without ``--yolo-onnx`` they are printed as skipped with a note. Build the YOLO model
with ``bash benchmarks/yolo_baseline/setup_env.sh`` (its own environment: ultralytics is
AGPL-3.0 and never an edgekit dependency).

    .venv/bin/python benchmarks/model_quality.py --yolo-onnx /tmp/edgekit-yolo-baseline/yolov8n.onnx
    .venv/bin/python benchmarks/model_quality.py --quick     # seconds; smoke test
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _machine import BenchOutput, add_readme_option, machine_info
from model_latency import compile_cached

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO))

DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "tag-scratches"
DEFAULT_WORK = Path(tempfile.gettempdir()) / "edgekit-model-quality"
GOAL_SPEEDUP = 2.5
GOAL_INT8_AP_DROP = 0.01
YOLO_NMS_IOU = 0.7
YOLO_MAX_DET = 300
YOLO_PAD = 114


@dataclass
class Row:
    name: str
    path: Path | None
    predictor: Any = None  # .predict(image, score_threshold=...) -> list[Detection]
    ap50: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    iterations: int = 0
    parameters: int | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# ---- the YOLO side: a small ultralytics-format decoder ------------------------------


class YoloPredictor:
    """An ultralytics YOLO ONNX (``[1, 4 + classes, anchors]``) as an image -> detections call."""

    def __init__(self, path: Path, threads: int = 1, labels: dict[int, str] | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.height, self.width = int(inp.shape[2]), int(inp.shape[3])
        meta = self.session.get_modelmeta().custom_metadata_map
        names = labels or _yolo_names(meta.get("names", ""))
        self.labels = names or {0: "scratch"}

    def letterbox(self, image: np.ndarray) -> tuple[np.ndarray, float, int, int]:
        from PIL import Image

        h, w = image.shape[:2]
        gain = min(self.width / w, self.height / h)
        nw, nh = int(round(w * gain)), int(round(h * gain))
        left = int(round((self.width - nw) / 2 - 0.1))
        top = int(round((self.height - nh) / 2 - 0.1))
        small = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
        canvas = np.full((self.height, self.width, 3), YOLO_PAD, np.uint8)
        canvas[top : top + nh, left : left + nw] = small
        return canvas, gain, left, top

    def tensor(self, image: np.ndarray) -> tuple[np.ndarray, float, int, int]:
        canvas, gain, left, top = self.letterbox(image)
        x = canvas.transpose(2, 0, 1)[None].astype(np.float32) * (1.0 / 255.0)
        return np.ascontiguousarray(x), gain, left, top

    def predict(self, image: Any, score_threshold: float = 0.25) -> list[Any]:
        from edgekit.model.postprocess import as_rgb_array

        array = as_rgb_array(image)
        x, gain, left, top = self.tensor(array)
        out = self.session.run(None, {self.input_name: x})[0][0]  # (4 + nc, anchors)
        h, w = array.shape[:2]
        return self.decode(out, (w, h), gain, left, top, score_threshold)

    def decode(
        self,
        out: np.ndarray,
        size: tuple[int, int],
        gain: float,
        left: int,
        top: int,
        score_threshold: float,
    ) -> list[Any]:
        """``out`` (4 + classes, anchors), boxes cx, cy, w, h in letterboxed input pixels."""
        from edgekit.data.types import Box, Detection

        scores_all = out[4:]
        classes = scores_all.argmax(0)
        scores = scores_all[classes, np.arange(out.shape[1])]
        keep = scores >= score_threshold
        cx, cy, bw, bh = (out[k][keep] for k in range(4))
        scores, classes = scores[keep], classes[keep]
        xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
        order = np.argsort(-scores, kind="stable")[:30000]
        xyxy, scores, classes = xyxy[order], scores[order], classes[order]
        # Per-class NMS in one call: boxes offset by class (as ultralytics does).
        shifted = xyxy + classes[:, None].astype(np.float32) * 4096.0
        kept = _nms(shifted, scores, YOLO_NMS_IOU, YOLO_MAX_DET)
        w, h = size
        dets = []
        for i in kept:
            x1, y1, x2, y2 = xyxy[i]
            x1 = float(np.clip((x1 - left) / gain, 0, w))
            x2 = float(np.clip((x2 - left) / gain, 0, w))
            y1 = float(np.clip((y1 - top) / gain, 0, h))
            y2 = float(np.clip((y2 - top) / gain, 0, h))
            if x2 <= x1 or y2 <= y1:
                continue
            cls = int(classes[i])
            box = Box(x1, y1, x2 - x1, y2 - y1, cls)
            dets.append(Detection(box, float(scores[i]), self.labels.get(cls, str(cls))))
        return dets


def _yolo_names(text: str) -> dict[int, str]:
    """ultralytics writes ``names`` as a Python dict literal in the ONNX metadata."""
    import ast

    try:
        value = ast.literal_eval(text) if text else {}
    except (ValueError, SyntaxError):
        return {}
    return {int(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float, limit: int) -> list[int]:
    from edgekit.model.postprocess import box_iou_matrix

    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while len(order) and len(keep) < limit:
        i, order = int(order[0]), order[1:]
        keep.append(i)
        if len(order):
            order = order[box_iou_matrix(boxes[i : i + 1], boxes[order])[0] <= iou]
    return keep


def yolo_head_nodes(model: Any) -> list[str]:
    """Nodes to keep in float: everything downstream of the head's first Reshape.

    In an ultralytics detection export the backbone and neck hold no Reshape; the head's
    last convolutions (box and class branches) feed Concat -> Reshape, after which come the
    DFL softmax/conv, the anchor arithmetic, the class sigmoid and the final Concat that
    mixes pixels and scores.
    """
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    tail: list[str] = []
    seen: set[int] = set()
    stack = [n for n in model.graph.node if n.op_type == "Reshape"]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        tail.append(node.name)
        for out in node.output:
            stack.extend(consumers.get(out, []))
    return tail


def quantize_yolo(source: Path, work: Path, calibration: list[np.ndarray], tag: str) -> Path:
    """Static QDQ int8 (ONNX Runtime), the head after its last convolutions left in float."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from edgekit.files import sha256_file

    out = work / "yolo" / f"{sha256_file(source)[:12]}-int8-{tag}.onnx"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(source))
    exclude = yolo_head_nodes(model)
    input_name = model.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{input_name: x} for x in calibration])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    tmp = out.with_suffix(".tmp.onnx")
    quantize_static(
        str(source),
        str(tmp),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        nodes_to_exclude=exclude,
    )
    tmp.replace(out)
    return out


def onnx_parameters(path: Path) -> int:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    total = 0
    for init in model.graph.initializer:
        if init.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
            total += int(np.prod(numpy_helper.to_array(init).shape))
    return total


# ---- measuring -----------------------------------------------------------------------


def time_rows(rows: list[Row], image: np.ndarray, iterations: int, rounds: int) -> None:
    """p50/p95 of ``predict(image)``, one thread; rows interleaved, best round kept."""
    from edgekit.benchmarking import measure

    per_round = max(3, iterations // rounds)
    for _ in range(rounds):
        for row in rows:
            if row.predictor is None:
                continue
            stats = measure(
                lambda p=row.predictor: p.predict(image),
                name=row.name,
                threads=1,
                iterations=per_round,
                warmup=3,
                max_seconds=60.0,
            )
            if row.p50_ms is None or stats.p50_ms < row.p50_ms:
                row.p50_ms, row.p95_ms, row.iterations = (
                    stats.p50_ms,
                    stats.p95_ms,
                    stats.iterations,
                )


def _has_data(path: Path) -> bool:
    return (path / "labels.csv").is_file() or any(path.glob("*.manifest"))


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--yolo-onnx", type=Path, help="ultralytics YOLO ONNX export (optional)")
    parser.add_argument("--model", type=Path, help="exported edgekit ONNX (default: shipped)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="tag-scratches folder")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="cache folder")
    parser.add_argument("--iterations", type=int, help="timed calls per row (default 200)")
    parser.add_argument("--rounds", type=int, help="interleaved timing rounds (default 3)")
    parser.add_argument("--calibration", type=int, help="YOLO int8 calibration photos (32)")
    parser.add_argument("--quick", action="store_true", help="few iterations; seconds")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    add_readme_option(parser)
    args = parser.parse_args(argv)

    import onnxruntime

    from edgekit.data import load_image
    from edgekit.data.groundtruth import load_dataset
    from edgekit.data.split import split_dataset
    from edgekit.model import default_model_path
    from edgekit.model.evaluate import SPLIT_SEED, VAL_FRACTION, evaluate, evaluation_data
    from edgekit.model.predict import Predictor

    started = time.perf_counter()
    iterations = args.iterations or (5 if args.quick else 200)
    rounds = args.rounds or (1 if args.quick else 3)
    calibration_count = args.calibration or (4 if args.quick else 32)
    work = args.work.expanduser().resolve()
    work.mkdir(parents=True, exist_ok=True)
    source = (args.model or default_model_path()).expanduser().resolve()
    data = args.data.expanduser()
    has_data = _has_data(data)

    fp32, fp32_status = compile_cached(source, "onnxruntime-fp32", work, quick=args.quick)
    int8, int8_status = compile_cached(source, "onnxruntime-int8", work, quick=args.quick)
    params = onnx_parameters(source)
    rows = [
        Row(
            "edgekit fp32",
            fp32,
            Predictor(fp32, threads=1),
            parameters=params,
            note=f"parity {fp32_status}",
        ),
        Row(
            "edgekit int8",
            int8,
            Predictor(int8, threads=1),
            parameters=params,
            note=f"parity {int8_status}",
        ),
    ]

    val = evaluation_data(data, "val") if has_data else None
    if val is not None and val.samples:
        image = load_image(val.samples[0].image_path)
        image_note = (
            f"the photo {val.samples[0].image_path.name} ({image.shape[1]}x{image.shape[0]})"
        )
    else:
        from edgekit.model.evaluate import synthetic_validation

        image = synthetic_validation(1)[0][0]
        image_note = "a 450x300 synthetic render (no data set)"

    yolo_note = ""
    if args.yolo_onnx is None:
        yolo_note = (
            "YOLOv8n rows skipped: no --yolo-onnx given (build one with "
            "`bash benchmarks/yolo_baseline/setup_env.sh`)."
        )
    elif not args.yolo_onnx.is_file():
        yolo_note = f"YOLOv8n rows skipped: {args.yolo_onnx} does not exist."
    else:
        yolo_path = args.yolo_onnx.expanduser().resolve()
        yolo_params = onnx_parameters(yolo_path)
        fp32_yolo = YoloPredictor(yolo_path, threads=1)
        if has_data:
            train_set, _ = split_dataset(load_dataset(data), VAL_FRACTION, SPLIT_SEED)
            calib_images = [load_image(s.image_path) for s in train_set.samples[:calibration_count]]
        else:
            calib_images = [image] * calibration_count
        calibration = [fp32_yolo.tensor(im)[0] for im in calib_images]
        int8_yolo_path = quantize_yolo(yolo_path, work, calibration, f"cal{len(calibration)}")
        rows += [
            Row(
                "YOLOv8n fp32",
                yolo_path,
                fp32_yolo,
                parameters=yolo_params,
                note="ONNX Runtime, local decoder",
            ),
            Row(
                "YOLOv8n int8",
                int8_yolo_path,
                YoloPredictor(int8_yolo_path, threads=1),
                parameters=yolo_params,
                note=f"QDQ, head after last convs in float, {len(calibration)} calibration photos",
            ),
        ]

    time_rows(rows, image, iterations, rounds)
    if val is not None:
        for row in rows:
            row.ap50 = evaluate(row.predictor, val, progress_desc=f"{row.name}: val").ap50

    by = {row.name: row for row in rows}
    out = BenchOutput("model_quality", args.readme)
    lead = []
    e8 = by["edgekit int8"]
    if "YOLOv8n int8" in by and by["YOLOv8n int8"].p50_ms and e8.p50_ms:
        y8 = by["YOLOv8n int8"]
        lead.append(
            f"**Measured in this run (p50, batch 1, 1 thread, end to end):** edgekit int8 is "
            f"{y8.p50_ms / e8.p50_ms:.2f}x faster than YOLOv8n int8 and "
            f"{by['YOLOv8n fp32'].p50_ms / e8.p50_ms:.2f}x faster than YOLOv8n fp32."
        )
    else:
        lead.append(
            f"**Measured in this run (p50, batch 1, 1 thread, end to end):** edgekit int8 is "
            f"{by['edgekit fp32'].p50_ms / e8.p50_ms:.2f}x faster than edgekit fp32."
        )
    out.text("\n".join(lead))
    table = [
        "| model | AP50 real val | p50 ms (1 thr) | p95 ms (1 thr) | parameters | file size "
        "| note |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        table.append(
            f"| {row.name} | {_fmt(row.ap50)} | {_fmt(row.p50_ms, 1)} | {_fmt(row.p95_ms, 1)} | "
            f"{row.parameters / 1e6:.2f} M | {row.path.stat().st_size / 1e6:.2f} MB | {row.note} |"
        )
    if yolo_note:
        table.append(f"| YOLOv8n fp32 / int8 | skipped | | | | | {yolo_note} |")
    n_val = len(val) if val is not None else 0
    caption = (
        "AP50 at IoU 0.5 with `edgekit.model.evaluate.evaluate` on the real validation split "
        + (
            f"of {data.name} ({n_val} photos, {sum(len(s.boxes) for s in val.samples)} boxes; "
            f"`edgekit evaluate --data {data.name} --split val`: split by photo, "
            f"val_fraction {VAL_FRACTION}, seed {SPLIT_SEED})"
            if val is not None
            else "(n/a: no data set at the --data path)"
        )
        + f". Latency: {image_note}, end to end (resize or letterbox, network, decoding, "
        f"NMS for YOLO), p50/p95 of {rows[0].iterations} calls, best of {rounds} interleaved "
        f"round(s), one thread. edgekit model: {source.name} "
        f"({'shipped' if args.model is None else 'given'}). onnxruntime "
        f"{onnxruntime.__version__}."
    )
    out.table("\n".join(table), caption)
    # The criteria, reported (never asserted).
    goals = []
    e32 = by["edgekit fp32"]
    if e32.ap50 is not None and e8.ap50 is not None:
        drop = abs(e32.ap50 - e8.ap50)
        goals.append(
            f"edgekit int8 AP50 within {GOAL_INT8_AP_DROP} of fp32: "
            f"{'met' if drop <= GOAL_INT8_AP_DROP else 'NOT met'} — |diff| {drop:.3f}"
        )
    if "YOLOv8n int8" in by:
        y32, y8 = by["YOLOv8n fp32"], by["YOLOv8n int8"]
        if e32.ap50 is not None and y32.ap50 is not None:
            goals.append(
                f"edgekit AP50 >= YOLOv8n AP50 (fp32): "
                f"{'met' if e32.ap50 >= y32.ap50 else 'NOT met'} — "
                f"{e32.ap50:.3f} vs {y32.ap50:.3f}"
            )
        speedup = y8.p50_ms / e8.p50_ms
        goals.append(
            f"edgekit int8 >= {GOAL_SPEEDUP:g}x faster than YOLOv8n int8: "
            f"{'met' if speedup >= GOAL_SPEEDUP else 'NOT met'} — {speedup:.2f}x"
        )
    if goals:
        out.text("\n".join(f"- goal: {g}" for g in goals))
    out.finish()
    print(f"\n({time.perf_counter() - started:.0f} s; cache: {work})")
    if args.json:
        payload = {
            "rows": [
                {
                    "name": r.name,
                    "file": str(r.path),
                    "size_bytes": r.path.stat().st_size,
                    "ap50_real_val": r.ap50,
                    "p50_ms": r.p50_ms,
                    "p95_ms": r.p95_ms,
                    "iterations": r.iterations,
                    "parameters": r.parameters,
                    "note": r.note,
                }
                for r in rows
            ],
            "yolo_skipped": yolo_note or None,
            "validation_images": n_val,
            "timed_image": image_note,
            "goals": goals,
            "environment": machine_info(),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
