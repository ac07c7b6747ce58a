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
    """
    named = dict(curves) if _is_many(curves) else {label or "model": curves}
    figure, ax = style.figure_and_axes(ax, width=5.6, height=4.6)
    style.style_axes(ax, grid="both")
    colors = style.PALETTE
    for i, (name, source) in enumerate(named.items()):
        curve = _curve(source)
        color = colors[i % len(colors)]
        if curve.recall.size:
            # the envelope AP integrates: precision made non-increasing from the right
            envelope = np.maximum.accumulate(curve.precision[::-1])[::-1]
            recall = np.concatenate([[0.0], curve.recall])
            precision = np.concatenate([[envelope[0]], envelope])
            ax.step(
                recall,
                precision,
                where="pre",
                color=color,
                lw=2,
                label=f"{name}  AP50 {curve.ap:.3f}",
            )
            if len(named) == 1:  # shading several curves only muddies them
                ax.fill_between(recall, precision, step="pre", color=color, alpha=0.08)
            ax.plot(curve.recall, curve.precision, color=color, lw=0.8, alpha=0.45)
        else:
            ax.plot([], [], color=color, lw=2, label=f"{name}  AP50 {curve.ap:.3f} (no detections)")
        if curve.operating_point is not None:
            r, p, threshold = curve.operating_point
            ax.plot([r], [p], "o", color=color, markersize=7, markeredgecolor="white", zorder=5)
            ax.annotate(
                f"score ≥ {threshold:g}",
                (r, p),
                xytext=(-8, -14),
                textcoords="offset points",
                ha="right",
                fontsize=8,
                color=color,
            )
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    style.set_title(ax, title)
    style.legend(ax, loc="lower left")
    return figure


__all__ = ["plot_pr_curve"]
