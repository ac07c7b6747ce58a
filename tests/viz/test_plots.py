"""Every figure renders to PNG under Agg, draws what it should, and leaves pyplot alone."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from edgekit.data.types import Box, Detection
from edgekit.errors import DataError
from edgekit.results import ResultsTable
from edgekit.schemas import utc_timestamp, validate_result
from edgekit.viz import (
    defect_rate_over_time,
    detection_grid,
    latency_bar_chart,
    latency_histogram,
    model_versions_per_device,
    plot_detections,
    plot_pr_curve,
    style,
)

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def fleet(n: int = 60) -> list[dict[str, Any]]:
    """Three devices, one rolling from 1.0.0 to 1.1.0 half way."""
    out = []
    for i in range(n):
        thing = f"dev-{i % 3}"
        version = "1.1.0" if thing == "dev-0" and i > n // 2 else "1.0.0"
        defect = i % 4 == 0
        total = 5.0 + (i % 7) + (i % 3)
        r = {
            "timestamp": utc_timestamp(START + timedelta(seconds=7 * i)),
            "thing_name": thing,
            "image_name": f"img-{i:03d}.png",
            "model": {"name": "tag-scratch-detector", "version": version},
            "detections": (
                [{"class_id": 0, "label": "scratch", "score": 0.8, "box": [20, 30, 40, 10]}]
                if defect
                else []
            ),
            "defect": defect,
            "latency_ms": {"preprocess": 1.0, "inference": total - 2, "total": total},
            "message_id": f"m-{i}",
            "sequence": i,
        }
        out.append(validate_result(r))
    return out


def png(fig: Figure, path: Path) -> Path:
    assert isinstance(fig, Figure)
    fig.savefig(path)
    assert path.stat().st_size > 1000
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 100 and img.size[1] > 100
    return path


def grey_image(width: int = 160, height: int = 120) -> np.ndarray:
    return np.full((height, width, 3), 90, dtype=np.uint8)


@pytest.fixture(autouse=True)
def no_pyplot_figures() -> Any:
    """Agg backend; edgekit.viz must never create pyplot figures (they leak, double-display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert matplotlib.get_backend().lower() == "agg"

    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before


def test_plot_detections_draws_boxes_in_their_colours(tmp_path: Path) -> None:
    dets = [{"class_id": 0, "label": "scratch", "score": 0.9, "box": [20, 20, 60, 40]}]
    truth = [[90, 60, 50, 40]]
    fig = plot_detections(grey_image(), dets, ground_truth=truth, title="one box")
    path = png(fig, tmp_path / "det.png")
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)

    def near(hex_colour: str) -> int:
        rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
        return int((np.abs(pixels - rgb).sum(axis=2) < 40).sum())

    assert near(style.PREDICTION) > 50  # the detection's outline and label
    assert near(style.GROUND_TRUTH) > 50  # the dashed ground-truth box
    background = np.array([255, 255, 255])
    assert int((np.abs(pixels - background).sum(axis=2) > 30).sum()) > pixels.shape[0] * 10
    ax = fig.axes[0]
    assert ax.get_title(loc="left") == "one box"
    assert len(ax.patches) == 2


def test_plot_detections_accepts_every_input_kind(tmp_path: Path) -> None:
    image_path = tmp_path / "img.png"
    Image.fromarray(grey_image()).save(image_path)
    objects = [Detection(Box(10, 10, 30, 20), 0.7), Detection(Box(50, 50, 20, 20), 0.2)]
    fig = plot_detections(image_path, objects, score_threshold=0.5)
    assert len(fig.axes[0].patches) == 1  # the weak one is hidden
    assert "1 detection" in fig.axes[0].get_title(loc="left")
    result = fleet(4)[0]
    fig = plot_detections(Image.fromarray(grey_image()), result)
    assert fig.axes[0].get_title(loc="left").startswith("DEFECT")
    gray = plot_detections(np.full((50, 60), 128, np.uint8), [[1, 1, 5, 5]])
    png(gray, tmp_path / "gray.png")
    with pytest.raises(DataError, match="missing.png"):
        plot_detections(tmp_path / "missing.png", [])


def test_plot_detections_into_existing_axes() -> None:
    fig = style.new_figure()
    ax = fig.add_subplot()
    assert plot_detections(grey_image(), [], ax=ax) is fig


def test_detection_grid(tmp_path: Path) -> None:
    image_dir = tmp_path / "camera"
    image_dir.mkdir()
    results = fleet(5)
    for r in results[:4]:  # the fifth image is missing: its cell says so
        Image.fromarray(grey_image()).save(image_dir / r["image_name"])
    fig = detection_grid(results, ncols=3, image_dir=image_dir, title="Latest results")
    png(fig, tmp_path / "grid.png")
    assert len(fig.axes) == 6
    assert any("not found" in t.get_text() for t in fig.axes[4].texts)
    tuples = [(grey_image(), [[5, 5, 10, 10]], [[6, 6, 10, 10]])] * 2
    png(detection_grid(tuples, ncols=4), tmp_path / "grid2.png")
    png(detection_grid([]), tmp_path / "empty.png")
    with pytest.raises(DataError, match="neither a result message"):
        detection_grid([42])


