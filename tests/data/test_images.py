"""Image loading: orientation, modes, and skipping unreadable files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgekit.data import iter_images, load_image
from edgekit.errors import DataError


def _jpeg_bytes(size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = np.zeros((10, 20, 3), np.uint8)
    pixels[:3, :3] = (255, 0, 0)  # a red mark at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    image = load_image(path)
    assert image.shape == (20, 10, 3)
    assert image[1, -2, 0] > 200 and image[1, 1, 0] < 60  # the mark moved to the top-right


def test_grayscale_rgba_and_16_bit_become_rgb(tmp_path: Path) -> None:
    Image.fromarray(np.full((5, 6), 77, np.uint8)).save(tmp_path / "gray.png")
    gray = load_image(tmp_path / "gray.png")
    assert gray.shape == (5, 6, 3) and gray.dtype == np.uint8 and (gray == 77).all()

    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque red, bottom half transparent
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    image = load_image(tmp_path / "alpha.png")
    assert image.shape == (4, 4, 3)
    assert tuple(image[0, 0]) == (200, 0, 0) and tuple(image[3, 3]) == (255, 255, 255)

    deep = np.linspace(0, 65535, 12, dtype=np.uint16).reshape(3, 4)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    image = load_image(tmp_path / "deep.png")
    assert image.shape == (3, 4, 3) and image.max() == 255 and image.min() == 0


def test_load_image_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing.jpg"):
        load_image(tmp_path / "missing.jpg")
    (tmp_path / "notes.jpg").write_text("not an image")
    with pytest.raises(DataError, match="notes.jpg"):
        load_image(tmp_path / "notes.jpg")


def test_iter_images_skips_and_counts_unreadable_files(tmp_path: Path) -> None:
    good = _jpeg_bytes()
    (tmp_path / "b-good.jpg").write_bytes(good)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a-good.PNG")
    (tmp_path / "c-truncated.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "d-text.jpg").write_text("hello, I am not a JPEG\n")
    (tmp_path / "e-readme.txt").write_text("ignored: not an image suffix")
    (tmp_path / "f-dir.jpg").mkdir()

    scan = iter_images(tmp_path)
    skipped = scan.skipped  # taken before iterating, as a caller streaming results would
    seen = [(path.name, image.shape) for path, image in scan]
    assert seen == [("a-good.PNG", (8, 8, 3)), ("b-good.jpg", (30, 40, 3))]
    assert scan.loaded == 2 and scan.skipped_count == 2
    assert skipped is scan.skipped
    assert [p.name for p, _ in scan.skipped] == ["c-truncated.jpg", "d-text.jpg"]
    assert all(p.name in reason for p, reason in scan.skipped)
    assert "2 skipped" in scan.summary() and "d-text.jpg" in scan.summary()
    # A second pass rescans instead of accumulating.
    assert len(list(scan)) == 2 and scan.skipped_count == 2


def test_iter_images_needs_a_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="absent"):
        iter_images(tmp_path / "absent")


def test_real_photos_load(tag_scratches: Path) -> None:
    scan = iter_images(tag_scratches / "images")
    shapes = {image.shape for _path, image in scan}
    assert shapes == {(300, 450, 3)}
    assert scan.loaded == 152 and scan.skipped == []
