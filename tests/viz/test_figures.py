"""edgekit.viz.figures: what notebook 04's figures show, and saving them."""

from __future__ import annotations

from pathlib import Path

from edgekit.viz import latency_histogram
from edgekit.viz.figures import pick_examples, save_figure, time_bin_seconds


def result_message(
    thing: str, image: str, second: int, *, defect: bool, total: float = 10.0
) -> dict:
    detections = (
        [{"class_id": 0, "label": "scratch", "score": 0.8, "box": [10, 20, 30, 40]}]
        if defect
        else []
    )
    return {
        "timestamp": f"2026-01-01T00:00:{second:02d}.000Z",
        "thing_name": thing,
        "image_name": image,
        "model": {"name": "tag-scratch-detector", "version": "1.0.0"},
        "detections": detections,
        "defect": defect,
        "latency_ms": {"preprocess": 1.0, "inference": total - 1.0, "total": total},
    }


def test_pick_examples_mixes_defects_and_clean_images_newest_first() -> None:
    results = [result_message("a", f"tag-{i % 6}.jpg", i, defect=i % 6 < 4) for i in range(18)]
    picked = pick_examples(results, 4)
    names = [r["image_name"] for r in picked]
    assert len(set(names)) == 4 and names == sorted(names)
    assert sum(r["defect"] for r in picked) == 2  # alternating while both kinds last
    assert all(r["timestamp"] >= "2026-01-01T00:00:12" for r in picked)  # the newest round
    assert len(pick_examples(results, 50)) == 6
    assert pick_examples([], 4) == []


def test_time_bin_seconds_spreads_the_span() -> None:
    results = [result_message("a", "x.jpg", s, defect=False) for s in range(0, 49, 4)]
    assert time_bin_seconds(results, bins=12) == 4.0
    assert time_bin_seconds(results[:1]) == 60.0
    assert time_bin_seconds(results[:2], bins=12) == 1.0


def test_save_figure_only_with_a_folder(tmp_path: Path) -> None:
    figure = latency_histogram([result_message("a", "x.jpg", 1, defect=False)])
    assert save_figure(figure, None, "latency") is None
    path = save_figure(figure, tmp_path / "figures", "latency")
    assert path == tmp_path / "figures" / "latency.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
