"""Results over time, per device: defect rate, and which model version each device ran."""

from __future__ import annotations

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


def _time_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))
    ax.set_xlabel("Time (UTC)")


def defect_rate_over_time(
    results: Iterable[Mapping[str, Any]],
    bin_seconds: float = 60.0,
    *,
    ax: Axes | None = None,
    title: str | None = "Defect rate over time",
) -> Figure:
    """Share of inspected images flagged defective, per device and per ``bin_seconds`` window.

    Marker area grows with the number of images in the bin, so a 100 % bin of
    one image does not look like a 100 % bin of fifty.
    """
    if bin_seconds <= 0:
        raise DataError(f"bin_seconds={bin_seconds} must be positive")
    data = as_results(results)
    figure, ax = style.figure_and_axes(ax, width=7.5, height=3.8)
    style.style_axes(ax)
    if not data:
        style.empty_message(ax, "no results yet")
        style.set_title(ax, title)
        return figure
    bins: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for i, r in enumerate(data):
        slot = int(timestamp_of(r, i).timestamp() // bin_seconds)
        counts = bins[str(r.get("thing_name"))][slot]
        counts[0] += 1
        counts[1] += 1 if r.get("defect") else 0
    colors = style.colors_for(bins)
    largest = max(c[0] for slots in bins.values() for c in slots.values())
    for device in sorted(bins):
        slots = sorted(bins[device].items())
        # the middle of each bin, so a point sits over the window it summarizes
        times = [datetime.fromtimestamp((s + 0.5) * bin_seconds, UTC) for s, _ in slots]
        rates = [defects / total for _, (total, defects) in slots]
        sizes = [18 + 90 * total / largest for _, (total, _d) in slots]
        ax.plot(times, rates, color=colors[device], lw=1.6, alpha=0.85, label=device)
        ax.scatter(times, rates, s=sizes, color=colors[device], edgecolor="white", lw=0.8, zorder=3)
    ax.set_ylim(-0.04, 1.08)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylabel("Images flagged defective")
    _time_axis(ax)
    window = f"{bin_seconds:g} s" if bin_seconds < 120 else f"{bin_seconds / 60:g} min"
    style.set_title(ax, title, f"{len(data)} results, {window} bins; marker size = images per bin")
    style.legend(ax, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="device")
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
    devices = sorted({str(r.get("thing_name")) for r in data})
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
    _time_axis(ax)
    style.set_title(ax, title, f"{len(data)} results from {len(devices)} device(s)")
    handles = [Patch(color=colors[v], label=v) for v in versions]
    style.legend(ax, handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="model")
    return figure


__all__ = ["defect_rate_over_time", "model_versions_per_device"]
