"""Accuracy and speed in one run: edgekit's detector against a YOLOv8n ONNX (optional).

Four rows, each scored on the same photos with the same evaluator and timed on the
same image with the same clock:

1. edgekit fp32: the shipped model (or ``--model``), ``compile_model(..., "onnxruntime-fp32")``;
2. edgekit int8: ``compile_model(..., "onnxruntime-int8")`` (static QDQ, edgekit's parity gate);
3. YOLOv8n fp32: ``--yolo-onnx PATH`` (ultralytics' ONNX export, output ``[1, 4 + classes,
   anchors]``, letterboxed input) through ``compile_model(..., "onnxruntime-fp32")``, which
   detects the YOLO format (:mod:`edgekit.compile.yolo`) and writes letterbox/NMS metadata;
4. YOLOv8n int8: ``compile_model(..., "onnxruntime-int8")``, which keeps the head after its
   last convolutions in float, calibrated on photos of the training split.

AP50 comes from ``edgekit.model.evaluate.evaluate`` on ``evaluation_data(<data>, "val")``:
the real validation split ``edgekit evaluate --data <data> --split val`` uses
(``split_dataset(val_fraction=0.2, seed=0)``, by photo). Latency is end to end
(image array -> detections in original pixels: resize/letterbox, the network, decoding
and NMS), batch 1, one thread, p50.

So the YOLO rows run through edgekit's own ``Predictor`` and evaluator, like any model
``edgekit compile`` wrote; without ``--yolo-onnx`` they are printed as skipped with a note.
Build the YOLO model with ``bash benchmarks/yolo_baseline/setup_env.sh`` (its own
environment: ultralytics is AGPL-3.0 and never an edgekit dependency).

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
#: YOLOv8n from scratch, 45 min on an idle 2-core machine (issue 16), edgekit's evaluator.
ISSUE_YOLO_AP50 = 0.846


@dataclass
class Row:
    name: str
    path: Path | None
    predictor: Any = None  # .predict(image, score_threshold=...) -> list[Detection]
    ap50: float | None = None
    ap75: float | None = None
    ap50_95: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    iterations: int = 0
    parameters: int | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# ---- the YOLO side: edgekit's own YOLO support (edgekit.compile.yolo) ---------------


def calibration_folder(train_photos: list[Path], work: Path) -> Path:
    """A folder of symlinks to training photos (never copies) for YOLO calibration and parity."""
    folder = work / f"train-photos-{len(train_photos)}"
    folder.mkdir(parents=True, exist_ok=True)
    for photo in train_photos:
        link = folder / photo.name
        if not link.is_symlink():
            link.symlink_to(photo.resolve())
    return folder


def compile_yolo(
    source: Path, target: str, work: Path, photos: Path, count: int
) -> tuple[Path, str]:
    """``compile_model`` on an ultralytics export (format detected), calibrated on ``photos``."""
    import warnings

    from edgekit.compile import ParityWarning, compile_model
    from edgekit.files import sha256_file

    out = work / "yolo" / f"{sha256_file(source)[:12]}-{target}-{photos.name}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParityWarning)
        result = compile_model(
            source,
            target,
            out,
            calibration=photos,
            calibration_count=count,
            golden=photos,
            golden_count=count,
            force=True,
        )
    return result.model_path, result.status


def baseline_text(path: Path) -> str:
    """How the YOLO model was trained, from ``setup_env.sh``'s ``baseline.json`` when present."""
    if not path.is_file():
        return ""
    data = json.loads(path.read_text())
    settings = data.get("settings", {})
    budget = f", time budget {settings['time']} h" if settings.get("time") else ""
    return (
        f"{data.get('model', 'YOLO')}, imgsz {settings.get('imgsz')}, batch "
        f"{settings.get('batch')}, {data.get('epochs_reached')} epochs in "
        f"{data.get('train_seconds', 0):.0f} s{budget} (ultralytics "
        f"{data.get('ultralytics', '?')}, its own val mAP50 {data.get('ultralytics_val_map50')})"
    )


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
    parser.add_argument(
        "--calibration", type=int, help="training photos to calibrate YOLO int8 on (32)"
    )
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
    yolo_training = ""
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
        yolo_training = baseline_text(yolo_path.parent / "baseline.json")
        if has_data:
            train_set, _ = split_dataset(load_dataset(data), VAL_FRACTION, SPLIT_SEED)
            photos = [s.image_path for s in train_set.samples[:calibration_count]]
        else:
            photos = []
        if photos:
            folder = calibration_folder(photos, work)
            y32, y32_status = compile_yolo(yolo_path, "onnxruntime-fp32", work, folder, len(photos))
            y8, y8_status = compile_yolo(yolo_path, "onnxruntime-int8", work, folder, len(photos))
            rows += [
                Row(
                    "YOLOv8n fp32",
                    y32,
                    Predictor(y32, threads=1),
                    parameters=yolo_params,
                    note=f"edgekit compile (YOLO detected), parity {y32_status}",
                ),
                Row(
                    "YOLOv8n int8",
                    y8,
                    Predictor(y8, threads=1),
                    parameters=yolo_params,
                    note=f"edgekit compile, head after last convs in float, "
                    f"{len(photos)} training photos for calibration, parity {y8_status}",
                ),
            ]
        else:
            yolo_note = "YOLOv8n rows skipped: no data set to calibrate the int8 model on."

    time_rows(rows, image, iterations, rounds)
    if val is not None:
        for row in rows:
            scored = evaluate(row.predictor, val, progress_desc=f"{row.name}: val")
            row.ap50, row.ap75, row.ap50_95 = scored.ap50, scored.ap75, scored.ap50_95

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
        "| model | AP50 real val | AP75 | AP50:95 | p50 ms (1 thr) | p95 ms (1 thr) | parameters "
        "| file size | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        table.append(
            f"| {row.name} | {_fmt(row.ap50)} | {_fmt(row.ap75)} | {_fmt(row.ap50_95)} | "
            f"{_fmt(row.p50_ms, 1)} | {_fmt(row.p95_ms, 1)} | "
            f"{row.parameters / 1e6:.2f} M | {row.path.stat().st_size / 1e6:.2f} MB | {row.note} |"
        )
    if yolo_note:
        table.append(f"| YOLOv8n fp32 / int8 | skipped | | | | | | | {yolo_note} |")
    n_val = len(val) if val is not None else 0
    caption = (
        "AP50 at IoU 0.5 (AP75 at 0.75, AP50:95 COCO's mean over 0.50-0.95: how tight the "
        "boxes are) with `edgekit.model.evaluate.evaluate` on the real validation split "
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
        f"{onnxruntime.__version__}." + (f" YOLOv8n: {yolo_training}." if yolo_training else "")
    )
    out.table("\n".join(table), caption)
    # The issue's criteria, reported (never asserted).
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
                f"{e32.ap50:.3f} vs {y32.ap50:.3f} (one training seed each; this YOLO file; "
                f"issue 16's 45-minute YOLOv8n run scored {ISSUE_YOLO_AP50})"
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
                    "ap75_real_val": r.ap75,
                    "ap50_95_real_val": r.ap50_95,
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
