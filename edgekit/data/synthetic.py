"""Synthetic tag-scratch photos, rendered on the fly.

The real data set has only 152 labeled crops; a detector needs thousands of
varied examples. These images imitate the real ones (450x300, a dark grey
plastic tag with rounded corners and a punched hole in front of a white
backdrop and a grey holder, bright specular scratches, faint unlabeled
scuffs) so a model trained on them transfers to the photos.

Every image is a pure function of ``(seed, index)``: its random generator is
derived from ``numpy.random.SeedSequence([seed, index])``, so image 5000 is
the same bit for bit whether or not images 0..4999 were rendered before it,
and a training loop can render in any order or in worker processes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from edgekit.data.groundtruth import write_labels_csv
from edgekit.data.types import Box, Dataset, Sample
from edgekit.errors import DataError

WIDTH = 450
HEIGHT = 300

# Scratches per image. The real set has 2% without scratches and mostly 1-3;
# more empty images here teach the model that a clean tag is normal.
_COUNT_P = np.array([0.08, 0.22, 0.40, 0.20, 0.06, 0.03, 0.01])

# A scratch pixel belongs to its box when it is at least this many grey
# levels brighter than the tag surface under it (before camera blur/noise).
VISIBLE_DELTA = 40

# The labelers of the real set drew boxes about 4-5 px outside the visible
# scratch on every side (measured on labels.csv); the synthetic labels follow
# the same convention so a model trained here scores fairly on real labels.
LABEL_MARGIN = 4


@dataclass(frozen=True)
class Rendered:
    """One rendered image with its labels and the scratch-only brightness map."""

    image: np.ndarray  # HxWx3 uint8
    boxes: list[Box]
    scratch_map: np.ndarray  # HxW float32, grey levels each labeled scratch adds


def _rng(seed: int, index: int) -> np.random.Generator:
    if seed < 0 or index < 0:
        raise DataError(f"seed and index must be >= 0, got seed={seed} index={index}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, index])))


def _smooth_field(rng: np.random.Generator, cells: tuple[int, int], scale: float) -> np.ndarray:
    """Low-frequency random field (uneven lighting, smudges) by upsampling a coarse grid."""
    grid = rng.normal(0.0, scale, size=cells).astype(np.float32)
    img = Image.fromarray(grid).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.float32)


def _backdrop(rng: np.random.Generator, tag: tuple[int, int, int, int]) -> np.ndarray:
    """White backdrop with the grey holder clamp above and the rail below the tag."""
    x0, y0, x1, y1 = tag
    bg = np.full((HEIGHT, WIDTH), rng.uniform(242, 255), dtype=np.float32)
    bg += _smooth_field(rng, (3, 4), 4.0)
    # Holder clamp above the tag: a mid-grey block, sometimes with a dark seam.
    hx = int(rng.uniform(120, 180))
    hw = int(rng.uniform(140, 200))
    bg[: y0 + 4, hx : hx + hw] = rng.uniform(120, 200)
    if rng.random() < 0.5:
        sx = hx + int(rng.uniform(10, hw - 10))
        bg[: y0 + 4, sx : sx + 2] -= rng.uniform(30, 70)
    if rng.random() < 0.4:  # another grey object in a top corner
        cx = int(rng.uniform(300, 380))
        bg[: int(rng.uniform(5, y0)), cx:] = rng.uniform(200, 235)
    # Rail below the tag: grey bands and a thin line running left.
    rx = int(rng.uniform(120, 170))
    rw = int(rng.uniform(150, 200))
    band_top = y1 + int(rng.uniform(2, 6))
    for k, top in enumerate(range(band_top, HEIGHT, int(rng.uniform(3, 6)))):
        bg[top : top + 3, rx : rx + rw] = rng.uniform(150, 210) if k % 2 == 0 else 240
    line_y = band_top + int(rng.uniform(0, 8))
    bg[line_y : line_y + 1, max(0, rx - int(rng.uniform(20, 90))) : rx] = rng.uniform(150, 200)
    return bg


def _tag_mask(tag: tuple[int, int, int, int], radius: int) -> np.ndarray:
    # No anti-aliasing needed: the camera blur at the end softens the edge.
    mask = Image.new("L", (WIDTH, HEIGHT), 0)
    ImageDraw.Draw(mask).rounded_rectangle(tag, radius=radius, fill=255)
    return np.asarray(mask, dtype=np.float32) * np.float32(1 / 255)


def _tag_surface(rng: np.random.Generator, tag: tuple[int, int, int, int]) -> np.ndarray:
    """Grey plastic: base level, lighting gradient, smudges and the shadow along the left edge."""
    x0, y0, x1, y1 = tag
    level = rng.uniform(72, 112)
    xx = np.arange(WIDTH, dtype=np.float32)[None, :]
    yy = np.arange(HEIGHT, dtype=np.float32)[:, None]
    gx, gy = rng.normal(0, 12), rng.normal(0, 6)
    surface = level + gx * (xx / WIDTH - 0.5) + gy * (yy / HEIGHT - 0.5)
    surface = surface + _smooth_field(rng, (4, 6), rng.uniform(0.5, 2.5))
    surface += _smooth_field(rng, (30, 45), rng.uniform(0.3, 1.2))
    if rng.random() < 0.75:  # the dark band seen along the left edge of most photos
        band = rng.uniform(10, 24)
        depth = rng.uniform(12, 35)
        dist = xx - x0
        surface -= depth * np.clip(1.0 - (dist - band) / 12.0, 0.0, 1.0) * (dist > -2)
    return surface.astype(np.float32)


def _bezier(
    rng: np.random.Generator, start: np.ndarray, end: np.ndarray, bend: float
) -> np.ndarray:
    """Cubic Bezier points from start to end; control points leave the chord by ``bend``."""
    chord = end - start
    length = float(np.hypot(*chord))
    normal = np.array([-chord[1], chord[0]]) / max(length, 1e-6)
    c1 = start + chord / 3 + normal * rng.normal(0, bend) * length
    c2 = start + 2 * chord / 3 + normal * rng.normal(0, bend) * length
    n = max(8, int(length / 2.5))
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 3 * start + 3 * (1 - t) ** 2 * t * c1 + 3 * (1 - t) * t**2 * c2 + t**3 * end


def _profile(rng: np.random.Generator, n: int, peak: float, beaded: bool) -> np.ndarray:
    """Brightness along a scratch: tapered ends, slow variation, optional beads."""
    t = np.linspace(0.0, 1.0, n)
    taper = np.clip(np.minimum(t, 1 - t) / rng.uniform(0.03, 0.15), 0.0, 1.0) ** 0.7
    slow = np.interp(t, np.linspace(0, 1, 5), rng.uniform(0.7, 1.0, 5))
    profile = peak * taper * slow
    if beaded:
        profile *= rng.uniform(0.35, 1.0, n) ** 1.5
    return profile


def _draw_curve(
    points: np.ndarray, values: np.ndarray, width: int
) -> tuple[Image.Image, tuple[int, int]] | None:
    """Draw a polyline with per-segment brightness into a small canvas around it."""
    lo = np.floor(points.min(0)).astype(int) - width - 3
    hi = np.ceil(points.max(0)).astype(int) + width + 4
    canvas = Image.new("L", (int(hi[0] - lo[0]), int(hi[1] - lo[1])), 0)
    draw = ImageDraw.Draw(canvas)
    local = points - lo
    for k in range(len(local) - 1):
        v = int(round((values[k] + values[k + 1]) / 2))
        if v <= 0:
            continue
        draw.line(
            [(local[k, 0], local[k, 1]), (local[k + 1, 0], local[k + 1, 1])], fill=v, width=width
        )
    return canvas, (int(lo[0]), int(lo[1]))


def _paste_add(dst: np.ndarray, src: np.ndarray, origin: tuple[int, int], sign: float) -> None:
    """Add ``src`` into ``dst`` at ``origin`` (x, y), clipped to the image."""
    ox, oy = origin
    x0, y0 = max(ox, 0), max(oy, 0)
    x1, y1 = min(ox + src.shape[1], WIDTH), min(oy + src.shape[0], HEIGHT)
    if x1 <= x0 or y1 <= y0:
        return
    dst[y0:y1, x0:x1] += sign * src[y0 - oy : y1 - oy, x0 - ox : x1 - ox]


def _window(arr: np.ndarray, origin: tuple[int, int], shape: tuple[int, ...]) -> np.ndarray:
    """The ``shape`` region of ``arr`` at ``origin`` (x, y), zero where it leaves the image."""
    out = np.zeros(shape[:2], dtype=arr.dtype)
    ox, oy = origin
    x0, y0 = max(ox, 0), max(oy, 0)
    x1, y1 = min(ox + shape[1], WIDTH), min(oy + shape[0], HEIGHT)
    if x1 > x0 and y1 > y0:
        out[y0 - oy : y1 - oy, x0 - ox : x1 - ox] = arr[y0:y1, x0:x1]
    return out


def _random_chord(
    rng: np.random.Generator, inner: tuple[float, float, float, float], length: float
) -> tuple[np.ndarray, np.ndarray]:
    x0, y0, x1, y1 = inner
    angle = rng.uniform(0, math.pi)
    d = np.array([math.cos(angle), math.sin(angle)]) * length
    d = np.clip(d, [-(x1 - x0), -(y1 - y0)], [x1 - x0, y1 - y0])
    lo = np.array([x0, y0]) - np.minimum(d, 0)
    hi = np.array([x1, y1]) - np.maximum(d, 0)
    start = rng.uniform(lo, np.maximum(hi, lo + 1))
    return start, start + d


def _scratches(
    rng: np.random.Generator, inner: tuple[float, float, float, float], mask: np.ndarray
) -> tuple[np.ndarray, list[Box]]:
    """Labeled scratches: bright, 1-4 px wide, mostly straight, sometimes curved or beaded."""
    layer = np.zeros((HEIGHT, WIDTH), dtype=np.float32)
    boxes: list[Box] = []
    count = int(rng.choice(len(_COUNT_P), p=_COUNT_P))
    for _ in range(count):
        length = float(np.clip(rng.lognormal(math.log(120), 0.5), 22, 300))
        start, end = _random_chord(rng, inner, length)
        bend = 0.015 if rng.random() < 0.75 else rng.uniform(0.04, 0.14)
        points = _bezier(rng, start, end, bend)
        width = int(rng.choice([1, 2, 2, 3, 3, 4]))
        peak = rng.uniform(140, 200) if width > 1 else rng.uniform(170, 240)
        values = _profile(rng, len(points), peak, beaded=rng.random() < 0.55)
        canvas, origin = _draw_curve(points, values, width)
        blurred = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.7)))
        local = np.asarray(blurred, dtype=np.float32)
        # Fix the brightest point after blur: thin lines would otherwise fade to scuffs.
        local *= np.float32(rng.uniform(120, 200) / max(float(local.max()), 1.0))
        local *= _window(mask, origin, local.shape)  # the hole hides what crosses it
        visible = np.argwhere(local >= VISIBLE_DELTA)
        if len(visible) == 0:
            continue
        (ty, tx), (by, bx) = visible.min(0), visible.max(0)
        m = LABEL_MARGIN
        left, top = max(origin[0] + int(tx) - m, 0), max(origin[1] + int(ty) - m, 0)
        right = min(origin[0] + int(bx) + 1 + m, WIDTH)
        bottom = min(origin[1] + int(by) + 1 + m, HEIGHT)
        _paste_add(layer, local, origin, 1.0)
        boxes.append(Box(float(left), float(top), float(right - left), float(bottom - top), 0))
    return layer, boxes


def _scuffs(rng: np.random.Generator, inner: tuple[float, float, float, float]) -> np.ndarray:
    """Unlabeled wear: faint light hairlines, faint dark grooves, dust specks.

    The real photos are full of these and the labelers ignored them; a model
    must learn that only bright scratches count.
    """
    layer = np.zeros((HEIGHT, WIDTH), dtype=np.float32)
    for _ in range(int(rng.integers(2, 12))):
        dark = rng.random() < 0.3
        length = float(np.clip(rng.lognormal(math.log(60 if not dark else 140), 0.6), 8, 380))
        start, end = _random_chord(rng, inner, length)
        points = _bezier(rng, start, end, rng.uniform(0.0, 0.2))
        peak = rng.uniform(6, 24) if not dark else rng.uniform(8, 22)
        values = _profile(rng, len(points), peak, beaded=rng.random() < 0.5)
        canvas, origin = _draw_curve(points, values, int(rng.choice([1, 1, 2])))
        _paste_add(layer, np.asarray(canvas, dtype=np.float32), origin, -1.0 if dark else 1.0)
    x0, y0, x1, y1 = (int(v) for v in inner)
    n = int(rng.integers(0, 60))
    ys = rng.integers(y0, y1, n)
    xs = rng.integers(x0, x1, n)
    layer[ys, xs] += rng.uniform(8, 35, n).astype(np.float32)
    return layer


def render_scene(seed: int, index: int) -> Rendered:
    """Render image ``index`` of the synthetic set ``seed`` with its scratch map."""
    rng = _rng(seed, index)
    tag = (
        int(rng.uniform(16, 42)),
        int(rng.uniform(20, 40)),
        int(rng.uniform(421, 444)),
        int(rng.uniform(270, 290)),
    )
    x0, y0, x1, y1 = tag
    mask = _tag_mask(tag, radius=int(rng.uniform(5, 12)))
    if rng.random() < 0.3:
        # Some photos show the clamp below and the rail above the tag.
        backdrop = _backdrop(rng, (x0, HEIGHT - y1, x1, HEIGHT - y0))[::-1]
    else:
        backdrop = _backdrop(rng, tag)
    image = backdrop * (1 - mask) + _tag_surface(rng, tag) * mask

    # The punched hole shows the white backdrop; the tag is sometimes mounted rotated.
    r = rng.uniform(7, 11)
    if rng.random() < 0.85:
        cx, cy = x0 + rng.uniform(18, 30), y0 + rng.uniform(16, 26)
    else:
        cx, cy = x1 - rng.uniform(18, 30), y1 - rng.uniform(16, 26)
    hx, hy = int(cx - r) - 2, int(cy - r) - 2
    size = int(2 * r) + 5
    hole = Image.new("L", (size, size), 0)
    ImageDraw.Draw(hole).ellipse((cx - r - hx, cy - r - hy, cx + r - hx, cy + r - hy), fill=255)
    hole_a = np.asarray(hole, dtype=np.float32) * np.float32(1 / 255)
    patch = image[hy : hy + size, hx : hx + size]
    image[hy : hy + size, hx : hx + size] = patch * (1 - hole_a) + rng.uniform(235, 255) * hole_a
    mask[hy : hy + size, hx : hx + size] *= 1 - hole_a

    inner = (x0 + 8.0, y0 + 8.0, x1 - 8.0, y1 - 8.0)
    scuffs = _scuffs(rng, inner)
    scratch_map, boxes = _scratches(rng, inner, mask)
    image += scuffs * mask + scratch_map

    # Camera: grain that the optics and demosaicing smear over neighbouring
    # pixels, slight defocus, then a little white read noise. The photos are
    # grey, stored as RGB.
    noise = rng.standard_normal((HEIGHT, WIDTH), dtype=np.float32)
    image += noise * np.float32(rng.uniform(3.0, 6.0))
    pil = Image.fromarray(np.clip(image + 0.5, 0, 255).astype(np.uint8))
    pil = pil.filter(ImageFilter.GaussianBlur(rng.uniform(0.45, 0.75)))
    gray = np.asarray(pil, dtype=np.float32)
    gray += noise[::-1, ::-1] * np.float32(rng.uniform(0.5, 1.5))
    gray8 = np.clip(gray + 0.5, 0, 255).astype(np.uint8)
    rgb = np.repeat(gray8[:, :, None], 3, axis=2)
    return Rendered(image=rgb, boxes=boxes, scratch_map=scratch_map)


def render(seed: int, index: int) -> tuple[np.ndarray, list[Box]]:
    """Image ``index`` of synthetic set ``seed``: (300x450x3 uint8 RGB, Ground Truth boxes)."""
    scene = render_scene(seed, index)
    return scene.image, scene.boxes


class SyntheticTagScratches:
    """A fixed-size, indexable synthetic data set; images are rendered when asked for."""

    def __init__(self, count: int, seed: int = 0) -> None:
        if count < 0:
            raise DataError(f"count must be >= 0, got {count}")
        self.count = int(count)
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[np.ndarray, list[Box]]:
        if index < 0:
            index += self.count
        if not 0 <= index < self.count:
            raise IndexError(f"index {index} out of range for {self.count} synthetic images")
        return render(self.seed, index)

    def __iter__(self) -> Iterator[tuple[np.ndarray, list[Box]]]:
        for i in range(self.count):
            yield self[i]

    def __repr__(self) -> str:
        return f"SyntheticTagScratches(count={self.count}, seed={self.seed})"


def write_dataset(
    out_dir: str | Path, count: int, seed: int = 0, *, image_format: str = "jpg"
) -> Path:
    """Render ``count`` images into ``out_dir/images`` with a Ground Truth ``labels.csv``.

    The CSV has the same columns and annotation literal as the real export, so
    :func:`edgekit.data.load_dataset` reads both alike. Returns the CSV path.
    """
    from edgekit.progress import progress

    if count < 0:
        raise DataError(f"count must be >= 0, got {count}")
    fmt = image_format.lower().lstrip(".")
    if fmt not in {"jpg", "jpeg", "png"}:
        raise DataError(f"image_format must be jpg or png, got {image_format!r}")
    out = Path(out_dir)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    samples: list[Sample] = []
    for i in progress(range(count), desc="synthetic images", unit="img"):
        image, boxes = render(seed, i)
        name = f"synthetic-{seed}-{i:06d}.{fmt}"
        pil = Image.fromarray(image)
        if fmt == "png":
            pil.save(images / name)
        else:
            pil.save(images / name, quality=90)
        samples.append(
            Sample(
                image_path=images / name,
                width=WIDTH,
                height=HEIGHT,
                boxes=tuple(boxes),
                group=f"synthetic-{seed}-{i:06d}",
                source_ref=f"images/{name}",
            )
        )
    labels = out / "labels.csv"
    write_labels_csv(
        Dataset(root=out, samples=samples), labels, labeling_job=f"synthetic/seed-{seed}"
    )
    return labels
