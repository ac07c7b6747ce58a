"""One look for every edgekit figure: sizes, colours, and axes styling.

Figures are built with `matplotlib.figure.Figure`, never pyplot: nothing is
registered globally, so functions are safe under the Agg backend, in threads and
in scheduled runs, and Jupyter shows a returned figure exactly once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

#: Predictions and ground truth must be told apart at a glance, also by colour-blind readers.
PREDICTION = "#E8590C"  # orange
GROUND_TRUTH = "#12B886"  # teal-green
DEFECT = "#C92A2A"
OK = "#2B8A3E"
TEXT = "#343A40"
MUTED = "#868E96"
GRID = "#DEE2E6"
P50 = "#1C7ED6"
P95 = "#A5D8FF"

#: Colours for devices and model versions, in order (Okabe-Ito, colour-blind safe).
PALETTE: tuple[str, ...] = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
)

#: Once the palette's colours are used up, the next names get the same colours with
#: another dash pattern, so ten devices are still told apart.
LINE_STYLES: tuple[Any, ...] = ("solid", (0, (5, 2)), (0, (1.5, 1.5)), (0, (6, 2, 1.5, 2)))
MARKERS: tuple[str, ...] = ("o", "s", "D", "^", "v", "P", "X", "h")

DPI = 110


@dataclass(frozen=True)
class SeriesStyle:
    """How one series (a device, a model variant) is drawn: colour, dash pattern, marker."""

    color: str
    linestyle: Any
    marker: str


def new_figure(width: float = 7.0, height: float = 4.2, **kwargs: Any) -> Figure:
    """A detached figure (no pyplot state) with edgekit's layout defaults."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained", **kwargs)


def figure_and_axes(
    ax: Axes | None, width: float = 7.0, height: float = 4.2
) -> tuple[Figure, Axes]:
    """Draw into ``ax`` if given (its figure is returned), else into a new figure."""
    if ax is not None:
        figure = ax.figure
        assert isinstance(figure, Figure)
        return figure, ax
    figure = new_figure(width, height)
    return figure, figure.add_subplot()


def style_axes(ax: Axes, *, grid: str | None = "y") -> Axes:
    """Light grid, no top/right frame, readable tick labels."""
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(MUTED)
    ax.tick_params(colors=TEXT, labelsize=9)
    ax.xaxis.label.set_color(TEXT)
    ax.yaxis.label.set_color(TEXT)
    ax.title.set_color(TEXT)
    if grid:
        ax.grid(True, axis=grid, color=GRID, linewidth=0.8)
        ax.set_axisbelow(True)
    return ax


def set_title(ax: Axes, title: str | None, subtitle: str | None = None) -> None:
    """Bold title with an optional smaller grey line under it.

    The subtitle sits a fixed number of points above the axes (not a fraction of their
    height), so it never runs into the title however tall the axes are.
    """
    if title:
        ax.set_title(
            title,
            loc="left",
            fontsize=11,
            fontweight="bold",
            color=TEXT,
            pad=6 + 13 * (subtitle.count("\n") + 1) if subtitle else 6,
        )
    if subtitle:
        ax.annotate(
            subtitle,
            xy=(0, 1),
            xycoords="axes fraction",
            xytext=(0, 4),
            textcoords="offset points",
            fontsize=8.5,
            color=MUTED,
            va="bottom",
            annotation_clip=False,
        )


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key putting ``core-2`` before ``core-10``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def colors_for(names: Iterable[str]) -> dict[str, str]:
    """A stable colour per name (in natural order), cycling through `PALETTE`."""
    ordered = sorted(set(names), key=natural_key)
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(ordered)}


def series_styles(names: Iterable[str]) -> dict[str, SeriesStyle]:
    """A stable, distinct style per name (natural order): colours first, then dash patterns."""
    ordered = sorted(set(names), key=natural_key)
    return {
        name: SeriesStyle(
            PALETTE[i % len(PALETTE)],
            LINE_STYLES[(i // len(PALETTE)) % len(LINE_STYLES)],
            MARKERS[i % len(MARKERS)],
        )
        for i, name in enumerate(ordered)
    }


def header(figure: Figure, cell: Any, title: str | None, subtitle: str | None) -> Axes:
    """An invisible axes in ``cell`` (a gridspec slot) carrying a figure's title and subtitle.

    Constrained layout makes room for an axes' title and texts (not for free figure
    texts), so a figure of several panels gets its title block this way.
    """
    ax = figure.add_subplot(cell)
    ax.set_axis_off()
    set_title(ax, title, subtitle)
    return ax


def legend_outside(ax: Axes, handles: Sequence[Any] | None = None, **kwargs: Any) -> None:
    """The legend to the right of the axes, clear of the data."""
    options: dict[str, Any] = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)}
    options.update(kwargs)
    legend(ax, handles, **options)


def empty_message(ax: Axes, text: str) -> None:
    """Say why a plot is empty instead of showing bare axes."""
    ax.text(
        0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color=MUTED, fontsize=11
    )
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def legend(ax: Axes, handles: Sequence[Any] | None = None, **kwargs: Any) -> None:
    options: dict[str, Any] = {"frameon": False, "fontsize": 8.5, "labelcolor": TEXT}
    options.update(kwargs)
    if handles is None:
        ax.legend(**options)
    else:
        ax.legend(handles=handles, **options)
