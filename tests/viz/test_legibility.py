"""Every figure the project produces is legible with 1, 3 and 10 devices.

Each figure is rendered with the Agg renderer, then checked programmatically:

- no two drawn text boxes overlap (titles, labels, tick labels, legend entries, box labels),
- every drawn text box lies inside the figure, and a text clipped to its axes is not cut,
- every series is visible: hiding it changes the rendered pixels,
- time axes are unambiguous (every tick label in one format, all distinct).

The data is synthetic and deliberately hard: every device inspects the same images, so
defect-rate lines and precision-recall curves are identical; detection boxes touch the
image edges and share corners; a run lasts five seconds across a minute boundary.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox
from PIL import Image

from edgekit.results import ResultsTable
from edgekit.schemas import utc_timestamp, validate_result
from edgekit.viz import (
    defect_rate_over_time,
    detection_grid,
    latency_bar_chart,
    latency_histogram,
    live_view,
    model_versions_per_device,
    plot_detections,
    plot_pr_curve,
)
from edgekit.viz.figures import pick_examples, time_bin_seconds
from edgekit.viz.rollout import rollout_devices, rollout_gates

matplotlib.use("Agg")

#: A five-second run that crosses a minute boundary (the issue's "17:38, 01, 02, 03").
START = datetime(2026, 12, 5, 17, 37, 58, 500000, tzinfo=UTC)
IMAGE_SIZE = (160, 120)  # width, height
#: Boxes on the image edges, sharing corners and overlapping: the hard cases for labels.
BOXES: list[list[list[float]]] = [
    [[0, 0, 40, 20], [0, 0, 30, 45]],  # top-left corner, same corner twice
    [[125, 10, 35, 30], [130, 14, 30, 25]],  # right edge, nearly the same box
    [[60, 40, 50, 30], [60, 40, 30, 50], [62, 42, 20, 20]],  # three from one corner
    [[10, 100, 60, 20]],  # bottom edge
    [],
    [[100, 95, 60, 25], [0, 60, 20, 20]],  # bottom-right corner, left edge
]
PER_DEVICE = 12


def fleet(devices: int, *, seconds: float = 5.0, start: datetime = START) -> list[dict[str, Any]]:
    """``devices`` devices inspecting the same images; half of them move to 1.1.0 midway."""
    out = []
    for k in range(PER_DEVICE):
        boxes = BOXES[k % len(BOXES)]
        for d in range(devices):
            when = start + timedelta(seconds=seconds * k / PER_DEVICE + 0.01 * d)
            rolled = d >= devices // 2 and k >= PER_DEVICE // 2
            total = 8.0 + (k * 37 % 11) * 0.6 + 0.35 * d
            out.append(
                validate_result(
                    {
                        "timestamp": utc_timestamp(when),
                        "thing_name": f"edgekit-core-{d + 1}",
                        "image_name": f"tag-{k % len(BOXES):03d}.jpg",
                        "model": {
                            "name": "tag-scratch-detector",
                            "version": "1.1.0" if rolled else "1.0.0",
                        },
                        "detections": [
                            {
                                "class_id": 0,
                                "label": "scratch",
                                "score": round(0.9 - 0.07 * i, 2),
                                "box": box,
                            }
                            for i, box in enumerate(boxes)
                        ],
                        "defect": bool(boxes),
                        "latency_ms": {
                            "preprocess": 1.0,
                            "inference": total - 2.0,
                            "total": total,
                        },
                        "message_id": f"m-{d}-{k}",
                        "sequence": k,
                    }
                )
            )
    return out


def grey(shade: int = 90) -> np.ndarray:
    width, height = IMAGE_SIZE
    pixels = np.full((height, width, 3), shade, dtype=np.uint8)
    pixels[:, :4] = 200  # a bright edge, as real photos have
    return pixels


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("camera")
    for k in range(len(BOXES)):
        Image.fromarray(grey(70 + 10 * k)).save(folder / f"tag-{k:03d}.jpg")
    return folder


def evaluation() -> dict[str, Any]:
    """An EvalResult.to_json()-like dict with a realistic, dense precision-recall curve."""
    recall = np.linspace(0.002, 0.89, 400)
    precision = np.clip(1.0 - 0.35 * (recall / 0.89) ** 6 - 0.02 * np.sin(recall * 40), 0, 1)
    operating = int(np.searchsorted(recall, 0.83))
    return {
        "pr_curve": {"precision": precision.tolist(), "recall": recall.tolist()},
        "ap50": 0.854,
        "recall": float(recall[operating]),
        "precision": float(precision[operating]),
        "score_threshold": 0.3,
    }


class Collector:
    """What `live_view` reads from a LiveCollector."""

    def __init__(self, results: list[dict[str, Any]]) -> None:
        self.results = results
        self.received = len(results)
        self.invalid = 0
        self.duplicates = 0

    def latest(self, n: int | None = None) -> list[dict[str, Any]]:
        return list(self.results[-n:] if n else self.results)


def rollout_report(devices: int) -> dict[str, Any]:
    """A rolled-back rollout's report: one failed device, a gate far over its limit, one
    skipped, names of every length."""
    things = [f"line-{i}-core-{i}" for i in range(1, devices + 1)]
    gates = [
        {"name": "proof", "verdict": "PASS", "value": 1, "threshold": 1},
        {"name": "error_rate", "verdict": "PASS", "value": 0.0, "threshold": 0.05},
        {"name": "p95_latency", "verdict": "PASS", "value": 8.4, "threshold": 20.0},
        {"name": "defect_rate_delta", "verdict": "FAIL", "value": 1.0, "threshold": 0.3},
        {"name": "shadow_agreement", "verdict": "SKIPPED", "value": None, "threshold": None},
    ]
    return {
        "status": "ROLLED_BACK",
        "gate": "defect_rate_delta",
        "model": {"name": "tag-scratch-detector", "version": "1.1.0"},
        "devices": {
            t: {"results": 20 + i, "p95_ms": 8.0 + i / 3, "state": "FAILED" if i == 1 else "PROVEN"}
            for i, t in enumerate(things)
        },
        "stages": [
            {"name": "canary", "gates": gates},
            {"name": "rollback", "gates": gates[:1]},
        ],
    }


def figures(devices: int, camera: Path) -> Iterator[tuple[str, Callable[[], Figure]]]:
    """(name, builder) of every figure notebooks 02 and 04 save for the pipeline report."""
    results = fleet(devices)
    yield (
        "defect_rate",
        lambda: defect_rate_over_time(results, bin_seconds=time_bin_seconds(results)),
    )
    yield "latency", lambda: latency_histogram(results)
    yield "model_versions", lambda: model_versions_per_device(results)
    yield "latency_per_device", lambda: latency_bar_chart(ResultsTable(results).summary())
    yield "live_view", lambda: live_view(Collector(results), camera, interactive=False)
    report = rollout_report(devices)
    yield "rollout_devices", lambda: rollout_devices(report)
    yield "rollout_gates", lambda: rollout_gates(report)
    if devices == 3:  # these do not depend on the number of devices: once is enough
        yield (
            "detections",
            lambda: detection_grid(
                pick_examples(results, 8),
                ncols=4,
                image_dir=camera,
                title="Latest results per image",
            ),
        )
        yield "pr_curve", lambda: plot_pr_curve(evaluation(), label="tag-scratch-detector.onnx")
        yield (
            "pr_curve_compiled",
            lambda: plot_pr_curve(
                {
                    "source": evaluation(),
                    "onnxruntime-fp32": evaluation(),
                    "onnxruntime-int8": evaluation(),
                }
            ),
        )
        cells = [
            (grey(), [{"label": "scratch", "score": 0.8, "box": b} for b in boxes], boxes[:1])
            for boxes in BOXES
        ] + [(grey(), [], [])] * 2
        yield (
            "evaluation_samples",
            lambda: detection_grid(
                cells, ncols=4, title="Sample detections (ground truth dashed)", score_threshold=0.3
            ),
        )
        yield (
            "model_latency",
            lambda: latency_bar_chart(
                [
                    {"variant": "source (fp32)", "p50_ms": 14.1, "p95_ms": 16.9},
                    {"variant": "onnxruntime-fp32", "p50_ms": 13.8, "p95_ms": 15.2},
                    {"variant": "onnxruntime-int8", "p50_ms": 4.6, "p95_ms": 5.3},
                ],
                subtitle="batch 1, 1 thread",
            ),
        )
        yield (
            "plot_detections",
            lambda: plot_detections(
                grey(), BOXES[2] + BOXES[0], ground_truth=BOXES[1], title="edge cases"
            ),
        )


# --- rendering ------------------------------------------------------------------------------


class Rendered:
    """A figure drawn once by Agg: its pixels and every text artist that was drawn."""

    def __init__(self, figure: Figure, monkeypatch: pytest.MonkeyPatch) -> None:
        self.figure = figure
        self.canvas = FigureCanvasAgg(figure)
        drawn: dict[int, Text] = {}
        original = Text.draw

        def record(text: Text, renderer: Any) -> None:
            if text.get_visible() and text.get_text().strip():
                drawn[id(text)] = text
            original(text, renderer)

        monkeypatch.setattr(Text, "draw", record)
        try:
            self.pixels = self.draw()
        finally:
            monkeypatch.setattr(Text, "draw", original)
        self.renderer = self.canvas.get_renderer()
        self.texts = list(drawn.values())
        # the layout is settled: redraws (for the series checks) need not redo it
        figure.set_layout_engine("none")

    def draw(self) -> np.ndarray:
        self.canvas.draw()
        return np.asarray(self.canvas.buffer_rgba())[..., :3].astype(np.int16).copy()

    def draw_axes(self, ax: Axes) -> np.ndarray:
        """Only ``ax`` drawn, and only its area kept (much cheaper than the whole figure).

        Panels do not overlap, and series are clipped to their axes.
        """
        renderer = self.canvas.get_renderer()
        renderer.clear()
        ax.draw(renderer)
        height = renderer.height
        x0, y0, x1, y1 = (int(round(v)) for v in ax.bbox.extents)
        rows = slice(max(height - y1 - 2, 0), max(height - y0 + 2, 0))
        columns = slice(max(x0 - 2, 0), max(x1 + 2, 0))
        return np.asarray(renderer.buffer_rgba())[rows, columns].astype(np.int16)

    def box(self, text: Text) -> Bbox:
        return text.get_window_extent(self.renderer)


def describe(text: Text) -> str:
    return repr(text.get_text()[:40])


def overlapping_texts(rendered: Rendered, slack: float = 1.0) -> list[str]:
    boxes = [(t, rendered.box(t)) for t in rendered.texts]
    problems = []
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1 :]:
            width = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
            height = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
            if width > slack and height > slack:
                problems.append(f"{describe(a)} overlaps {describe(b)}")
    return problems


def texts_outside(rendered: Rendered, slack: float = 1.0) -> list[str]:
    figure_box = rendered.figure.bbox
    problems = []
    for text in rendered.texts:
        box = rendered.box(text)
        if (
            box.x0 < figure_box.x0 - slack
            or box.y0 < figure_box.y0 - slack
            or box.x1 > figure_box.x1 + slack
            or box.y1 > figure_box.y1 + slack
        ):
            problems.append(f"{describe(text)} at {box.bounds} leaves the figure")
        clip = text.get_clip_box() if text.get_clip_on() else None
        if clip is not None and (
            box.x0 < clip.x0 - slack
            or box.y0 < clip.y0 - slack
            or box.x1 > clip.x1 + slack
            or box.y1 > clip.y1 + slack
        ):
            problems.append(f"{describe(text)} is cut by its axes")
    return problems


def series_of(ax: Axes) -> list[Any]:
    artists: list[Any] = [*ax.lines, *ax.collections, *ax.patches]
    out = []
    for artist in artists:
        if not artist.get_visible():
            continue
        if hasattr(artist, "get_xydata") and len(artist.get_xydata()) == 0:
            continue  # a legend proxy without data
        out.append(artist)
    return out


def hidden_series(rendered: Rendered, min_pixels: int = 12) -> list[str]:
    """Series whose hiding changes fewer than ``min_pixels`` pixels by a visible amount.

    A pixel shows a series when hiding it changes a channel by more than 40 of 255; a
    deliberately faint artist (alpha below 0.5, e.g. a shaded area) needs proportionally less.
    """
    problems = []
    for ax in rendered.figure.axes:
        series = series_of(ax)
        if not series:
            continue
        # tick labels lie outside the axes and cannot hide a series: skip drawing them
        axes_visible = ax.xaxis.get_visible(), ax.yaxis.get_visible()
        ax.xaxis.set_visible(False)
        ax.yaxis.set_visible(False)
        try:
            problems += _hidden_in(rendered, ax, series, min_pixels)
        finally:
            ax.xaxis.set_visible(axes_visible[0])
            ax.yaxis.set_visible(axes_visible[1])
    return problems


def _hidden_in(rendered: Rendered, ax: Axes, series: list[Any], min_pixels: int) -> list[str]:
    problems = []
    full = rendered.draw_axes(ax)
    for artist in series:
        alpha = artist.get_alpha()
        threshold = 40 if alpha is None or alpha >= 0.5 else max(6.0, 80 * alpha)
        artist.set_visible(False)
        try:
            without = rendered.draw_axes(ax)
        finally:
            artist.set_visible(True)
        changed = int((np.abs(full - without).max(axis=2) > threshold).sum())
        if changed < min_pixels:
            problems.append(
                f"{type(artist).__name__} {artist.get_label()!r} in axes "
                f"{ax.get_title(loc='left')!r} is hidden ({changed} pixels show it)"
            )
    return problems


CASES = [(devices, name) for devices in (1, 3, 10) for name, _ in figures(devices, Path("."))]


@pytest.mark.parametrize(("devices", "name"), CASES, ids=[f"{n}-{d}dev" for d, n in CASES])
def test_figure_is_legible(
    devices: int, name: str, camera: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = dict(figures(devices, camera))[name]
    figure = build()
    assert isinstance(figure, Figure)
    rendered = Rendered(figure, monkeypatch)
    assert rendered.texts, "nothing was drawn"
    problems = overlapping_texts(rendered) + texts_outside(rendered) + hidden_series(rendered)
    assert not problems, f"{name} with {devices} device(s):\n  " + "\n  ".join(problems)


# --- time axes ------------------------------------------------------------------------------


def time_labels(figure: Figure, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    rendered = Rendered(figure, monkeypatch)
    labels = []
    for ax in figure.axes:
        if ax.xaxis.get_visible() and ax.axison:
            drawn = {id(t) for t in rendered.texts}
            labels += [t.get_text() for t in ax.get_xticklabels() if id(t) in drawn]
    return labels


@pytest.mark.parametrize(
    ("seconds", "pattern"),
    [
        (5.0, r"\d\d:\d\d:\d\d"),  # seconds matter: every label has them
        (50.0, r"\d\d:\d\d:\d\d"),
        (3 * 3600.0, r"\d\d:\d\d"),
        (3 * 86400.0, r"(\d\d:\d\d|[A-Z][a-z]{2} \d\d)"),  # a day's ticks follow its date
    ],
)
@pytest.mark.parametrize("plot", [defect_rate_over_time, model_versions_per_device])
def test_time_axis_is_unambiguous_at_every_span(
    plot: Callable[..., Figure], seconds: float, pattern: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = fleet(3, seconds=seconds)
    kwargs = {"bin_seconds": time_bin_seconds(results)} if plot is defect_rate_over_time else {}
    figure = plot(results, **kwargs)
    labels = time_labels(figure, monkeypatch)
    assert len(labels) >= 3, labels
    assert all(re.fullmatch(pattern, label) for label in labels), labels
    if seconds < 86400:
        assert len(set(labels)) == len(labels), labels  # no two ticks read the same
    else:  # times of day repeat, but each follows the date it belongs to
        assert re.fullmatch(r"[A-Z][a-z]{2} \d\d", labels[0]) or labels[0] < labels[1], labels
        days = [label for label in labels if not re.fullmatch(r"\d\d:\d\d", label)]
        assert len(set(days)) == len(days) >= 2, labels
    words = " ".join(t.get_text() for t in figure.findobj(Text) if t.get_visible())
    assert "UTC" in words and "2026-12-05" in words  # the date and zone are said once


# --- the static live view -------------------------------------------------------------------


def test_static_live_view_says_what_when_and_how_many(camera: Path) -> None:
    results = fleet(3)
    figure = live_view(Collector(results), camera, interactive=False)
    words = [t.get_text() for t in figure.findobj(Text) if t.get_visible() and t.get_text()]
    latest = results[-1]
    assert any(f"latest of {len(results)} results from 3 devices" in w for w in words), words
    assert any(latest["timestamp"] in w and latest["thing_name"] in w for w in words), words
    assert any("tag-scratch-detector 1.1.0" in w for w in words), words
    image = figure.axes[0]
    assert image.get_title(loc="left").startswith("DEFECT")
    assert image.get_xlabel() == "x (pixels)" and image.get_ylabel() == "y (pixels)"
    waiting = live_view(Collector([]), camera, interactive=False)
    assert any("waiting" in t.get_text() for t in waiting.axes[0].texts)
