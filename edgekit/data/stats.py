"""Numbers that describe a labeled data set before anyone trains on it."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.data.split import split_dataset
from edgekit.data.types import Dataset

PERCENTILES = (5, 25, 50, 75, 95)


def summarize(dataset: Dataset, *, val_fraction: float = 0.2, seed: int = 0) -> dict[str, Any]:
    """Image/box counts, box size percentiles and the group-wise split sizes."""
    boxes = [b for s in dataset.samples for b in s.boxes]
    widths = np.array([b.width for b in boxes], dtype=float)
    heights = np.array([b.height for b in boxes], dtype=float)
    per_image = np.bincount([len(s.boxes) for s in dataset.samples]) if dataset.samples else []
    train, val = split_dataset(dataset, val_fraction=val_fraction, seed=seed)

    def pct(values: np.ndarray) -> dict[int, float]:
        if values.size == 0:
            return {}
        found = np.percentile(values, PERCENTILES)
        return {p: float(v) for p, v in zip(PERCENTILES, found, strict=True)}

    return {
        "root": str(dataset.root),
        "images": len(dataset.samples),
        "boxes": len(boxes),
        "images_without_boxes": int(per_image[0]) if len(per_image) else 0,
        "boxes_per_image": {k: int(n) for k, n in enumerate(per_image) if n},
        "groups": len({s.group for s in dataset.samples}),
        "labels": dict(dataset.labels),
        "box_width": pct(widths),
        "box_height": pct(heights),
        "train_images": len(train),
        "val_images": len(val),
        "val_groups": len({s.group for s in val.samples}),
    }


def format_summary(stats: dict[str, Any]) -> str:
    """The summary as aligned text for a terminal or a notebook cell."""

    def row(values: dict[int, float]) -> str:
        if not values:
            return "-"
        return "  ".join(f"p{p}={v:.0f}" for p, v in values.items())

    per_image = ", ".join(f"{k}:{n}" for k, n in stats["boxes_per_image"].items())
    labels = ", ".join(f"{k}={v}" for k, v in stats["labels"].items())
    lines = [
        f"data set       {stats['root']}",
        f"images         {stats['images']} ({stats['groups']} groups)",
        f"boxes          {stats['boxes']} ({stats['images_without_boxes']} images without boxes)",
        f"boxes/image    {per_image or '-'}",
        f"labels         {labels}",
        f"box width px   {row(stats['box_width'])}",
        f"box height px  {row(stats['box_height'])}",
        f"split          train {stats['train_images']} images, val {stats['val_images']} images "
        f"({stats['val_groups']} groups)",
    ]
    return "\n".join(lines)
