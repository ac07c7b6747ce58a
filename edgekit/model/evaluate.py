"""Detection quality: AP50 and the numbers an inspection line cares about (numpy only).

``average_precision`` is the area under the all-points interpolated
precision-recall curve (PASCAL VOC 2010 onwards): detections of all images
are ranked by descending score, each is matched greedily to the unmatched
ground-truth box of its image with the highest IoU (at least the threshold),
precision is made monotonically non-increasing from the right, and the
precision is summed over the recall steps.

Conventions for degenerate inputs: with no ground truth at all, AP is 1.0
when there are no detections either and 0.0 otherwise; a ratio whose
denominator is zero (e.g. precision with no detections) is 1.0 when its
numerator's counterpart is also empty (nothing to find, nothing found) and
0.0 otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data.groundtruth import load_dataset
from edgekit.data.images import load_image
from edgekit.data.split import split_dataset
from edgekit.data.synthetic import SyntheticTagScratches
from edgekit.data.types import Box, Dataset, Detection, Sample
from edgekit.errors import DataError
from edgekit.model.metadata import DEFAULT_SCORE_THRESHOLD

VALIDATION_SEED = 1000
#: Lowest score kept when ranking detections for AP; below it a detection cannot matter.
AP_MIN_SCORE = 0.01
#: COCO's IoU thresholds for AP50:95.
COCO_IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))

BoxLike = Box | Sequence[float]


def _ltwh(box: BoxLike | Detection) -> tuple[float, float, float, float]:
    if isinstance(box, Detection):
        box = box.box
    if isinstance(box, Box):
        return box.left, box.top, box.width, box.height
    left, top, width, height = (float(v) for v in box)
    return left, top, width, height


def iou(a: BoxLike | Detection, b: BoxLike | Detection) -> float:
    """Intersection over union of two (left, top, width, height) boxes."""
    al, at, aw, ah = _ltwh(a)
    bl, bt, bw, bh = _ltwh(b)
    iw = min(al + aw, bl + bw) - max(al, bl)
    ih = min(at + ah, bt + bh) - max(at, bt)
    inter = max(iw, 0.0) * max(ih, 0.0)
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def _ratio(num: float, den: float, empty: bool) -> float:
    if den > 0:
        return float(num) / float(den)
    return 1.0 if empty else 0.0


def match_detections(
    detections_per_image: Sequence[Sequence[Detection]],
    ground_truth_per_image: Sequence[Sequence[BoxLike]],
    iou_threshold: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Rank all detections and mark each TP or FP.

    Returns ``(scores, is_tp, image_index, num_gt)`` in ranking order (stable:
    ties keep image order, then detection order).
    """
    if len(detections_per_image) != len(ground_truth_per_image):
        raise DataError(
            f"{len(detections_per_image)} detection lists but "
            f"{len(ground_truth_per_image)} ground-truth lists; give one of each per image"
        )
    scores: list[float] = []
    owners: list[tuple[int, int]] = []
    for i, dets in enumerate(detections_per_image):
        for j, det in enumerate(dets):
            scores.append(float(det.score))
            owners.append((i, j))
    score_arr = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-score_arr, kind="stable")
    gts = [[_ltwh(g) for g in gt] for gt in ground_truth_per_image]
    matched = [np.zeros(len(g), dtype=bool) for g in gts]
    is_tp = np.zeros(len(order), dtype=bool)
    image_index = np.zeros(len(order), dtype=np.int64)
    for rank, k in enumerate(order):
        i, j = owners[k]
        image_index[rank] = i
        det = detections_per_image[i][j]
        best, best_iou = -1, iou_threshold
        for g, gt_box in enumerate(gts[i]):
            if matched[i][g]:
                continue
            overlap = iou(det, gt_box)
            if overlap >= best_iou:
                best, best_iou = g, overlap
        if best >= 0:
            matched[i][best] = True
            is_tp[rank] = True
    return score_arr[order], is_tp, image_index, sum(len(g) for g in gts)


def pr_curve(is_tp: np.ndarray, num_gt: int) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall after each ranked detection."""
    tp = np.cumsum(is_tp, dtype=np.float64)
    fp = np.cumsum(~is_tp, dtype=np.float64)
    precision = tp / np.maximum(tp + fp, 1e-12)
    recall = tp / num_gt if num_gt > 0 else np.zeros_like(tp)
    return precision, recall


def ap_from_curve(precision: np.ndarray, recall: np.ndarray) -> float:
    """All-points interpolated area under a PR curve."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def average_precision(
    detections_per_image: Sequence[Sequence[Detection]],
    ground_truth_per_image: Sequence[Sequence[BoxLike]],
    iou_threshold: float = 0.5,
) -> float:
    """AP at ``iou_threshold`` over a set of images (see the module docstring)."""
    _, is_tp, _, num_gt = match_detections(
        detections_per_image, ground_truth_per_image, iou_threshold
    )
    if num_gt == 0:
        return 1.0 if len(is_tp) == 0 else 0.0
    precision, recall = pr_curve(is_tp, num_gt)
    return ap_from_curve(precision, recall)


