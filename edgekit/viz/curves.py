"""Precision-recall curves of one or several models (e.g. fp32 vs int8)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from edgekit.errors import DataError
from edgekit.model.evaluate import ap_from_curve
from edgekit.viz import style


@dataclass(frozen=True)
class _Curve:
    precision: np.ndarray
    recall: np.ndarray
    ap: float
    operating_point: tuple[float, float, float] | None  # (recall, precision, threshold)


def _curve(source: Any) -> _Curve:
    """A curve from an EvalResult, its to_json() dict, or a (precision, recall) pair."""

    operating = None
    if hasattr(source, "pr_precision") and hasattr(source, "pr_recall"):  # EvalResult
        precision = np.asarray(source.pr_precision, dtype=float)
        recall = np.asarray(source.pr_recall, dtype=float)
        ap = float(source.ap50)
        operating = (float(source.recall), float(source.precision), float(source.score_threshold))
    elif isinstance(source, Mapping) and "pr_curve" in source:  # EvalResult.to_json()
        precision = np.asarray(source["pr_curve"]["precision"], dtype=float)
        recall = np.asarray(source["pr_curve"]["recall"], dtype=float)
        ap = float(source.get("ap50", ap_from_curve(precision, recall)))
        if {"recall", "precision", "score_threshold"} <= set(source):
            operating = (
                float(source["recall"]),
                float(source["precision"]),
                float(source["score_threshold"]),
            )
    elif isinstance(source, Sequence) and len(source) == 2:
        precision = np.asarray(source[0], dtype=float)
        recall = np.asarray(source[1], dtype=float)
        if precision.shape != recall.shape:
            raise DataError(
                f"precision has {precision.shape} values but recall {recall.shape}; "
                "pass (precision, recall) of equal length"
            )
        ap = ap_from_curve(precision, recall)
    else:
        raise DataError(
            f"cannot plot a PR curve from {type(source).__name__}; pass an EvalResult, "
            "its to_json() dict, or (precision, recall)"
        )
    return _Curve(precision, recall, ap, operating)


def _is_many(curves: Any) -> bool:
    return isinstance(curves, Mapping) and "pr_curve" not in curves


def _envelope(curve: _Curve) -> tuple[np.ndarray, np.ndarray]:
    """The step curve AP integrates: precision made non-increasing from the right."""
    envelope = np.maximum.accumulate(curve.precision[::-1])[::-1]
    recall = np.concatenate([[0.0], curve.recall])
    precision = np.concatenate([[envelope[0]], envelope])
    return recall, precision


def _annotate_operating_points(
    ax: Axes, points: list[tuple[str, str, tuple[float, float, float]]]
) -> None:
    """One label per distinct operating point, stacked so equal points share one label."""
    groups: dict[tuple[float, float, float], list[tuple[str, str]]] = {}
    for name, color, (r, p, threshold) in points:
        key = (round(r, 3), round(p, 3), threshold)
        groups.setdefault(key, []).append((name, color))
    for j, ((r, p, threshold), members) in enumerate(groups.items()):
        shared = len(members) > 1 or len(groups) == 1
        text = f"score ≥ {threshold:g}" if shared else f"{members[0][0]}: score ≥ {threshold:g}"
        ax.annotate(
            text,
            (r, p),
            xytext=(-10, -14 - 12 * j),
            textcoords="offset points",
            ha="right",
            fontsize=8,
            color=style.TEXT if shared else members[0][1],
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.0},
            zorder=20,
        )


def plot_pr_curve(
    curves: Any,
    *,
    ax: Axes | None = None,
    label: str | None = None,
    title: str | None = "Precision-recall (IoU 0.5)",
) -> Figure:
    """Plot the interpolated precision-recall curve and AP50 of one or several models.

    ``curves``: an `EvalResult`, its ``to_json()`` dict, ``(precision, recall)``,
    or a mapping ``{label: any of those}`` to compare models. An EvalResult's
    operating point (its score threshold) is marked.

    Compared models often have identical curves (an fp32 export of the source): the
    first is drawn widest and solid, each next one narrower, dashed or dotted on top,
    so every curve stays visible where they coincide.
    """
    named = dict(curves) if _is_many(curves) else {label or "model": curves}
    figure, ax = style.figure_and_axes(ax, width=7.2, height=4.6)
    style.style_axes(ax, grid="both")
    count = len(named)
    points: list[tuple[str, str, tuple[float, float, float]]] = []
    for i, (name, source) in enumerate(named.items()):
        curve = _curve(source)
        color = style.PALETTE[i % len(style.PALETTE)]
        width = 1.6 + 1.5 * (count - 1 - i)  # the first widest: the later ones lie inside it
        linestyle = style.LINE_STYLES[i % len(style.LINE_STYLES)]
        text = f"{name}  AP50 {curve.ap:.3f}"
        if curve.recall.size:
            recall, precision = _envelope(curve)
            ax.step(
                recall,
                precision,
                where="pre",
                color=color,
                lw=width,
                ls=linestyle,
                label=text,
                zorder=2 + i,
            )
            if count == 1:  # shading and the raw curve only muddy a comparison
                ax.fill_between(recall, precision, step="pre", color=color, alpha=0.08)
                ax.plot(curve.recall, curve.precision, color=color, lw=0.8, alpha=0.45)
        else:
            ax.plot([], [], color=color, lw=2, ls=linestyle, label=f"{text} (no detections)")
        if curve.operating_point is not None:
            r, p, _threshold = curve.operating_point
            ax.plot(
                [r],
                [p],
                ls="none",
                marker=style.MARKERS[i % len(style.MARKERS)],
                color=color,
                markersize=7 + 3 * (count - 1 - i),
                markeredgecolor="white",
                zorder=10 + i,
            )
            points.append((name, color, curve.operating_point))
    _annotate_operating_points(ax, points)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    style.set_title(ax, title)
    style.legend_outside(ax, title="model" if count > 1 else None)
    return figure


__all__ = ["plot_pr_curve"]
