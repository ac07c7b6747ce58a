"""Images with their detection boxes (and optionally the ground-truth boxes)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from edgekit.errors import DataError
from edgekit.viz import style
from edgekit.viz.data import DrawBox, draw_boxes, find_image, load_image
from edgekit.viz.labels import BoxLabels


def _line_width(shape: Sequence[int]) -> float:
    return max(1.2, min(shape[0], shape[1]) / 180)


def _draw(
    ax: Axes,
    boxes: list[DrawBox],
    color: str,
    *,
    dashed: bool,
    lw: float,
    labels: BoxLabels | None = None,
) -> None:
    for box in boxes:
        ax.add_patch(
            Rectangle(
                (box.left, box.top),
                box.width,
                box.height,
                fill=False,
                edgecolor=color,
                linewidth=lw,
                linestyle=(0, (4, 2)) if dashed else "solid",
                zorder=2.5 if dashed else 2,  # dashed ground truth over a prediction it matches
            )
        )
        if labels is not None and box.score is not None:
            score = f"{box.score:.2f}"
            full = f"{box.label} {score}" if box.label else score
            labels.add((box.left, box.top, box.width, box.height), (full, score), color)


def shorten(text: str, limit: int) -> str:
    """``text`` cut in the middle with an ellipsis to at most ``limit`` characters."""
    if len(text) <= limit or limit < 5:
        return text
    keep = limit - 1
    return f"{text[: keep - keep // 2]}…{text[-(keep // 2) :]}"


def _title_for(
    result: Mapping[str, Any] | None, boxes: list[DrawBox], name: str, limit: int
) -> tuple[str, str]:
    """(title, colour): the verdict, then the image name."""
    if result is None:
        count = f"{len(boxes)} detection{'s' if len(boxes) != 1 else ''}"
        text = f"{count}  ·  {name}" if name else count
        return shorten(text, limit), style.TEXT
    name = str(result.get("image_name", name))
    defect = bool(result.get("defect", bool(boxes)))
    verdict = "DEFECT" if defect else "ok"
    return shorten(f"{verdict}  ·  {name}", limit), style.DEFECT if defect else style.OK


def _legend_handles(boxes: int | None, truth: int | None) -> list[Line2D]:
    def count(n: int | None) -> str:
        return "" if n is None else f" ({n})"

    return [
        Line2D([], [], color=style.PREDICTION, lw=2, label=f"detected{count(boxes)}"),
        Line2D(
            [],
            [],
            color=style.GROUND_TRUTH,
            lw=2,
            ls=(0, (4, 2)),
            label=f"ground truth{count(truth)}",
        ),
    ]


def plot_detections(
    image: Any,
    detections: Any = (),
    ax: Axes | None = None,
    *,
    title: str | None = None,
    ground_truth: Any = None,
    score_threshold: float | None = None,
    show_scores: bool = True,
    legend: bool | None = None,
    title_chars: int = 80,
) -> Figure:
    """Show ``image`` with its detection boxes; ground-truth boxes dashed in another colour.

    ``image``: a path, PIL image or array. ``detections``: a result message
    (its ``detections`` and verdict are used), a list of result detections,
    `Detection` objects or ``[left, top, width, height]`` lists.
    ``score_threshold`` hides weaker detections. The legend shows by default
    when ground truth is given.
    """
    pixels = load_image(image)
    result = detections if isinstance(detections, Mapping) else None
    boxes = draw_boxes(detections)
    if score_threshold is not None:
        boxes = [b for b in boxes if b.score is None or b.score >= score_threshold]
    truth = draw_boxes(ground_truth, default_label="truth")
    height, width = pixels.shape[:2]
    figure, ax = style.figure_and_axes(
        ax, width=min(9.0, 2.0 + width / 80), height=min(7.0, 1.0 + height / 80)
    )
    ax.imshow(pixels, cmap="gray" if pixels.ndim == 2 else None, interpolation="antialiased")
    lw = _line_width(pixels.shape)
    labels = BoxLabels(ax, width, height) if show_scores else None
    _draw(ax, boxes, style.PREDICTION, dashed=False, lw=lw, labels=labels)
    _draw(ax, truth, style.GROUND_TRUTH, dashed=True, lw=lw)
    if labels is not None:
        ax.add_artist(labels)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_axis_off()
    name = Path(image).name if isinstance(image, str | os.PathLike) else ""
    auto_title, color = _title_for(result, boxes, name, title_chars)
    ax.set_title(title if title is not None else auto_title, fontsize=10, color=color, loc="left")
    if legend if legend is not None else ground_truth is not None:
        ax.legend(  # under the image, where it hides neither boxes nor labels
            handles=_legend_handles(len(boxes), len(truth) if ground_truth is not None else None),
            loc="upper left",
            bbox_to_anchor=(0.0, 0.0),
            ncols=2,
            fontsize=7.5,
            frameon=False,
        )
    return figure


def _cell(item: Any, image_dir: str | os.PathLike[str] | None) -> tuple[Any, Any, Any, str | None]:
    """(image, detections, ground truth, title) of one grid item."""
    if isinstance(item, Mapping):  # a result message: its image comes from image_dir
        name = str(item.get("image_name", ""))
        path = find_image(image_dir, name)
        if path is None:
            where = f"in {image_dir}" if image_dir is not None else "(pass image_dir=)"
            return None, item, None, f"{name}: image not found {where}"
        return path, item, None, None
    if isinstance(item, Sequence) and not isinstance(item, str) and 2 <= len(item) <= 3:
        image, dets = item[0], item[1]
        truth = item[2] if len(item) == 3 else None
        return image, dets, truth, None
    raise DataError(
        f"grid item {item!r:.80} is neither a result message nor (image, detections[, truth])"
    )


def detection_grid(
    items: Iterable[Any],
    ncols: int = 4,
    *,
    image_dir: str | os.PathLike[str] | None = None,
    title: str | None = None,
    cell_width: float = 3.2,
    score_threshold: float | None = None,
) -> Figure:
    """Many images with boxes in a grid: result messages (images from ``image_dir``) or
    ``(image, detections)`` / ``(image, detections, ground_truth)`` tuples.

    A result whose image is missing gets a cell saying so instead of failing the figure.
    """
    cells = list(items)
    if ncols < 1:
        raise DataError(f"ncols={ncols} must be at least 1")
    ncols = max(1, min(ncols, len(cells) or 1))
    nrows = max(1, math.ceil(len(cells) / ncols))
    figure = style.new_figure(cell_width * ncols, cell_width * 0.72 * nrows + (0.4 if title else 0))
    axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
    if not cells:
        style.empty_message(axes[0], "no images to show")
    any_truth = False
    for ax, item in zip(axes, cells, strict=False):
        image, dets, truth, problem = _cell(item, image_dir)
        if problem is not None:
            style.empty_message(ax, problem.replace(": ", ":\n", 1))
            continue
        plot_detections(
            image,
            dets,
            ax=ax,
            ground_truth=truth,
            score_threshold=score_threshold,
            legend=False,
            title_chars=int(cell_width * 11),
        )
        ax.title.set_fontsize(8.5)
        any_truth = any_truth or truth is not None
    for ax in axes[len(cells) :]:
        ax.set_axis_off()
    if title:
        figure.suptitle(title, x=0.01, ha="left", fontsize=12, fontweight="bold", color=style.TEXT)
    if any_truth:
        figure.legend(
            handles=_legend_handles(None, None),
            loc="outside lower center",
            ncols=2,
            frameon=False,
            fontsize=8.5,
        )
    return figure


__all__ = ["detection_grid", "plot_detections"]
