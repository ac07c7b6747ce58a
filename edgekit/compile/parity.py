"""Parity check: does the compiled model still find what the source model finds?

Both models run on the same golden images. Two views are reported:

- AP50 of each against the golden labels (every detection down to
  ``AP_MIN_SCORE`` is ranked), and the drop, which gates the compile;
- per-image agreement at the model's operating threshold, which is what a
  device reports: detections of the two models are matched greedily (same
  class, IoU >= 0.5, highest source score first), then the max and mean
  absolute score difference of matched pairs and the images where the number
  of detections differs.

A plain image folder has no labels; then the source model's detections at
its operating threshold are the reference, so AP50 measures how well the
compiled model reproduces the source (the source scores 1.0 by construction).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.compile.images import LabeledImage, describe_source, iter_source
from edgekit.data.types import Box, Detection
from edgekit.model.evaluate import (
    AP_MIN_SCORE,
    VALIDATION_SEED,
    average_precision,
    iou,
    synthetic_validation,
)
from edgekit.model.predict import DEFAULT_RUNTIME, Predictor
from edgekit.spelling import parameter_text

DEFAULT_MAX_AP50_DROP = 0.02
DEFAULT_GOLDEN_COUNT = 200
MATCH_IOU = 0.5
WORST_IMAGES = 5


@dataclass(frozen=True)
class ParityResult:
    golden: str
    reference: str
    """"ground truth", or "source model detections" for an unlabeled folder."""
    images: int
    source_ap50: float
    compiled_ap50: float
    ap50_drop: float
    max_ap50_drop: float
    score_threshold: float
    source_detections: int
    compiled_detections: int
    matched_detections: int
    max_abs_score_diff: float
    mean_abs_score_diff: float
    images_with_count_diff: int
    total_count_diff: int
    passed: bool
    seconds: float
    forced: bool = False
    worst_images: tuple[dict[str, Any], ...] = ()
    """Up to WORST_IMAGES images where the models disagree most (count, then score)."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, float):
                data[key] = round(value, 6)
        data["worst_images"] = list(self.worst_images)
        return data

    def failure_message(self, source: Path, compiled: Path) -> str:
        return (
            f"{compiled}: AP50 dropped from {self.source_ap50:.4f} ({source.name}) to "
            f"{self.compiled_ap50:.4f} on {self.golden}, a loss of {self.ap50_drop:.4f} "
            f"(allowed {self.max_ap50_drop:.4f}). Try more or more representative calibration "
            f"images (--calibration DIR) or the fp32 target; {parameter_text('force', True)} "
            "keeps the model anyway."
        )


def _pairs(source_dets: list[Detection], compiled_dets: list[Detection]) -> tuple[list[float], int]:
    """Absolute score differences of matched detections, and the number matched."""
    diffs: list[float] = []
    used = np.zeros(len(compiled_dets), dtype=bool)
    for det in sorted(source_dets, key=lambda d: -d.score):
        best, best_iou = -1, MATCH_IOU
        for j, other in enumerate(compiled_dets):
            if used[j] or other.box.class_id != det.box.class_id:
                continue
            overlap = iou(det, other)
            if overlap >= best_iou:
                best, best_iou = j, overlap
        if best >= 0:
            used[best] = True
            diffs.append(abs(float(det.score) - float(compiled_dets[best].score)))
    return diffs, len(diffs)


def check_parity(
    source: Path,
    compiled: Path,
    *,
    golden: Path | None = None,
    golden_count: int = DEFAULT_GOLDEN_COUNT,
    max_ap50_drop: float = DEFAULT_MAX_AP50_DROP,
    runtime: str = DEFAULT_RUNTIME,
) -> ParityResult:
    """Compare ``compiled`` with ``source`` on the golden set; never raises on a drop.

    ``golden`` is a Ground Truth data set or an image folder; None means the
    fixed synthetic validation set (``golden_count`` images, seed 1000).
    ``runtime`` runs the compiled model (the manifest runtime its target
    records, e.g. ``openvino-int8``); the source always runs on ONNX Runtime.
    """
    from edgekit.progress import progress  # tqdm: a device running the agent may lack it

    started = time.perf_counter()
    src = Predictor(source)
    cmp = Predictor(compiled, runtime=runtime)
    threshold = float(src.info.score_threshold)
    items: list[LabeledImage]
    if golden is None:
        validation = synthetic_validation(golden_count)
        items = [
            LabeledImage(f"validation-{i:05d}", image, tuple(boxes))
            for i, (image, boxes) in enumerate(validation)
        ]
        seed = getattr(validation, "seed", VALIDATION_SEED)
        description = f"the synthetic validation set ({len(items)} images, seed {seed})"
    else:
        items = list(iter_source(golden, count=golden_count, seed=VALIDATION_SEED))
        description = describe_source(golden, count=len(items), seed=VALIDATION_SEED)

    source_all: list[list[Detection]] = []
    compiled_all: list[list[Detection]] = []
    for item in progress(items, desc="parity", unit="img"):
        source_all.append(src.predict(item.image, score_threshold=AP_MIN_SCORE))
        compiled_all.append(cmp.predict(item.image, score_threshold=AP_MIN_SCORE))

    labeled = all(item.boxes is not None for item in items)
    truth: list[list[Box]]
    if labeled:
        truth = [list(item.boxes or ()) for item in items]
        reference = "ground truth"
    else:
        truth = [[d.box for d in dets if d.score >= threshold] for dets in source_all]
        reference = "source model detections"

    source_ap = average_precision(source_all, truth, MATCH_IOU)
    compiled_ap = average_precision(compiled_all, truth, MATCH_IOU)

    diffs: list[float] = []
    source_count = compiled_count = count_diff_images = count_diff_total = 0
    per_image: list[dict[str, Any]] = []
    for item, s_dets, c_dets in zip(items, source_all, compiled_all, strict=True):
        s_kept = [d for d in s_dets if d.score >= threshold]
        c_kept = [d for d in c_dets if d.score >= threshold]
        source_count += len(s_kept)
        compiled_count += len(c_kept)
        if len(s_kept) != len(c_kept):
            count_diff_images += 1
            count_diff_total += abs(len(s_kept) - len(c_kept))
        pair_diffs, _ = _pairs(s_kept, c_kept)
        diffs.extend(pair_diffs)
        worst = max(pair_diffs, default=0.0)
        if len(s_kept) != len(c_kept) or worst > 0:
            per_image.append(
                {
                    "image": item.name,
                    "source_detections": len(s_kept),
                    "compiled_detections": len(c_kept),
                    "max_abs_score_diff": round(worst, 6),
                }
            )
    per_image.sort(
        key=lambda r: (
            -abs(r["source_detections"] - r["compiled_detections"]),
            -r["max_abs_score_diff"],
        )
    )

    drop = source_ap - compiled_ap
    return ParityResult(
        golden=description,
        reference=reference,
        images=len(items),
        source_ap50=source_ap,
        compiled_ap50=compiled_ap,
        ap50_drop=drop,
        max_ap50_drop=max_ap50_drop,
        score_threshold=threshold,
        source_detections=source_count,
        compiled_detections=compiled_count,
        matched_detections=len(diffs),
        max_abs_score_diff=max(diffs) if diffs else 0.0,
        mean_abs_score_diff=float(np.mean(diffs)) if diffs else 0.0,
        images_with_count_diff=count_diff_images,
        total_count_diff=count_diff_total,
        passed=drop <= max_ap50_drop + 1e-9,
        seconds=time.perf_counter() - started,
        worst_images=tuple(per_image[:WORST_IMAGES]),
    )