@dataclass
class EvalResult:
    ap50: float  # AP at ``iou_threshold`` (0.5 unless told)
    ap75: float
    ap50_95: float  # COCO's mean of AP at IoU 0.50, 0.55, ..., 0.95
    precision: float
    recall: float
    image_precision: float
    image_recall: float
    score_threshold: float
    iou_threshold: float
    num_images: int
    num_ground_truth: int
    num_detections: int
    true_positives: int
    false_positives: int
    false_negatives: int
    defective_images: int
    flagged_images: int
    pr_scores: np.ndarray = field(repr=False)
    pr_precision: np.ndarray = field(repr=False)
    pr_recall: np.ndarray = field(repr=False)
    per_image: list[dict[str, Any]] = field(repr=False, default_factory=list)

    def to_json(
        self, *, include_images: bool = True, max_curve_points: int | None = None
    ) -> dict[str, Any]:
        """JSON-ready dict; ``max_curve_points`` thins the PR curve evenly along the ranking."""
        keep = np.arange(len(self.pr_scores))
        if max_curve_points is not None and len(keep) > max_curve_points:
            keep = np.unique(np.linspace(0, len(keep) - 1, max_curve_points).round().astype(int))
        data: dict[str, Any] = {
            "ap50": round(self.ap50, 4),
            "ap75": round(self.ap75, 4),
            "ap50_95": round(self.ap50_95, 4),
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "image_precision": round(self.image_precision, 4),
            "image_recall": round(self.image_recall, 4),
            "score_threshold": self.score_threshold,
            "iou_threshold": self.iou_threshold,
            "num_images": self.num_images,
            "num_ground_truth": self.num_ground_truth,
            "num_detections": self.num_detections,
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "false_negatives": self.false_negatives,
            "defective_images": self.defective_images,
            "flagged_images": self.flagged_images,
            "pr_curve": {
                "scores": [round(float(v), 4) for v in self.pr_scores[keep]],
                "precision": [round(float(v), 4) for v in self.pr_precision[keep]],
                "recall": [round(float(v), 4) for v in self.pr_recall[keep]],
            },
        }
        if include_images:
            data["images"] = self.per_image
        return data

    def format_table(self) -> str:
        rows = [
            (f"AP{round(self.iou_threshold * 100)}", f"{self.ap50:.3f}"),
            ("AP75 (tight boxes)", f"{self.ap75:.3f}"),
            ("AP50:95 (COCO)", f"{self.ap50_95:.3f}"),
            (f"precision @ {self.score_threshold:g}", f"{self.precision:.3f}"),
            (f"recall @ {self.score_threshold:g}", f"{self.recall:.3f}"),
            ("image precision (defect flagged)", f"{self.image_precision:.3f}"),
            ("image recall (defect found)", f"{self.image_recall:.3f}"),
            ("images", str(self.num_images)),
            ("ground-truth boxes", str(self.num_ground_truth)),
            ("detections above threshold", str(self.num_detections)),
            ("true / false positives", f"{self.true_positives} / {self.false_positives}"),
            ("missed boxes", str(self.false_negatives)),
            ("defective / flagged images", f"{self.defective_images} / {self.flagged_images}"),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"{'metric':<{width}}  value", f"{'-' * width}  -----"]
        lines += [f"{name:<{width}}  {value}" for name, value in rows]
        return "\n".join(lines)


def synthetic_validation(count: int = 200) -> Any:
    """The fixed synthetic validation set (seed 1000) used by train, evaluate, compile parity."""
    return SyntheticTagScratches(count, seed=VALIDATION_SEED)


def _iter_samples(data: Any) -> Iterable[tuple[str, Any, list[Box]]]:
    """(name, image, boxes) from a Dataset, Samples, a synthetic set or (image, boxes) pairs."""
    if isinstance(data, Dataset):
        data = data.samples
    seed = getattr(data, "seed", None)
    for i, item in enumerate(data):
        if isinstance(item, Sample):
            yield (
                Path(item.image_path).name,
                lambda p=item.image_path: load_image(p),
                list(item.boxes),
            )
        else:
            image, boxes = item
            name = f"synthetic-{seed}-{i:06d}" if seed is not None else f"image-{i:06d}"
            yield name, image, list(boxes)


