"""Per-model health counters: nearest-rank percentiles, defect rate, the sliding window."""

from __future__ import annotations

import pytest

from edgekit.edge.stats import ModelStats, counts, percentile


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([], 50, None),
        ([7.0], 50, 7.0),
        ([7.0], 95, 7.0),
        ([1, 2, 3, 4], 50, 2.0),
        ([4, 3, 2, 1], 50, 2.0),  # order does not matter
        ([1, 2, 3, 4], 95, 4.0),
        (list(range(1, 101)), 50, 50.0),
        (list(range(1, 101)), 95, 95.0),
        (list(range(1, 101)), 100, 100.0),
        ([10, 20], 50, 10.0),
        ([10, 20], 51, 20.0),
        ([5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 95, 1.0),
        ([5, 5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 95, 5.0),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], p: float, expected: float | None) -> None:
    assert percentile(values, p) == expected


@pytest.mark.parametrize("p", [0, -1, 101])
def test_percentile_refuses_a_bad_p(p: float) -> None:
    with pytest.raises(ValueError, match="percentile p="):
        percentile([1.0], p)


def test_counts_without_images_are_null_not_zero() -> None:
    assert counts(0, 0, 3, 0, []) == {
        "images": 0,
        "results_published": 0,
        "errors": 3,
        "latency_ms": {"p50": None, "p95": None},
        "defect_rate": None,
    }


def test_since_start_and_window() -> None:
    clock = Clock()
    stats = ModelStats(60.0, clock=clock)
    for i in range(10):  # t = 1000..1009: latencies 1..10 ms, every other image defective
        stats.record_inference(i + 1.0, defect=i % 2 == 0)
        stats.record_published()
        clock.now += 1
    stats.record_error()
    snap = stats.snapshot()
    assert snap["since_start"] == {
        "images": 10,
        "results_published": 10,
        "errors": 1,
        "latency_ms": {"p50": 5.0, "p95": 10.0},
        "defect_rate": 0.5,
    }
    assert snap["window"] == {**snap["since_start"], "seconds": 60.0}


def test_window_expiry_keeps_only_the_last_seconds() -> None:
    clock = Clock()
    stats = ModelStats(10.0, clock=clock)
    for _ in range(5):  # old: slow and defective
        stats.record_inference(100.0, defect=True)
    stats.record_error()
    clock.now += 20  # all of that leaves the window
    for _ in range(4):
        stats.record_inference(2.0, defect=False)
        stats.record_published()
    snap = stats.snapshot()
    assert snap["window"] == {
        "images": 4,
        "results_published": 4,
        "errors": 0,
        "latency_ms": {"p50": 2.0, "p95": 2.0},
        "defect_rate": 0.0,
        "seconds": 10.0,
    }
    assert snap["since_start"]["images"] == 9 and snap["since_start"]["errors"] == 1
    assert snap["since_start"]["defect_rate"] == round(5 / 9, 6)
    assert snap["since_start"]["latency_ms"] == {"p50": 100.0, "p95": 100.0}
    clock.now += 10.001  # nothing new: the window empties, since-start stays
    empty = stats.snapshot()["window"]
    assert (empty["images"], empty["results_published"], empty["defect_rate"]) == (0, 0, None)
    assert empty["latency_ms"] == {"p50": None, "p95": None}


def test_window_edge_is_inclusive_and_set_window_applies_at_once() -> None:
    clock = Clock()
    stats = ModelStats(5.0, clock=clock)
    stats.record_inference(1.0, defect=False)
    clock.now += 5.0  # exactly the window's length ago: still in
    assert stats.snapshot()["window"]["images"] == 1
    stats.set_window(2.0)
    assert stats.snapshot()["window"] == {**stats.snapshot()["window"], "images": 0, "seconds": 2.0}
    with pytest.raises(ValueError, match="must be > 0"):
        stats.set_window(0)


def test_since_start_latencies_stay_bounded() -> None:
    stats = ModelStats(60.0, reservoir=100, seed=1)
    for i in range(1000):
        stats.record_inference(float(i % 10), defect=False)
    snap = stats.snapshot()["since_start"]
    assert snap["images"] == 1000 and len(stats._latencies) == 100
    assert 3.0 <= snap["latency_ms"]["p50"] <= 6.0  # a uniform sample of 0..9
