"""Latency: model variants side by side (p50/p95), and the distribution seen on devices."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from edgekit.errors import DataError
from edgekit.results.table import percentile
from edgekit.viz import style
from edgekit.viz.data import as_results, first_key

NAME_KEYS = ("variant", "name", "model", "target", "runtime", "thing_name")
P50_KEYS = ("p50_ms", "p50", "latency_p50_ms", "p50_total_ms")
P95_KEYS = ("p95_ms", "p95", "latency_p95_ms", "p95_total_ms")
STAGES = ("total", "inference", "preprocess")
#: Up to this many devices each gets a tinted area under its outline.
FILLED_DEVICES = 3
#: Beyond that, the whole fleet's distribution in light grey.
FLEET = "#CED4DA"


def _rows(rows: Any) -> list[Mapping[str, Any]]:
    if isinstance(rows, Mapping):  # {variant: {"p50_ms": .., "p95_ms": ..}}
        return [{"variant": name, **dict(values)} for name, values in rows.items()]
    return [dict(r) if isinstance(r, Mapping) else vars(r) for r in rows]


def latency_bar_chart(
    rows: Any,
    *,
    ax: Axes | None = None,
    title: str | None = "Inference latency by model variant",
    subtitle: str | None = None,
) -> Figure:
    """Horizontal bars of p50 and p95 latency (ms) per variant.

    ``rows``: dicts with a name (``variant``/``name``/``model``/``target``/
    ``thing_name``) and ``p50_ms``/``p95_ms`` (``p50``/``p95``,
    ``p50_total_ms``/``p95_total_ms`` also work, so ``ResultsTable.summary()``
    plots per device), or a mapping ``{variant: {"p50_ms": .., "p95_ms": ..}}``.
    """
    data = _rows(rows)
    names = [str(first_key(r, NAME_KEYS, "name", i)) for i, r in enumerate(data)]
    p50 = np.array([float(first_key(r, P50_KEYS, "p50 latency", i)) for i, r in enumerate(data)])
    p95 = np.array([float(first_key(r, P95_KEYS, "p95 latency", i)) for i, r in enumerate(data)])
    figure, ax = style.figure_and_axes(ax, width=7.0, height=1.4 + 0.55 * max(len(data), 1))
    style.style_axes(ax, grid="x")
    if not data:
        style.empty_message(ax, "no latency measurements")
        style.set_title(ax, title)
        return figure
    y = np.arange(len(data))[::-1]
    bar = 0.38
    ax.barh(y + bar / 2, p50, height=bar, color=style.P50, label="p50")
    ax.barh(y - bar / 2, p95, height=bar, color=style.P95, label="p95")
    top = float(np.nanmax(np.concatenate([p50, p95]))) if data else 1.0
    for yi, a, b in zip(y, p50, p95, strict=True):
        ax.text(a + top * 0.01, yi + bar / 2, f"{a:.1f}", va="center", fontsize=8, color=style.TEXT)
        ax.text(
            b + top * 0.01, yi - bar / 2, f"{b:.1f}", va="center", fontsize=8, color=style.MUTED
        )
    ax.set_yticks(y, names)
    ax.set_xlim(0, top * 1.15 if top > 0 else 1)
    ax.set_xlabel("Latency per image (ms)")
    style.set_title(ax, title, subtitle)
    style.legend_outside(ax)
    return figure


def _stage_values(result: Mapping[str, Any], stage: str, index: int) -> float:
    try:
        return float(result["latency_ms"][stage])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(
            f"result #{index} ({result.get('image_name', '?')}) has no latency_ms.{stage}"
        ) from exc


def latency_histogram(
    results: Iterable[Mapping[str, Any]],
    *,
    stage: str = "total",
    bins: int = 30,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Distribution of on-device latency, one outline per device, with p50/p95 marked."""
    if stage not in STAGES:
        raise DataError(f"stage={stage!r} is not one of {', '.join(STAGES)}")
    data = as_results(results)
    figure, ax = style.figure_and_axes(ax, width=7.0, height=3.8)
    style.style_axes(ax)
    heading = title if title is not None else f"On-device {stage} latency"
    if not data:
        style.empty_message(ax, "no results yet")
        style.set_title(ax, heading)
        return figure
    by_device: dict[str, list[float]] = {}
    for i, r in enumerate(data):
        by_device.setdefault(str(r.get("thing_name")), []).append(_stage_values(r, stage, i))
    everything = [v for values in by_device.values() for v in values]
    low, high = min(everything), max(everything)
    edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
    looks = style.series_styles(by_device)
    devices = sorted(by_device, key=style.natural_key)
    handles = []
    shade_each = len(devices) <= FILLED_DEVICES
    if not shade_each:  # many tinted areas only muddy: the fleet's distribution, shaded once
        ax.hist(everything, bins=edges, histtype="stepfilled", color=FLEET)
        handles.append(Patch(color=FLEET, label=f"all devices ({len(everything)})"))
    for device in devices:
        look = looks[device]
        if shade_each:
            ax.hist(
                by_device[device], bins=edges, histtype="stepfilled", alpha=0.25, color=look.color
            )
        ax.hist(
            by_device[device],
            bins=edges,
            histtype="step",
            lw=1.6 if shade_each else 1.3,
            ls=look.linestyle,
            color=look.color,
            label=device,
        )
    handles += [
        Line2D(
            [],
            [],
            color=looks[d].color,
            ls=looks[d].linestyle,
            lw=2,
            label=f"{d} ({len(by_device[d])})",
        )
        for d in devices
    ]
    for q, ls in ((50, "--"), (95, ":")):
        value = percentile(everything, q)
        ax.axvline(value, color=style.TEXT, ls=ls, lw=1.1)
        handles.append(
            Line2D([], [], color=style.TEXT, ls=ls, lw=1.1, label=f"p{q} {value:.1f} ms")
        )
    ax.set_xlabel(f"{stage.capitalize()} latency (ms)")
    ax.set_ylabel("Images")
    style.set_title(ax, heading, f"{len(everything)} results from {len(by_device)} device(s)")
    style.legend_outside(ax, handles)
    return figure


__all__ = ["latency_bar_chart", "latency_histogram"]