def evaluate(
    predictor_or_callable: Any,
    dataset_or_samples: Any,
    score_threshold: float | None = None,
    *,
    iou_threshold: float = 0.5,
    progress_desc: str | None = "evaluate",
) -> EvalResult:
    """Run a model over labeled images and score it.

    ``predictor_or_callable`` is a :class:`~edgekit.model.predict.Predictor`
    (or anything with ``predict(image, score_threshold)`` and ``info``) or a
    plain ``image -> list[Detection]`` callable; the operating threshold
    defaults to the model's own. AP uses every detection down to
    ``AP_MIN_SCORE``.
    """
    from edgekit.progress import progress

    predict: Callable[[Any], list[Detection]]
    if hasattr(predictor_or_callable, "predict"):
        model = predictor_or_callable
        info = getattr(model, "info", None)
        default = info.score_threshold if info is not None else DEFAULT_SCORE_THRESHOLD
        low = min(AP_MIN_SCORE, score_threshold if score_threshold is not None else 1.0)

        def predict(image: Any) -> list[Detection]:
            return model.predict(image, score_threshold=low)
    elif callable(predictor_or_callable):
        predict = predictor_or_callable
        default = DEFAULT_SCORE_THRESHOLD
    else:
        raise TypeError("evaluate() needs a Predictor or a callable image -> detections")
    threshold = default if score_threshold is None else float(score_threshold)

    names: list[str] = []
    all_dets: list[list[Detection]] = []
    all_gts: list[list[Box]] = []
    items = list(_iter_samples(dataset_or_samples))
    for name, image, boxes in progress(items, desc=progress_desc, unit="img"):
        if callable(image):
            image = image()
        names.append(name)
        all_dets.append(list(predict(image)))
        all_gts.append(boxes)

    ap_by_iou = {t: average_precision(all_dets, all_gts, t) for t in COCO_IOU_THRESHOLDS}
    ap = ap_by_iou.get(iou_threshold)
    if ap is None:
        ap = average_precision(all_dets, all_gts, iou_threshold)
    scores, is_tp, image_index, num_gt = match_detections(all_dets, all_gts, iou_threshold)
    precision_curve, recall_curve = pr_curve(is_tp, num_gt)
    above = scores >= threshold
    tp = int(np.sum(is_tp & above))
    fp = int(np.sum(~is_tp & above))
    flagged = {int(i) for i in image_index[above]}
    defective = {i for i, g in enumerate(all_gts) if g}
    per_image = [
        {
            "image_name": name,
            "detections": [d.to_json() for d in dets],
            "ground_truth": [[round(float(v), 1) for v in _ltwh(g)] for g in gts],
        }
        for name, dets, gts in zip(names, all_dets, all_gts, strict=True)
    ]
    return EvalResult(
        ap50=ap,
        ap75=ap_by_iou[0.75],
        ap50_95=float(np.mean(list(ap_by_iou.values()))),
        precision=_ratio(tp, tp + fp, num_gt == 0),
        recall=_ratio(tp, num_gt, tp + fp == 0),
        image_precision=_ratio(len(flagged & defective), len(flagged), not defective),
        image_recall=_ratio(len(flagged & defective), len(defective), not flagged),
        score_threshold=threshold,
        iou_threshold=iou_threshold,
        num_images=len(names),
        num_ground_truth=num_gt,
        num_detections=tp + fp,
        true_positives=tp,
        false_positives=fp,
        false_negatives=num_gt - tp,
        defective_images=len(defective),
        flagged_images=len(flagged),
        pr_scores=scores,
        pr_precision=precision_curve,
        pr_recall=recall_curve,
        per_image=per_image,
    )


SPLIT_SEED = 0
VAL_FRACTION = 0.2


def evaluation_data(data: str | Path, split: str = "val", count: int = 200) -> Any:
    """What ``edgekit evaluate --data ... --split ...`` scores a model on.

    ``"synthetic"`` is the fixed synthetic validation set (``split`` is
    ignored); a Ground Truth folder is split by photo exactly as training
    splits it (``val_fraction=0.2``, ``seed=0``), or used whole with ``all``.
    """
    if str(data) == "synthetic":
        return synthetic_validation(count)
    if split not in ("val", "all"):
        raise DataError(f"split {split!r} is not known; use 'val' or 'all'")
    dataset = load_dataset(data)
    if split == "all":
        return dataset
    return split_dataset(dataset, val_fraction=VAL_FRACTION, seed=SPLIT_SEED)[1]
