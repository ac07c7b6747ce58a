"""Training batches: augmented samples with their encoded targets, as tensors.

A sample is a pure function of ``(seed, epoch, index)``: the photo (or render) comes
from a :data:`Source`, is resized to the model input, tiled into a mosaic or not,
augmented (:mod:`edgekit.model.augment`) and encoded (:mod:`edgekit.model.targets`).

Must not import the training loop (:mod:`edgekit.model.train` imports this module).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from edgekit.data.types import Box
from edgekit.model import augment as aug
from edgekit.model.detector import DetectorConfig
from edgekit.model.metadata import Preprocessing
from edgekit.model.postprocess import normalize, resize
from edgekit.model.targets import encode

Source = Callable[[int, int], tuple[np.ndarray, list[Box]]]


def _boxes_array(boxes: list[Box], sx: float, sy: float) -> np.ndarray:
    """(N, 5) rows of x1, y1, x2, y2 (scaled to input pixels) and class id."""
    rows = np.zeros((len(boxes), 5), np.float32)
    for k, b in enumerate(boxes):
        rows[k] = (*b.xyxy(), b.class_id)
    rows[:, [0, 2]] *= sx
    rows[:, [1, 3]] *= sy
    return rows


class Batches:
    """Makes augmented, encoded training batches; sample k of epoch e is a pure function."""

    def __init__(
        self,
        get: Source,
        count: int,
        pre: Preprocessing,
        config: DetectorConfig,
        augment_cfg: aug.AugmentConfig,
        seed: int,
    ) -> None:
        self.get, self.count, self.pre, self.config = get, count, pre, config
        self.augment_cfg, self.seed = augment_cfg, seed
        #: Epochs from this one on train without mosaic (YOLO's ``close_mosaic``).
        self.mosaic_until: int | None = None

    def _input_sized(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, boxes = self.get(epoch, index)
        h, w = image.shape[:2]
        return resize(image, self.pre), _boxes_array(boxes, self.pre.width / w, self.pre.height / h)

    def sample(self, epoch: int, index: int) -> tuple[np.ndarray, ...]:
        rng = np.random.default_rng([self.seed, epoch, index, 7])
        cfg = self.augment_cfg
        if self.mosaic_until is not None and epoch >= self.mosaic_until:
            cfg = cfg.without_mosaic()
        if cfg.mosaic > 0 and rng.random() < cfg.mosaic and self.count > 1:
            others = rng.integers(0, self.count, size=3).tolist()
            tiles = [self._input_sized(epoch, i) for i in [index, *others]]
            small, rows = aug.mosaic(tiles, rng, cfg)
        else:
            small, rows = self._input_sized(epoch, index)
        small, rows = aug.augment(small, rows, rng, cfg)
        xyxy, classes = rows[:, :4], rows[:, 4].astype(np.int64)
        x = normalize(small, self.pre)[0]
        c = self.config
        out = (self.pre.height // c.stride, self.pre.width // c.stride)
        t = encode(xyxy, classes, c.num_classes, out, c.stride)
        return x, t.heatmap, t.size, t.offset, t.weight

    def epoch(self, epoch: int, batch_size: int) -> list[list[int]]:
        """Shuffled index batches; an incomplete last batch is dropped (BatchNorm noise)."""
        order = np.random.default_rng([self.seed, epoch, 11]).permutation(self.count).tolist()
        if self.count <= batch_size:
            return [order]
        full = self.count // batch_size * batch_size
        return [order[i : i + batch_size] for i in range(0, full, batch_size)]

    def batch(self, epoch: int, indices: list[int]) -> list[torch.Tensor]:
        parts = [self.sample(epoch, i) for i in indices]
        return [torch.from_numpy(np.stack(p)) for p in zip(*parts, strict=True)]
