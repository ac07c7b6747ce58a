"""The synthetic tag-scratch generator: determinism, labels that match the pixels, file output."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest

from edgekit.data import SyntheticTagScratches, load_dataset, render, write_dataset
from edgekit.data.groundtruth import CSV_COLUMNS
from edgekit.data.synthetic import HEIGHT, LABEL_MARGIN, VISIBLE_DELTA, WIDTH, render_scene
from edgekit.errors import DataError


def test_same_seed_and_index_give_identical_images() -> None:
    a, boxes_a = render(3, 7)
    b, boxes_b = render(3, 7)
    assert a.shape == (HEIGHT, WIDTH, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert boxes_a == boxes_b


def test_image_does_not_depend_on_what_was_rendered_before() -> None:
    data = SyntheticTagScratches(count=10, seed=3)
    for i in range(7):
        data[i]
    image, boxes = data[7]
    fresh, fresh_boxes = render(3, 7)
    assert np.array_equal(image, fresh) and boxes == fresh_boxes
    last, _ = data[-1]
    assert np.array_equal(last, render(3, 9)[0])


def test_different_seeds_and_indices_differ() -> None:
    base = render(0, 0)[0].astype(int)
    assert np.abs(base - render(1, 0)[0]).mean() > 2
    assert np.abs(base - render(0, 1)[0]).mean() > 2


def test_sequence_protocol() -> None:
    data = SyntheticTagScratches(count=3, seed=1)
    assert len(data) == 3
    assert len(list(data)) == 3
    with pytest.raises(IndexError):
        data[3]
    with pytest.raises(DataError):
        SyntheticTagScratches(count=-1)
    with pytest.raises(DataError):
        render(-1, 0)


def test_images_are_grey_like_the_photos() -> None:
    image, _ = render(5, 2)
    assert np.array_equal(image[..., 0], image[..., 1])
    assert np.array_equal(image[..., 0], image[..., 2])
    tag = image[80:220, 80:370, 0]
    # Real photos: dark grey tag (median 73..111) in front of a near-white backdrop.
    assert 60 < np.median(tag) < 125
    assert image[HEIGHT - 2, :8, 0].mean() > 200


@pytest.mark.parametrize("index", range(12))
def test_boxes_are_inside_the_image_and_tight_around_the_scratches(index: int) -> None:
    scene = render_scene(11, index)
    visible = scene.scratch_map >= VISIBLE_DELTA
    covered = np.zeros_like(visible)
    for box in scene.boxes:
        assert box.class_id == 0
        assert box.width > 0 and box.height > 0
        x0, y0, x1, y1 = (int(v) for v in box.xyxy())
        assert box.xyxy() == (x0, y0, x1, y1)
        assert 0 <= x0 < x1 <= WIDTH and 0 <= y0 < y1 <= HEIGHT
        covered[y0:y1, x0:x1] = True
        # Shrunk by the labelers' margin, every edge of the box touches the scratch.
        ix0 = x0 + (LABEL_MARGIN if x0 > 0 else 0)
        iy0 = y0 + (LABEL_MARGIN if y0 > 0 else 0)
        ix1 = x1 - (LABEL_MARGIN if x1 < WIDTH else 0)
        iy1 = y1 - (LABEL_MARGIN if y1 < HEIGHT else 0)
        inner = visible[iy0:iy1, ix0:ix1]
        assert inner[0].any() and inner[-1].any() and inner[:, 0].any() and inner[:, -1].any()
        # Nothing visible in the margin ring that this scratch would own alone.
        assert visible[y0:y1, x0:x1].sum() == inner.sum() or len(scene.boxes) > 1
    assert not (visible & ~covered).any(), "a visible scratch pixel lies outside every box"
    if scene.boxes:
        tag_level = np.median(scene.image[100:200, 100:350, 0])
        assert scene.image[visible, 0].mean() > tag_level + VISIBLE_DELTA


def test_scratch_count_distribution_has_empty_images() -> None:
    counts = [len(render(2, i)[1]) for i in range(60)]
    assert 0 in counts
    assert sum(c > 0 for c in counts) > 45
    assert max(counts) >= 3


def test_render_is_fast() -> None:
    render(0, 0)
    start = time.perf_counter()
    for i in range(20):
        render(0, i)
    per_image = (time.perf_counter() - start) / 20
    assert per_image < 0.05, f"{per_image * 1000:.1f} ms per image"


def test_write_dataset_roundtrip(tmp_path: Path) -> None:
    labels = write_dataset(tmp_path / "syn", count=4, seed=9)
    assert labels == tmp_path / "syn" / "labels.csv"
    with labels.open(newline="") as handle:
        header = next(csv.reader(handle))
    assert tuple(header) == CSV_COLUMNS
    dataset = load_dataset(tmp_path / "syn")
    assert len(dataset) == 4
    for i, sample in enumerate(dataset.samples):
        assert sample.image_path.is_file() and sample.image_path.suffix == ".jpg"
        assert (sample.width, sample.height) == (WIDTH, HEIGHT)
        assert list(sample.boxes) == render(9, i)[1]
        assert sample.source_ref.startswith("images/")


def test_write_dataset_png_is_lossless(tmp_path: Path) -> None:
    from edgekit.data import load_image

    write_dataset(tmp_path, count=1, seed=4, image_format="png")
    sample = load_dataset(tmp_path).samples[0]
    assert np.array_equal(load_image(sample.image_path), render(4, 0)[0])
    with pytest.raises(DataError, match="image_format"):
        write_dataset(tmp_path, count=1, seed=4, image_format="gif")


def test_synthetic_header_matches_real_export(tag_scratches: Path) -> None:
    with (tag_scratches / "labels.csv").open(newline="") as handle:
        assert tuple(next(csv.reader(handle))) == CSV_COLUMNS
