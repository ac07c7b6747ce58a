"""Choosing what a notebook figure shows, and saving it next to a run's report."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from edgekit.schemas import parse_timestamp


def pick_examples(results: Sequence[Mapping[str, Any]], count: int = 8) -> list[Mapping[str, Any]]:
    """Up to ``count`` recent results of distinct images, defective and clean ones alternating.

    A grid of only clean tags (or only scratched ones) would hide half the story.
    """
    newest: dict[str, Mapping[str, Any]] = {}
    for result in reversed(results):
        newest.setdefault(str(result.get("image_name")), result)
    defects = [r for r in newest.values() if r.get("defect")]
    clean = [r for r in newest.values() if not r.get("defect")]
    picked: list[Mapping[str, Any]] = []
    while len(picked) < count and (defects or clean):
        for pool in (defects, clean):
            if pool and len(picked) < count:
                picked.append(pool.pop(0))
    return sorted(picked, key=lambda r: str(r.get("image_name")))


def time_bin_seconds(results: Sequence[Mapping[str, Any]], bins: int = 12) -> float:
    """A bin width giving about ``bins`` points over the collection's span (at least 1 s)."""
    stamps = []
    for r in results:
        try:
            stamps.append(parse_timestamp(str(r.get("timestamp"))))
        except ValueError:
            continue
    if len(stamps) < 2:
        return 60.0
    span = (max(stamps) - min(stamps)).total_seconds()
    return float(max(1, round(span / max(bins, 1))))


def save_figure(
    figure: Figure, figures_dir: str | os.PathLike[str] | None, name: str
) -> Path | None:
    """Save ``figure`` as ``figures_dir/name.png`` when ``figures_dir`` is set; the path."""
    if figures_dir is None:
        return None
    folder = Path(figures_dir).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    figure.savefig(path, facecolor="white")
    return path
