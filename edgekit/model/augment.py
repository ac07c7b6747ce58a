"""Training-time image augmentation (numpy + Pillow), applied at model input size.

Why broad (``SYNTHETIC``): the pretraining learns from synthetic renders only and
must still find scratches on real photos, so lighting, contrast, sensor noise,
defocus, JPEG artefacts and framing vary well beyond what the renderer does.
``REAL`` fine-tunes on a few real photos: milder photometric changes, and YOLO's
mosaic with a wide scale jitter so that each photo is seen in many framings.
Every random choice comes from the generator passed in, so a sample is a pure
function of ``(seed, epoch, index)``.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from PIL import Image, ImageFilter


@dataclass(frozen=True)
class AugmentConfig:
    hflip: float = 0.5
    vflip: float = 0.5
    scale: tuple[float, float] = (0.8, 1.25)
    translate: float = 0.08  # fraction of width/height
    contrast: tuple[float, float] = (0.6, 1.5)
    brightness: float = 40.0  # grey levels, +-
    gamma: tuple[float, float] = (0.7, 1.4)
    noise: tuple[float, float] = (0.0, 8.0)  # sigma in grey levels
    blur_p: float = 0.3
    blur_radius: tuple[float, float] = (0.3, 1.2)
    jpeg_p: float = 0.3
    jpeg_quality: tuple[int, int] = (35, 95)
    color_p: float = 0.2
    min_visible: float = 0.4  # keep a box cut by the frame if this much of it remains
    mosaic: float = 0.0  # probability of tiling four training images into one (YOLO's mosaic)

    def without_mosaic(self) -> AugmentConfig:
        return replace(self, mosaic=0.0)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


#: Real photos: mild photometric settings (less domain gap to bridge), YOLO-style mosaic
#: and a wide scale jitter (a few photos must stand for many).
REAL = AugmentConfig(
    mosaic=1.0,
    scale=(0.6, 1.4),
    translate=0.06,
    contrast=(0.75, 1.3),
    brightness=25.0,
    gamma=(0.8, 1.25),
    noise=(0.0, 5.0),
    blur_p=0.2,
    blur_radius=(0.3, 0.8),
    jpeg_p=0.2,
    jpeg_quality=(50, 95),
    color_p=0.1,
)
#: Broad settings for synthetic renders.
SYNTHETIC = AugmentConfig()


def _keep_visible(
    boxes: np.ndarray, x0: float, y0: float, x1: float, y1: float, min_visible: float
) -> np.ndarray:
    """Clip box rows to the frame ``[x0, x1] x [y0, y1]``; drop those mostly outside it."""
    if not len(boxes):
        return boxes
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    clipped = boxes.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(x0, x1)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(y0, y1)
    visible = (clipped[:, 2] - clipped[:, 0]).clip(0) * (clipped[:, 3] - clipped[:, 1]).clip(0)
    return clipped[(visible > 0) & (visible >= min_visible * np.maximum(area, 1e-6))]


def mosaic(
    tiles: list[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator, cfg: AugmentConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Four images of one size tiled around a random point, cut back to that size.

    As YOLO's mosaic: the four images meet at a random centre of a canvas twice the
    size (top-left, top-right, bottom-left, bottom-right), and the frame around the
    canvas centre is kept, so every scratch keeps its scale and a training image holds
    parts of four photos with their boxes (clipped; mostly cut ones dropped).
    """
    h, w = tiles[0][0].shape[:2]
    fill = np.uint8(114)
    canvas = np.full((2 * h, 2 * w, 3), fill, np.uint8)
    xc = int(rng.uniform(0.5 * w, 1.5 * w))
    yc = int(rng.uniform(0.5 * h, 1.5 * h))
    corners = ((xc - w, yc - h), (xc, yc - h), (xc - w, yc), (xc, yc))
    rows = []
    for (image, boxes), (x, y) in zip(tiles, corners, strict=True):
        cx0, cy0 = max(x, 0), max(y, 0)
        cx1, cy1 = min(x + w, 2 * w), min(y + h, 2 * h)
        canvas[cy0:cy1, cx0:cx1] = image[cy0 - y : cy1 - y, cx0 - x : cx1 - x]
        if len(boxes):
            shifted = boxes.copy()
            shifted[:, [0, 2]] += x
            shifted[:, [1, 3]] += y
            rows.append(_keep_visible(shifted, cx0, cy0, cx1, cy1, cfg.min_visible))
    x0, y0 = w // 2, h // 2
    out = np.ascontiguousarray(canvas[y0 : y0 + h, x0 : x0 + w])
    boxes = np.concatenate(rows) if rows else np.zeros((0, tiles[0][1].shape[1]), np.float32)
    boxes = _keep_visible(boxes, x0, y0, x0 + w, y0 + h, cfg.min_visible)
    if len(boxes):
        boxes[:, [0, 2]] -= x0
        boxes[:, [1, 3]] -= y0
    return out, boxes


