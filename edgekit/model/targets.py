"""Training targets for the CenterNet-style detector: the inverse of ``decode``.

Each box puts an elliptical Gaussian on the class heatmap (peak 1 at the
cell holding its centre, sigma proportional to the box size as in TTFNet) and
writes its size and centre into every cell where its Gaussian is the largest
and above ``reg_floor``; the regression weight of a cell is its Gaussian
value. Regressing around the centre, not only at it, makes training converge
in the few minutes a CPU allows, and any nearby peak then decodes to the
right box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Targets:
    heatmap: np.ndarray  # (C, h, w) in [0, 1]
    size: np.ndarray  # (2, h, w) log(box size / stride)
    offset: np.ndarray  # (2, h, w) box centre minus cell index, in cells
    weight: np.ndarray  # (1, h, w) regression weight


def encode(
    boxes: np.ndarray,
    classes: np.ndarray,
    num_classes: int,
    out_size: tuple[int, int],
    stride: int,
    *,
    alpha: float = 0.54,
    min_sigma: float = 0.5,
    reg_floor: float = 0.2,
) -> Targets:
    """``boxes`` (N, 4) as x1, y1, x2, y2 in input pixels; ``out_size`` is (h, w) cells."""
    h, w = out_size
    heat = np.zeros((num_classes, h, w), dtype=np.float32)
    size = np.zeros((2, h, w), dtype=np.float32)
    offset = np.zeros((2, h, w), dtype=np.float32)
    weight = np.zeros((1, h, w), dtype=np.float32)
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    # Large boxes first, so a small box lying inside a large one keeps its own cells.
    order = (
        np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])) if len(boxes) else []
    )
    for k in order:
        x1, y1, x2, y2 = (float(v) / stride for v in boxes[k])
        bw, bh = x2 - x1, y2 - y1
        if bw <= 0 or bh <= 0:
            continue
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        ix = min(max(int(cx), 0), w - 1)
        iy = min(max(int(cy), 0), h - 1)
        sx = max(alpha * bw / 6.0, min_sigma)
        sy = max(alpha * bh / 6.0, min_sigma)
        g = np.exp(-((xs - ix) ** 2) / (2 * sx * sx) - ((ys - iy) ** 2) / (2 * sy * sy))
        c = int(classes[k])
        np.maximum(heat[c], g, out=heat[c])
        region = (g >= reg_floor) & (g >= weight[0])
        weight[0][region] = g[region]
        size[0][region] = np.log(bw)
        size[1][region] = np.log(bh)
        offset[0][region] = (cx - xs + np.zeros_like(ys))[region]
        offset[1][region] = (cy - ys + np.zeros_like(xs))[region]
    return Targets(heat, size, offset, weight)
