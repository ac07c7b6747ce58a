"""Training augmentation: the mosaic keeps every scratch where its pixels went."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PIL")

from edgekit.model import augment as aug  # noqa: E402

H, W = 64, 96


def _tile(value: int, box: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """A flat grey image with one white box drawn where its label says."""
    image = np.full((H, W, 3), value, np.uint8)
    x1, y1, x2, y2 = (int(v) for v in box)
    image[y1:y2, x1:x2] = 255
    return image, np.array([[*box, 0]], np.float32)


def test_mosaic_boxes_follow_their_pixels() -> None:
    cfg = aug.AugmentConfig(mosaic=1.0, min_visible=0.0)
    centred = (40.0, 24.0, 56.0, 40.0)  # every tile's box sits at its own centre
    tiles = [_tile(20 * (k + 1), centred) for k in range(4)]
    for seed in range(20):
        image, boxes = aug.mosaic(tiles, np.random.default_rng(seed), cfg)
        assert image.shape == (H, W, 3)
        assert len(boxes) >= 1
        white = image[..., 0] == 255
        for x1, y1, x2, y2, cls in boxes:
            assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H and cls == 0
            assert white[int(y1) : int(y2), int(x1) : int(x2)].all()
        # every white pixel belongs to a box: none is lost from the labels
        covered = np.zeros_like(white)
        for x1, y1, x2, y2, _ in boxes:
            covered[int(y1) : int(y2), int(x1) : int(x2)] = True
        assert not (white & ~covered).any()


def test_mosaic_drops_boxes_mostly_cut_away() -> None:
    cfg = aug.AugmentConfig(mosaic=1.0, min_visible=0.9)
    corner = (0.0, 0.0, 10.0, 10.0)  # the top-left tile's box is always cut or outside
    tiles = [_tile(50, corner) for _ in range(4)]
    rng = np.random.default_rng(3)
    for _ in range(20):
        image, boxes = aug.mosaic(tiles, rng, cfg)
        for x1, y1, x2, y2, _cls in boxes:
            assert (x2 - x1) * (y2 - y1) >= 0.9 * 100 - 1e-3


def test_mosaic_of_images_without_boxes() -> None:
    tiles = [(np.zeros((H, W, 3), np.uint8), np.zeros((0, 5), np.float32)) for _ in range(4)]
    image, boxes = aug.mosaic(tiles, np.random.default_rng(0), aug.AugmentConfig(mosaic=1.0))
    assert image.shape == (H, W, 3) and boxes.shape == (0, 5)


def test_without_mosaic_keeps_the_other_settings() -> None:
    cfg = aug.AugmentConfig(mosaic=1.0, scale=(0.5, 1.5))
    off = cfg.without_mosaic()
    assert off.mosaic == 0.0 and off.scale == (0.5, 1.5)
