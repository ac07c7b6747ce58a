"""Figures of a staged rollout, drawn from its report (``edgekit rollout --report``).

Two pictures someone who was not watching can judge at a glance: what each device
proved (results published and p95 latency, coloured by its proof state) and every
gate of every stage against its limit (the value divided by the limit, so gates with
different units share one axis; the colour is the verdict).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import Patch

from edgekit.viz.style import (
    DEFECT,
    MUTED,
    OK,
    TEXT,
    empty_message,
    legend_outside,
    natural_key,
    new_figure,
    set_title,
    style_axes,
)

#: Proof states and gate verdicts, coloured alike: green holds, red failed, grey neither.
STATE_COLORS = {"PROVEN": OK, "PASS": OK, "FAILED": DEFECT, "FAIL": DEFECT}
#: How far right a failing gate's bar may reach (value/limit); beyond it the bar is cut
#: and its label says so, so one wild number does not flatten the others.
MAX_RATIO = 3.0


def _color(state: Any) -> str:
    return STATE_COLORS.get(str(state or "").upper(), MUTED)


def _bars(ax: Any, values: list[float] | list[int], colors: list[str]) -> None:
    """Horizontal bars, row i = values[i]; a zero draws no bar (its label says 0)."""
    for row, (value, color) in enumerate(zip(values, colors, strict=True)):
        if value > 0:
            ax.barh(row, value, color=color, height=0.6)


def rollout_devices(report: Mapping[str, Any]) -> Figure:
    """Per device: results published since the stage began and p95 latency (ms)."""
    devices = dict(report.get("devices") or {})
    names = sorted(devices, key=natural_key)
    height = 1.6 + 0.32 * max(len(names), 1)
    figure = new_figure(8.0, height)
    results_ax, p95_ax = figure.subplots(1, 2, sharey=True)
    model = report.get("model") or {}
    set_title(
        results_ax,
        "What each device proved",
        f"{model.get('name', '?')} {model.get('version', '?')}: {report.get('status', '?')}",
    )
    for ax in (results_ax, p95_ax):
        style_axes(ax, grid="x")
    if not names:
        empty_message(results_ax, "no device reported")
        return figure
    rows = range(len(names))
    colors = [_color(devices[n].get("state")) for n in names]
    results = [int(devices[n].get("results") or 0) for n in names]
    p95 = [float(devices[n].get("p95_ms") or 0.0) for n in names]
    _bars(results_ax, results, colors)
    _bars(p95_ax, p95, colors)
    results_ax.set_yticks(list(rows), names)
    results_ax.invert_yaxis()
    results_ax.set_xlabel("results published")
    p95_ax.set_xlabel("p95 latency (ms)")
    for ax, values, fmt in ((results_ax, results, "{:d}"), (p95_ax, p95, "{:.1f}")):
        top = max(values) if max(values) > 0 else 1.0
        ax.set_xlim(0, top * 1.25)
        for row, value in zip(rows, values, strict=True):
            ax.annotate(
                fmt.format(value),
                (value, row),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
                color=TEXT,
            )
    states = sorted({str(devices[n].get("state") or "unknown") for n in names})
    legend_outside(p95_ax, [Patch(color=_color(s), label=s) for s in states])
    return figure


def rollout_gates(report: Mapping[str, Any]) -> Figure:
    """Every gate of every stage: value / limit, coloured by verdict (1 = the limit)."""
    rows: list[tuple[str, Mapping[str, Any]]] = []
    for stage in report.get("stages") or []:
        for gate in stage.get("gates") or []:
            rows.append((f"{stage.get('name', '?')}: {gate.get('name', '?')}", gate))
    figure = new_figure(8.0, 1.6 + 0.32 * max(len(rows), 1))
    ax = figure.add_subplot()
    style_axes(ax, grid="x")
    verdict = report.get("gate") or "none failed"
    set_title(ax, "Gates against their limits", f"gate that decided: {verdict}")
    if not rows:
        empty_message(ax, "no gate was evaluated")
        return figure
    ratios: list[float] = []
    labels: list[str] = []
    for _name, gate in rows:
        value, limit = gate.get("value"), gate.get("threshold")
        if isinstance(value, int | float) and isinstance(limit, int | float) and limit:
            ratio = float(value) / float(limit)
            labels.append(f"{value:g} vs {limit:g} · {gate.get('verdict', '?')}")
        else:
            ratio = 0.0
            labels.append(f"{gate.get('verdict', '?')} (no number)")
        ratios.append(min(ratio, MAX_RATIO))
        if ratio > MAX_RATIO:
            labels[-1] += f" (bar cut at {MAX_RATIO:g}x)"
    positions = range(len(rows))
    colors = [_color(gate.get("verdict")) for _n, gate in rows]
    _bars(ax, ratios, colors)
    ax.axvline(1.0, color=TEXT, linewidth=1.0, linestyle="--")
    ax.set_yticks(list(positions), [name for name, _g in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, MAX_RATIO * 1.9)
    ax.set_xlabel("value / limit (dashed line: the limit)")
    for position, ratio, label in zip(positions, ratios, labels, strict=True):
        ax.annotate(
            label,
            (ratio, position),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
            color=TEXT,
        )
    verdicts = sorted({str(g.get("verdict") or "?") for _n, g in rows})
    legend_outside(ax, [Patch(color=_color(v), label=v) for v in verdicts])
    return figure


__all__ = ["rollout_devices", "rollout_gates"]
