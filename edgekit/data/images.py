"""Reading images the way a camera folder delivers them.

Cameras write EXIF orientation instead of rotating pixels, grayscale sensors
write 8- or 16-bit single-channel files, and exports sometimes carry alpha:
:func:`load_image` normalizes all of them to upright RGB uint8. A folder
being inspected may hold a half-written or foreign file; :func:`iter_images`
skips and counts those instead of stopping the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from edgekit.errors import DataError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # High bit depth grayscale: stretch to 8 bits instead of clipping at 255.
        arr = np.asarray(img, dtype=np.float64)
        hi = float(arr.max()) if arr.size else 0.0
        scale = 255.0 / hi if hi > 255 else 1.0
        img = Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8))
    if img.mode == "P" or img.mode == "LA" or img.mode == "PA":
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        # Transparent pixels have arbitrary colour; show them as a white backdrop.
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img.convert("RGB")


def load_image(path: str | Path) -> np.ndarray:
    """Read an image as upright HxWx3 RGB uint8, or raise DataError naming the file."""
    file = Path(path)
    try:
        with Image.open(file) as img:
            img.load()
            upright = ImageOps.exif_transpose(img)
            rgb = _to_rgb(upright)
            return np.asarray(rgb, dtype=np.uint8).copy()
    except FileNotFoundError as exc:
        raise DataError("image not found", path=str(file)) from exc
    except UnidentifiedImageError as exc:
        raise DataError(
            "not an image Pillow can read (jpg, png, bmp expected); replace or remove the file",
            path=str(file),
        ) from exc
    except Image.DecompressionBombError as exc:
        raise DataError(f"image too large to load safely: {exc}", path=str(file)) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(
            f"image is corrupt or truncated ({exc}); re-export or remove it", path=str(file)
        ) from exc


class ImageScan:
    """Iterate ``(path, image)`` over a folder's images, skipping unreadable ones.

    After (or during) iteration, ``skipped`` holds ``(path, reason)`` for each
    file that could not be read and ``loaded`` counts the good ones. The
    ``skipped`` list object stays the same, so a reference taken before the
    loop fills as it runs. Iterating again rescans the folder and resets both.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DataError("image folder does not exist or is not a folder", path=str(folder))
        self.skipped: list[tuple[Path, str]] = []
        self.loaded = 0

    def paths(self) -> list[Path]:
        """Image files in the folder (by suffix, case-insensitive), sorted by name."""
        return sorted(
            (
                p
                for p in self.folder.iterdir()
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            ),
            key=lambda p: p.name,
        )

    def __iter__(self) -> Iterator[tuple[Path, np.ndarray]]:
        # Clear in place: callers may hold ``scan.skipped`` from before iterating.
        self.skipped.clear()
        self.loaded = 0
        for path in self.paths():
            try:
                image = load_image(path)
            except DataError as exc:
                self.skipped.append((path, str(exc)))
                continue
            self.loaded += 1
            yield path, image

    @property
    def skipped_count(self) -> int:
        return len(self.skipped)

    def summary(self) -> str:
        """One line for logs: how many images were read and which were skipped."""
        text = f"{self.loaded} image(s) read from {self.folder}"
        if self.skipped:
            names = ", ".join(p.name for p, _ in self.skipped[:5])
            more = "" if len(self.skipped) <= 5 else f" and {len(self.skipped) - 5} more"
            text += f", {len(self.skipped)} skipped as unreadable ({names}{more})"
        return text


def iter_images(folder: str | Path) -> ImageScan:
    """Scan ``folder`` for jpg/jpeg/png/bmp images; see :class:`ImageScan`."""
    return ImageScan(folder)
