"""Results over time, per device: defect rate, and which model version each device ran."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

from edgekit.errors import DataError
from edgekit.viz import style
from edgekit.viz.data import as_results, timestamp_of

#: Tick labels per level (years, months, days, hours, minutes, seconds): every tick of an
#: axis reads in one format, with seconds whenever ticks are seconds apart (never
#: "17:38, 01, 02"); trailing zeros of fractional seconds are dropped by the formatter.
_FORMATS = ["%Y", "%b %Y", "%b %d", "%H:%M", "%H:%M", "%H:%M:%S.%f"]
#: A tick on a day boundary of an hour-level axis names the day instead of "00:00".
_ZERO_FORMATS = ["%Y", "%b %Y", "%b %d", "%b %d", "%H:%M", "%H:%M:%S.%f"]


def _time_axis(ax: Axes, start: datetime, end: datetime, *, max_ticks: int = 7) -> str:
    """Unambiguous UTC tick labels over ``start``..``end``; the axis label (with the date)."""
    span = (end - start).total_seconds()
    pad = timedelta(seconds=max(span * 0.03, 0.5))
    locator = mdates.AutoDateLocator(tz=UTC, minticks=3, maxticks=max_ticks)
    # steps of 2 as well, so a few seconds (or minutes) never end up with a single tick
    locator.intervald[mdates.SECONDLY] = [1, 2, 5, 10, 15, 30]
    locator.intervald[mdates.MINUTELY] = [1, 2, 5, 10, 15, 30]
    formatter = mdates.ConciseDateFormatter(
        locator,
        tz=UTC,
        formats=_FORMATS,
        zero_formats=_ZERO_FORMATS,
        show_offset=False,
    )
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(formatter)
    ax.set_xlim(mdates.date2num(start - pad), mdates.date2num(end + pad))
    first, last = f"{start:%Y-%m-%d}", f"{end:%Y-%m-%d}"
    return f"Time (UTC), {first}" if first == last else f"Time (UTC), {first} to {last}"


def _bin_series(
    data: list[Mapping[str, Any]], bin_seconds: float
) -> dict[str, list[tuple[int, int, int]]]:
    """Per device, sorted (bin, images, defects)."""
    bins: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for i, r in enumerate(data):
        slot = int(timestamp_of(r, i).timestamp() // bin_seconds)
        counts = bins[str(r.get("thing_name"))][slot]
        counts[0] += 1
        counts[1] += 1 if r.get("defect") else 0
    return {
        device: [(slot, total, defects) for slot, (total, defects) in sorted(slots.items())]
        for device, slots in bins.items()
    }


def _draw_rate(
    ax: Axes,
    series: list[tuple[int, int, int]],
    look: style.SeriesStyle,
    *,
    bin_seconds: float,
    largest: int,
    label: str,
    where: float = 0.5,
) -> None:
    """One device's defect rate: a line through one marker per bin (area = images)."""
    # at ``where`` inside each bin (the middle, unless devices share one axes and are dodged)
    times = [datetime.fromtimestamp((slot + where) * bin_seconds, UTC) for slot, _, _ in series]
    rates = [defects / total for _, total, defects in series]
    sizes = [18 + 90 * total / largest for _, total, _ in series]
    ax.plot(
        times,
        rates,
        color=look.color,
        lw=1.6,
        ls=look.linestyle,
        label=label,
    )
    ax.scatter(
        times,
        rates,
        s=sizes,
        color=look.color,
        marker=look.marker,
        edgecolor="white",
        lw=0.8,
        zorder=3,
    )


def _rate_axes(ax: Axes) -> None:
    ax.set_ylim(-0.08, 1.1)
    ax.set_yticks([0.0, 0.5, 1.0])
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))