def eval_result() -> Any:
    from edgekit.model.evaluate import evaluate

    gts = [[Box(10, 10, 20, 20)], [Box(30, 30, 10, 10), Box(5, 5, 8, 8)], []]
    images = [grey_image() for _ in gts]

    outputs = iter(
        [
            [Detection(Box(11, 10, 20, 20), 0.9)],
            [Detection(Box(30, 31, 10, 10), 0.6), Detection(Box(80, 80, 9, 9), 0.7)],
            [Detection(Box(50, 50, 10, 10), 0.2)],
        ]
    )
    return evaluate(lambda image: next(outputs), list(zip(images, gts, strict=True)), 0.5)


def test_pr_curve_from_eval_result_and_arrays(tmp_path: Path) -> None:
    result = eval_result()
    fig = plot_pr_curve(result, label="fp32")
    png(fig, tmp_path / "pr.png")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == [f"fp32  AP50 {result.ap50:.3f}"]
    many = plot_pr_curve(
        {"fp32": result, "json": result.to_json(), "arrays": ([1.0, 0.5], [0.5, 0.5])}
    )
    png(many, tmp_path / "pr_many.png")
    assert len(many.axes[0].get_legend().get_texts()) == 3
    assert "AP50 0.500" in many.axes[0].get_legend().get_texts()[2].get_text()
    png(plot_pr_curve(([], [])), tmp_path / "pr_empty.png")
    with pytest.raises(DataError, match="equal length"):
        plot_pr_curve(([1.0], [0.1, 0.2]))
    with pytest.raises(DataError, match="EvalResult"):
        plot_pr_curve(3)


def test_latency_bar_chart(tmp_path: Path) -> None:
    rows = [
        {"variant": "fp32", "p50_ms": 12.0, "p95_ms": 15.0},
        {"variant": "int8", "p50_ms": 6.0, "p95_ms": 8.5},
    ]
    fig = latency_bar_chart(rows)
    png(fig, tmp_path / "bars.png")
    widths = sorted(p.get_width() for p in fig.axes[0].patches)
    assert widths == [6.0, 8.5, 12.0, 15.0]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["fp32", "int8"]
    per_device = latency_bar_chart(ResultsTable(fleet()).summary(), title="per device")
    png(per_device, tmp_path / "bars_devices.png")
    png(latency_bar_chart({"a": {"p50": 1, "p95": 2}}), tmp_path / "bars_map.png")
    png(latency_bar_chart([]), tmp_path / "bars_empty.png")
    with pytest.raises(DataError, match=r"row #0 has no p95 latency"):
        latency_bar_chart([{"variant": "x", "p50_ms": 1}])


def test_latency_histogram(tmp_path: Path) -> None:
    fig = latency_histogram(fleet())
    png(fig, tmp_path / "hist.png")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[:3] == ["dev-0 (20)", "dev-1 (20)", "dev-2 (20)"]
    assert labels[3].startswith("p50 ") and labels[4].startswith("p95 ")
    png(latency_histogram(fleet(), stage="inference", bins=5), tmp_path / "hist_inf.png")
    png(latency_histogram([]), tmp_path / "hist_empty.png")
    with pytest.raises(DataError, match="stage='decode'"):
        latency_histogram(fleet(), stage="decode")


def test_defect_rate_over_time(tmp_path: Path) -> None:
    results = fleet()
    fig = defect_rate_over_time(results, bin_seconds=60)
    png(fig, tmp_path / "rate.png")
    # one panel per device (identical lines cannot hide one another), plus the title block
    lines = [line for ax in fig.axes for line in ax.get_lines()]
    assert [line.get_label() for line in lines] == ["dev-0", "dev-1", "dev-2"]
    assert [len(ax.get_lines()) for ax in fig.axes] == [1, 1, 1, 0]
    assert fig.axes[0].get_shared_x_axes().joined(fig.axes[0], fig.axes[2])
    rates = np.concatenate([line.get_ydata() for line in lines])
    assert ((rates >= 0) & (rates <= 1)).all()
    # overall: every 4th image is a defect; the bins must add back up to it
    table = ResultsTable(results)
    assert sum(r["defects"] for r in table.summary()) == 15
    # into one given axes: every device there, each with its own style, shifted within the bin
    overlay = style.new_figure()
    ax = overlay.add_subplot()
    assert defect_rate_over_time(results, bin_seconds=60, ax=ax) is overlay
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["dev-0", "dev-1", "dev-2"]
    assert len({str(line.get_color()) for line in lines}) == 3
    starts = [line.get_xdata()[0] for line in lines]
    assert starts == sorted(starts) and len(set(starts)) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["dev-0", "dev-1", "dev-2"]
    png(overlay, tmp_path / "rate_overlay.png")
    png(defect_rate_over_time([], bin_seconds=30), tmp_path / "rate_empty.png")
    with pytest.raises(DataError, match="bin_seconds"):
        defect_rate_over_time(results, bin_seconds=0)
    bad = dict(results[0], timestamp="yesterday")
    with pytest.raises(DataError, match="result #0"):
        defect_rate_over_time([bad])


def test_model_versions_per_device(tmp_path: Path) -> None:
    fig = model_versions_per_device(fleet())
    png(fig, tmp_path / "versions.png")
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["tag-scratch-detector 1.0.0", "tag-scratch-detector 1.1.0"]
    # dev-0 has two runs (1.0.0 then 1.1.0), the others one each
    assert len(ax.patches) == 4
    assert [t.get_text() for t in ax.get_yticklabels()] == ["dev-0", "dev-1", "dev-2"]
    png(model_versions_per_device([]), tmp_path / "versions_empty.png")


def test_figures_render_to_png_bytes() -> None:
    buffer = io.BytesIO()
    latency_histogram(fleet()).savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")
