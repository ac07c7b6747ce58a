"""Labels of detection boxes, placed when the figure is drawn: inside the image, never stacked
on one another.

Where a label fits depends on the final size of the axes in pixels, which only the
renderer knows (constrained layout resizes axes at draw time). So `BoxLabels` is an
artist that measures its texts and places them in `draw`: above its box, else inside
its top edge, below it, inside its bottom edge, then stepped away from those spots,
always shifted inside the image; a label that fits nowhere falls back to its score
alone, and only then is left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.text import Text
from matplotlib.transforms import Bbox, IdentityTransform

#: How many label heights a label may be moved away from its box's edges to find room.
MAX_STEPS = 6


@dataclass
class _Label:
    box: tuple[float, float, float, float]  # left, top, width, height (data)
    texts: tuple[str, ...]  # the full text first, then shorter fallbacks
    artist: Text


class BoxLabels(Artist):
    """Labels for boxes drawn on an image in ``ax`` whose pixels span ``width`` x ``height``."""

    zorder = 4  # over the image and the boxes, under a legend

    def __init__(self, ax: Axes, width: int, height: int, *, fontsize: float = 7.5) -> None:
        super().__init__()
        self._ax = ax
        self._extent = (-0.5, -0.5, width - 0.5, height - 0.5)
        self._fontsize = fontsize
        self._labels: list[_Label] = []
        self.set_in_layout(False)

    def add(
        self, box: tuple[float, float, float, float], texts: tuple[str, ...], color: str
    ) -> None:
        """Label ``box`` (left, top, width, height in pixels of the image) with ``texts[0]``."""
        artist = Text(
            0,
            0,
            texts[0],
            color="white",
            fontsize=self._fontsize,
            ha="left",
            va="bottom",
            transform=IdentityTransform(),
            bbox={"facecolor": color, "edgecolor": "none", "pad": 1.2, "alpha": 0.9},
            clip_on=False,
        )
        self._labels.append(_Label(box, tuple(dict.fromkeys(texts)), artist))

    def texts(self) -> list[Text]:
        return [label.artist for label in self._labels]

    def get_children(self) -> list[Any]:
        return self.texts()

    # --- placement --------------------------------------------------------------------------

    def _area(self) -> Bbox:
        """The part of the image visible in the axes, in display pixels."""
        left, top, right, bottom = self._extent
        corners = self._ax.transData.transform([(left, top), (right, bottom)])
        image = Bbox.from_extents(
            min(corners[:, 0]), min(corners[:, 1]), max(corners[:, 0]), max(corners[:, 1])
        )
        visible = Bbox.intersection(image, self._ax.bbox)
        return visible if visible is not None else Bbox.null()

    def _candidates(
        self, box: Bbox, width: float, height: float, gap: float
    ) -> Iterator[tuple[float, float]]:
        """Lower-left corners to try, best first (display y grows upwards)."""
        above = box.y1 + gap
        inside_top = box.y1 - height - gap
        below = box.y0 - height - gap
        inside_bottom = box.y0 + gap
        for y in (above, inside_top, below, inside_bottom):
            yield box.x0, y
        for step in range(1, MAX_STEPS + 1):
            shift = step * (height + gap)
            for y in (above + shift, inside_top - shift, below - shift, inside_bottom + shift):
                yield box.x0, y

    def _place(
        self, label: _Label, renderer: Any, area: Bbox, taken: list[Bbox], scale: float
    ) -> bool:
        pad = 1.2 * scale  # the background box's pad, in pixels
        gap = 1.0 * scale
        left, top, width, height = label.box
        corners = self._ax.transData.transform([(left, top), (left + width, top + height)])
        box = Bbox.from_extents(
            min(corners[:, 0]), min(corners[:, 1]), max(corners[:, 0]), max(corners[:, 1])
        )
        for text in label.texts:
            label.artist.set_text(text)
            label.artist.set_position((0, 0))
            extent = label.artist.get_window_extent(renderer)
            w, h = extent.width + 2 * pad, extent.height + 2 * pad
            if w > area.width or h > area.height:
                continue
            for x, y in self._candidates(box, w, h, gap):
                x = min(max(x, area.x0), area.x1 - w)  # shifted into the image sideways
                if y < area.y0 or y + h > area.y1:
                    continue
                spot = Bbox.from_bounds(x, y, w, h)
                if any(spot.overlaps(other) for other in taken):
                    continue
                taken.append(spot)
                label.artist.set_position((x + pad, y + pad))
                return True
        return False

    def draw(self, renderer: Any) -> None:
        if not self.get_visible() or not self._labels:
            return
        figure = self.get_figure(root=False)
        area = self._area()
        scale = renderer.points_to_pixels(1.0)
        taken: list[Bbox] = []
        for label in self._labels:
            if label.artist.get_figure(root=False) is None:
                label.artist.set_figure(figure)
            placed = self._place(label, renderer, area, taken, scale)
            label.artist.set_visible(placed)
            if placed:
                label.artist.draw(renderer)
        self.stale = False


__all__ = ["BoxLabels"]