def defect_rate_over_time(
    results: Iterable[Mapping[str, Any]],
    bin_seconds: float = 60.0,
    *,
    ax: Axes | None = None,
    title: str | None = "Defect rate over time",
) -> Figure:
    """Share of inspected images flagged defective, per device and per ``bin_seconds`` window.

    One panel per device on shared axes, so devices that saw the same images (and so have
    identical lines) never hide one another. Marker area grows with the number of images
    in the bin, so a 100 % bin of one image does not look like a 100 % bin of fifty.
    Given ``ax``, every device is drawn into it instead, each in its own colour, dash
    pattern and marker, shifted within the bin so equal rates stay apart.
    """
    if bin_seconds <= 0:
        raise DataError(f"bin_seconds={bin_seconds} must be positive")
    data = as_results(results)
    if not data:
        figure, ax = style.figure_and_axes(ax, width=7.5, height=3.8)
        style.style_axes(ax)
        style.empty_message(ax, "no results yet")
        style.set_title(ax, title)
        return figure
    per_device = _bin_series(data, bin_seconds)
    devices = sorted(per_device, key=style.natural_key)
    looks = style.series_styles(devices)
    largest = max(total for series in per_device.values() for _, total, _ in series)
    slots = [slot for series in per_device.values() for slot, _, _ in series]
    start = datetime.fromtimestamp(min(slots) * bin_seconds, UTC)
    end = datetime.fromtimestamp((max(slots) + 1) * bin_seconds, UTC)
    window = f"{bin_seconds:g} s" if bin_seconds < 120 else f"{bin_seconds / 60:g} min"
    subtitle = (
        f"{len(data)} results from {len(devices)} device(s), {window} bins; "
        "marker size = images per bin"
    )
    if ax is not None:
        figure, ax = style.figure_and_axes(ax)
        style.style_axes(ax)
        for i, device in enumerate(devices):
            _draw_rate(
                ax,
                per_device[device],
                looks[device],
                bin_seconds=bin_seconds,
                largest=largest,
                label=device,
                where=(i + 1) / (len(devices) + 1),
            )
        _rate_axes(ax)
        ax.set_ylabel("Images flagged defective")
        ax.set_xlabel(_time_axis(ax, start, end))
        style.set_title(ax, title, subtitle)
        style.legend_outside(ax, title="device")
        return figure
    ncols = 1 if len(devices) <= 4 else 2 if len(devices) <= 12 else 3
    nrows = math.ceil(len(devices) / ncols)
    row_height = max(1.05, 2.3 / nrows) if ncols == 1 else 0.95
    figure = style.new_figure(7.5, 1.1 + nrows * row_height)
    grid = figure.add_gridspec(nrows + 1, ncols, height_ratios=[0.001] + [1.0] * nrows)
    panels: list[Axes] = []
    for i, device in enumerate(devices):
        row, col = divmod(i, ncols)
        panel = figure.add_subplot(
            grid[row + 1, col],
            sharex=panels[0] if panels else None,
            sharey=panels[0] if panels else None,
        )
        panels.append(panel)
        style.style_axes(panel)
        series = per_device[device]
        _draw_rate(
            panel, series, looks[device], bin_seconds=bin_seconds, largest=largest, label=device
        )
        images = sum(total for _, total, _ in series)
        defects = sum(d for _, _, d in series)
        panel.set_title(
            f"{device}  ·  {images} images, {defects / images:.0%} defective",
            loc="left",
            fontsize=9,
            color=style.TEXT,
            pad=3,
        )
        below = i + ncols < len(devices)  # another panel under this one shows the times
        panel.tick_params(axis="x", labelbottom=not below)
    _rate_axes(panels[0])
    label = _time_axis(panels[0], start, end, max_ticks=(7, 5, 4)[ncols - 1])
    figure.supxlabel(label, fontsize=10, color=style.TEXT)
    figure.supylabel("Images flagged defective", fontsize=10, color=style.TEXT)
    style.header(figure, grid[0, :], title, subtitle)
    return figure


def model_versions_per_device(
    results: Iterable[Mapping[str, Any]],
    *,
    ax: Axes | None = None,
    title: str | None = "Model version per device",
) -> Figure:
    """A lane per device, coloured by the model version its results came from.

    Each run of consecutive results with one version is a bar from its first to
    its last result, so a rollout shows as colours changing device by device.
    """
    data = as_results(results)
    devices = sorted({str(r.get("thing_name")) for r in data}, key=style.natural_key)
    figure, ax = style.figure_and_axes(ax, width=7.5, height=1.5 + 0.45 * max(len(devices), 1))
    style.style_axes(ax, grid="x")
    if not data:
        style.empty_message(ax, "no results yet")
        style.set_title(ax, title)
        return figure

    def version(r: Mapping[str, Any]) -> str:
        model = r.get("model") or {}
        return f"{model.get('name', '?')} {model.get('version', '?')}"

    stamped = sorted(
        ((timestamp_of(r, i), str(r.get("thing_name")), version(r)) for i, r in enumerate(data)),
        key=lambda t: t[0],
    )
    span = (stamped[-1][0] - stamped[0][0]).total_seconds()
    min_width = timedelta(seconds=max(span * 0.004, 0.5))
    versions = list(dict.fromkeys(v for _, _, v in stamped))
    colors = {v: style.PALETTE[i % len(style.PALETTE)] for i, v in enumerate(versions)}
    lane = {device: len(devices) - 1 - i for i, device in enumerate(devices)}
    runs: dict[str, list[list[Any]]] = defaultdict(list)  # device -> [[version, start, end, n]]
    for when, device, version in stamped:
        mine = runs[device]
        if mine and mine[-1][0] == version:
            mine[-1][2] = when
            mine[-1][3] += 1
        else:
            mine.append([version, when, when, 1])
    for device, mine in runs.items():
        for version, start, end, _n in mine:
            width = max(end - start, min_width)
            ax.barh(
                lane[device],
                mdates.date2num(start + width) - mdates.date2num(start),
                left=mdates.date2num(start),
                height=0.55,
                color=colors[version],
                edgecolor="white",
                lw=0.6,
            )
    ax.set_yticks(list(lane.values()), list(lane))
    ax.set_ylim(-0.6, len(devices) - 0.4)
    ax.xaxis_date(tz=UTC)
    ax.set_xlabel(_time_axis(ax, stamped[0][0], stamped[-1][0] + min_width))
    style.set_title(ax, title, f"{len(data)} results from {len(devices)} device(s)")
    handles = [Patch(color=colors[v], label=v) for v in versions]
    style.legend_outside(ax, handles, title="model")
    return figure


__all__ = ["defect_rate_over_time", "model_versions_per_device"]
