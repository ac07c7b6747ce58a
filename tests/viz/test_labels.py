"""edgekit.viz.labels: box labels placed at draw time inside the image, never on one another."""

from __future__ import annotations

from typing import Any

import matplotlib
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from edgekit.viz import plot_detections
from edgekit.viz.labels import BoxLabels

matplotlib.use("Agg")


def drawn_labels(figure: Figure) -> tuple[list[Any], Any]:
    FigureCanvasAgg(figure).draw()
    renderer = figure.canvas.get_renderer()
    (labels,) = [a for a in figure.axes[0].get_children() if isinstance(a, BoxLabels)]
    shown = [t for t in labels.texts() if t.get_visible()]
    return [(t.get_text(), t.get_window_extent(renderer)) for t in shown], figure.axes[0].bbox


def detection(box: list[float], score: float = 0.9, label: str = "scratch") -> dict[str, Any]:
    return {"label": label, "score": score, "box": box}


@pytest.mark.parametrize(
    ("boxes", "where"),
    [
        ([[0, 0, 40, 20]], "top-left corner: the label goes inside, not above the image"),
        ([[120, 0, 40, 20]], "top-right corner: shifted left into the image"),
        ([[0, 100, 40, 20]], "bottom edge"),
        ([[0, 0, 160, 120]], "a box as large as the image"),
        ([[60, 40, 50, 30]] * 3, "three identical boxes: stacked"),
    ],
)
def test_labels_stay_inside_the_image_and_apart(boxes: list[list[float]], where: str) -> None:
    image = np.full((120, 160, 3), 80, np.uint8)
    figure = plot_detections(image, [detection(b, 0.9 - 0.1 * i) for i, b in enumerate(boxes)])
    shown, area = drawn_labels(figure)
    assert len(shown) == len(boxes), where
    for _, box in shown:
        assert area.x0 - 0.5 <= box.x0 and box.x1 <= area.x1 + 0.5, where
        assert area.y0 - 0.5 <= box.y0 and box.y1 <= area.y1 + 0.5, where
    for i, (_, a) in enumerate(shown):
        for _, b in shown[i + 1 :]:
            assert not a.overlaps(b), where


def test_a_label_too_wide_for_the_image_falls_back_to_its_score() -> None:
    image = np.full((30, 40, 3), 80, np.uint8)
    figure = plot_detections(image, [detection([5, 5, 10, 10], 0.87, "a-rather-long-class-name")])
    shown, _ = drawn_labels(figure)
    assert [text for text, _ in shown] == ["0.87"]


def test_labels_that_fit_nowhere_are_left_out_rather_than_stacked() -> None:
    image = np.full((30, 40, 3), 80, np.uint8)
    figure = plot_detections(image, [detection([2, 2, 8, 8], 0.5)] * 40)
    shown, _ = drawn_labels(figure)
    assert 0 < len(shown) < 40
    boxes = [box for _, box in shown]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