def geometric(
    image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Scale/translate jitter and flips.

    ``boxes`` rows start with x1, y1, x2, y2 in image pixels; further columns
    (the class id) ride along. Boxes mostly pushed out of the frame are dropped.
    """
    h, w = image.shape[:2]
    s = float(rng.uniform(*cfg.scale))
    tx = float(rng.uniform(-cfg.translate, cfg.translate)) * w
    ty = float(rng.uniform(-cfg.translate, cfg.translate)) * h
    cx, cy = w / 2.0, h / 2.0
    if abs(s - 1.0) > 1e-3 or abs(tx) > 0.5 or abs(ty) > 0.5:
        # PIL wants the inverse map: output (x, y) -> input ((x - cx - tx) / s + cx, ...).
        coeffs = (1 / s, 0.0, cx - (cx + tx) / s, 0.0, 1 / s, cy - (cy + ty) / s)
        fill = tuple(int(v) for v in image.reshape(-1, 3).mean(0))
        image = np.asarray(
            Image.fromarray(image).transform(
                (w, h), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR, fillcolor=fill
            )
        )
        if len(boxes):
            boxes = boxes.copy()
            boxes[:, [0, 2]] = (boxes[:, [0, 2]] - cx) * s + cx + tx
            boxes[:, [1, 3]] = (boxes[:, [1, 3]] - cy) * s + cy + ty
            boxes = _keep_visible(boxes, 0, 0, w, h, cfg.min_visible)
    if rng.random() < cfg.hflip:
        image = image[:, ::-1]
        if len(boxes):
            boxes = boxes.copy()
            boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
    if rng.random() < cfg.vflip:
        image = image[::-1]
        if len(boxes):
            boxes = boxes.copy()
            boxes[:, [1, 3]] = h - boxes[:, [3, 1]]
    return np.ascontiguousarray(image), boxes


def photometric(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Contrast, brightness, gamma, colour cast, blur, noise and JPEG artefacts."""
    if rng.random() < cfg.blur_p:
        radius = float(rng.uniform(*cfg.blur_radius))
        image = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))
    x = image.astype(np.float32)
    mean = float(x.mean())
    x = (x - mean) * float(rng.uniform(*cfg.contrast)) + mean
    x += float(rng.uniform(-cfg.brightness, cfg.brightness))
    x = np.clip(x, 0.0, 255.0)
    x = 255.0 * (x / 255.0) ** float(rng.uniform(*cfg.gamma))
    if rng.random() < cfg.color_p:
        x *= rng.uniform(0.85, 1.15, size=3).astype(np.float32)
    sigma = float(rng.uniform(*cfg.noise))
    if sigma > 0:
        x += rng.standard_normal(x.shape[:2], dtype=np.float32)[:, :, None] * np.float32(sigma)
    out = np.clip(x + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < cfg.jpeg_p:
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=int(rng.integers(*cfg.jpeg_quality)))
        out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return out


def augment(
    image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig
) -> tuple[np.ndarray, np.ndarray]:
    image, boxes = geometric(image, boxes, rng, cfg)
    return photometric(image, rng, cfg), boxes
