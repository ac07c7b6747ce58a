"""AP50 and evaluation on hand-made cases whose answers are worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.data.types import Box, Detection
from edgekit.model.evaluate import average_precision, evaluate, iou


def det(left: float, top: float, width: float, height: float, score: float) -> Detection:
    return Detection(Box(left, top, width, height), score)


GT_A = Box(10, 10, 40, 40)
GT_B = Box(100, 100, 20, 60)


def test_iou_known_values() -> None:
    assert iou(GT_A, GT_A) == pytest.approx(1.0)
    assert iou(Box(0, 0, 10, 10), Box(5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou(Box(0, 0, 10, 10), Box(20, 20, 5, 5)) == 0.0
    assert iou([0, 0, 10, 10], (0, 0, 5, 10)) == pytest.approx(0.5)
    assert iou(Box(0, 0, 0, 0), Box(0, 0, 0, 0)) == 0.0


def test_perfect_detections_give_one() -> None:
    dets = [[det(10, 10, 40, 40, 0.9)], [det(100, 100, 20, 60, 0.8)]]
    assert average_precision(dets, [[GT_A], [GT_B]]) == pytest.approx(1.0)


def test_false_positive_ranked_above_true_positive() -> None:
    # Ranked: FP (p=0/1, r=0), TP (p=1/2, r=1) -> AP = 1 * 0.5.
    dets = [[det(300, 300, 10, 10, 0.9), det(10, 10, 40, 40, 0.8)]]
    assert average_precision(dets, [[GT_A]]) == pytest.approx(0.5)


def test_false_positive_ranked_below_true_positive_costs_nothing() -> None:
    dets = [[det(10, 10, 40, 40, 0.9), det(300, 300, 10, 10, 0.8)]]
    assert average_precision(dets, [[GT_A]]) == pytest.approx(1.0)


def test_missed_ground_truth_halves_recall() -> None:
    # One of two GT found with precision 1: area = 0.5 * 1.
    dets = [[det(10, 10, 40, 40, 0.9)], []]
    assert average_precision(dets, [[GT_A], [GT_B]]) == pytest.approx(0.5)


def test_duplicate_detection_is_a_false_positive() -> None:
    # Ranked: TP A (p=1, r=.5), duplicate of A (p=.5, r=.5), TP B (p=2/3, r=1).
    # Interpolated precision: 1 up to r=.5, then max(.5, 2/3) = 2/3 -> AP = .5 + .5 * 2/3.
    dets = [
        [det(10, 10, 40, 40, 0.9), det(12, 12, 40, 40, 0.8)],
        [det(100, 100, 20, 60, 0.7)],
    ]
    assert average_precision(dets, [[GT_A], [GT_B]]) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_iou_below_threshold_is_not_a_match() -> None:
    # Shifted by half its width: IoU = 20*40 / (2*1600 - 800) = 1/3 < 0.5.
    dets = [[det(30, 10, 40, 40, 0.9)]]
    assert average_precision(dets, [[GT_A]]) == 0.0
    assert average_precision(dets, [[GT_A]], iou_threshold=0.3) == pytest.approx(1.0)


def test_each_ground_truth_matched_once_even_across_overlaps() -> None:
    # Two overlapping GT and two detections on them: both must match (not both to one GT).
    gt = [Box(0, 0, 40, 40), Box(10, 0, 40, 40)]
    dets = [[det(9, 0, 40, 40, 0.9), det(1, 0, 40, 40, 0.8)]]
    assert average_precision(dets, [gt]) == pytest.approx(1.0)


def test_detection_only_matches_its_own_image() -> None:
    dets = [[], [det(10, 10, 40, 40, 0.9)]]
    assert average_precision(dets, [[GT_A], []]) == 0.0


def test_empty_cases() -> None:
    assert average_precision([], []) == 1.0
    assert average_precision([[]], [[]]) == 1.0  # nothing to find, nothing found
    assert average_precision([[det(0, 0, 5, 5, 0.5)]], [[]]) == 0.0
    assert average_precision([[]], [[GT_A]]) == 0.0


def test_mismatched_lengths_raise() -> None:
    from edgekit.errors import DataError

    with pytest.raises(DataError, match="per image"):
        average_precision([[]], [[], []])


def test_evaluate_with_a_callable_reports_operating_point_and_images() -> None:
    image = np.zeros((300, 450, 3), np.uint8)
    samples = [(image, [GT_A]), (image, [GT_B]), (image, [])]
    answers = [
        [det(10, 10, 40, 40, 0.9)],  # TP
        [det(100, 100, 20, 60, 0.2)],  # TP below the 0.3 threshold
        [det(200, 200, 30, 30, 0.6)],  # FP on a clean image
    ]
    calls = iter(answers)
    result = evaluate(lambda img: next(calls), samples, score_threshold=0.3, progress_desc=None)
    # Ranking: TP .9 (p=1, r=.5), FP .6 (p=.5, r=.5), TP .2 (p=2/3, r=1).
    assert result.ap50 == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert (result.true_positives, result.false_positives, result.false_negatives) == (1, 1, 1)
    assert result.precision == pytest.approx(0.5)
    assert result.recall == pytest.approx(0.5)
    # Defective images: 0 and 1; flagged above threshold: 0 and 2.
    assert result.image_recall == pytest.approx(0.5)
    assert result.image_precision == pytest.approx(0.5)
    assert result.num_images == 3 and result.num_ground_truth == 2
    assert list(result.pr_recall) == pytest.approx([0.5, 0.5, 1.0])
    data = json.loads(json.dumps(result.to_json()))
    assert data["images"][2]["detections"][0]["score"] == 0.6
    assert data["images"][0]["ground_truth"] == [[10.0, 10.0, 40.0, 40.0]]
    table = result.format_table()
    assert "AP50" in table and "0.833" in table


def test_tight_box_metrics_count_only_the_boxes_that_fit_that_well() -> None:
    image = np.zeros((30, 45, 3), np.uint8)
    samples = [(image, [Box(0, 0, 10, 10)]), (image, [Box(20, 5, 10, 10)])]
    # IoU 0.6 (a box 6 of 10 high) and 1.0.
    answers = iter([[det(0, 0, 10, 6, 0.9)], [det(20, 5, 10, 10, 0.8)]])
    result = evaluate(lambda img: next(answers), samples, progress_desc=None)
    assert result.ap50 == 1.0
    # From IoU 0.65 on only the second box is found (recall 0.5), ranked second behind a
    # false positive (precision 0.5): AP 0.25.
    assert result.ap75 == pytest.approx(0.25)
    # 0.50, 0.55, 0.60 find both (AP 1); the seven thresholds above, one (AP 0.25).
    assert result.ap50_95 == pytest.approx((3 * 1.0 + 7 * 0.25) / 10)
    data = result.to_json(include_images=False)
    assert data["ap75"] == 0.25 and data["ap50_95"] == 0.475
    assert "AP75 (tight boxes)" in result.format_table()


def test_evaluate_on_clean_images_without_detections_is_perfect() -> None:
    image = np.zeros((30, 45, 3), np.uint8)
    result = evaluate(lambda img: [], [(image, [])], progress_desc=None)
    assert result.ap50 == 1.0
    assert result.precision == 1.0 and result.recall == 1.0
    assert result.image_precision == 1.0 and result.image_recall == 1.0


def test_pr_curve_thinning_keeps_the_ends() -> None:
    image = np.zeros((30, 45, 3), np.uint8)
    samples = [(image, [Box(0, 0, 10, 10)])] * 30
    dets = [det(0, 0, 10, 10, 0.9 - i * 0.01) for i in range(30)]
    calls = iter([[d] for d in dets])
    result = evaluate(lambda img: next(calls), samples, progress_desc=None)
    assert result.ap50 == pytest.approx(1.0)
    full = result.to_json(include_images=False)
    thin = result.to_json(include_images=False, max_curve_points=5)
    assert "images" not in full and len(full["pr_curve"]["scores"]) == 30
    assert len(thin["pr_curve"]["scores"]) == 5
    assert thin["pr_curve"]["scores"][0] == 0.9 and thin["pr_curve"]["recall"][-1] == 1.0
