"""Shadow agreement: IoU, greedy IoU>=0.5 matching, image-level and detection agreement."""

from __future__ import annotations

from typing import Any

import pytest

from edgekit.edge.agreement import (
    AgreementStats,
    FrameComparison,
    compare_frame,
    iou,
    match_detections,
    summarize,
)


def det(left: float, top: float, width: float, height: float, class_id: int = 0) -> dict[str, Any]:
    return {
        "class_id": class_id,
        "label": "scratch",
        "score": 0.9,
        "box": [left, top, width, height],
    }


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
        ([0, 0, 10, 10], [10, 0, 10, 10], 0.0),  # touching edges
        ([0, 0, 10, 10], [5, 0, 10, 10], 50 / 150),
        ([0, 0, 10, 10], [0, 0, 5, 10], 0.5),  # exactly the threshold
        ([0, 0, 10, 10], [2, 2, 6, 6], 36 / 100),
        ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),  # empty union
    ],
)
def test_iou(a: list[float], b: list[float], expected: float) -> None:
    assert iou(a, b) == pytest.approx(expected)
    assert iou(b, a) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("current", "shadow", "pairs"),
    [
        ([], [], []),
        ([det(0, 0, 10, 10)], [], []),
        ([det(0, 0, 10, 10)], [det(0, 0, 10, 10)], [(0, 0)]),
        ([det(0, 0, 10, 10)], [det(0, 0, 5, 10)], [(0, 0)]),  # IoU 0.5 counts
        ([det(0, 0, 10, 10)], [det(0, 0, 4.9, 10)], []),  # IoU 0.49 does not
        ([det(0, 0, 10, 10)], [det(0, 0, 10, 10, class_id=1)], []),  # another class
        # One current box, two candidates: the better overlap wins, one-to-one.
        ([det(0, 0, 10, 10)], [det(1, 0, 10, 10), det(0, 0, 10, 10)], [(0, 1)]),
        # Greedy by IoU: (1,0) has IoU 1 and is taken first; (0,0) then finds no partner.
        ([det(0, 0, 10, 10), det(2, 0, 10, 10)], [det(2, 0, 10, 10)], [(1, 0)]),
        (
            [det(0, 0, 10, 10), det(50, 50, 10, 10)],
            [det(50, 50, 10, 10), det(0, 0, 10, 10)],
            [(0, 1), (1, 0)],
        ),
    ],
)
def test_match_detections(
    current: list[dict[str, Any]], shadow: list[dict[str, Any]], pairs: list[tuple[int, int]]
) -> None:
    assert sorted(match_detections(current, shadow)) == pairs


@pytest.mark.parametrize(
    ("current", "shadow", "kwargs", "expected"),
    [
        ([], [], {}, FrameComparison(True, 0, 0, 0)),
        ([det(0, 0, 10, 10)], [], {}, FrameComparison(False, 0, 1, 0)),
        ([], [det(0, 0, 10, 10)], {}, FrameComparison(False, 0, 0, 1)),
        ([det(0, 0, 10, 10)], [det(30, 30, 5, 5)], {}, FrameComparison(True, 0, 1, 1)),
        ([det(0, 0, 10, 10)], [det(0, 0, 10, 10)], {}, FrameComparison(True, 1, 1, 1)),
        # The verdicts given win over "has detections".
        ([], [], {"current_defect": True}, FrameComparison(False, 0, 0, 0)),
    ],
)
def test_compare_frame(
    current: list[dict[str, Any]],
    shadow: list[dict[str, Any]],
    kwargs: dict[str, bool],
    expected: FrameComparison,
) -> None:
    assert compare_frame(current, shadow, **kwargs) == expected


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        ([], {"images_compared": 0, "defect_agreement": None, "detection_agreement": None}),
        (
            [FrameComparison(True, 0, 0, 0)] * 3,
            {"images_compared": 3, "defect_agreement": 1.0, "detection_agreement": 1.0},
        ),
        (
            [FrameComparison(True, 1, 1, 1), FrameComparison(False, 0, 1, 0)],
            # 2*1 / (2 + 1)
            {"images_compared": 2, "defect_agreement": 0.5, "detection_agreement": 0.666667},
        ),
        (
            [FrameComparison(True, 2, 2, 3), FrameComparison(True, 0, 0, 0)],
            {"images_compared": 2, "defect_agreement": 1.0, "detection_agreement": 0.8},
        ),
    ],
)
def test_summarize(frames: list[FrameComparison], expected: dict[str, Any]) -> None:
    assert summarize(frames) == expected


def test_agreement_since_start_and_window() -> None:
    now = [100.0]
    stats = AgreementStats(10.0, clock=lambda: now[0])
    stats.record(FrameComparison(False, 0, 1, 0))
    now[0] += 11
    stats.record(FrameComparison(True, 1, 1, 1))
    snap = stats.snapshot()
    assert snap["window"] == {
        "images_compared": 1,
        "defect_agreement": 1.0,
        "detection_agreement": 1.0,
    }
    assert snap["since_start"] == {
        "images_compared": 2,
        "defect_agreement": 0.5,
        "detection_agreement": round(2 / 3, 6),
    }
    now[0] += 11
    assert stats.snapshot()["window"]["images_compared"] == 0
    assert stats.snapshot()["window"]["defect_agreement"] is None
