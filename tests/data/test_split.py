"""Group-wise train/validation split."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.data import load_dataset, split_dataset
from edgekit.data.types import Dataset, Sample
from edgekit.errors import DataError

CROPS = ("left-top", "left-bottom", "right-top", "right-bottom")


def _dataset(groups: int) -> Dataset:
    samples = [
        Sample(
            image_path=Path(f"images/photo-{g:03d}-cropped-{crop}.jpg"),
            width=450,
            height=300,
            boxes=(),
            group=f"photo-{g:03d}",
        )
        for g in range(groups)
        for crop in CROPS
    ]
    return Dataset(root=Path("."), samples=samples)


def _groups(data: Dataset) -> set[str]:
    return {s.group for s in data.samples}


def test_split_keeps_groups_together_and_covers_everything() -> None:
    data = _dataset(40)
    train, val = split_dataset(data, val_fraction=0.2, seed=1)
    assert not _groups(train) & _groups(val)
    assert len(train) + len(val) == len(data)
    assert sorted(map(str, (s.image_path for s in train.samples + val.samples))) == sorted(
        str(s.image_path) for s in data.samples
    )
    assert len(val) == 32  # 20% of 160 images = 8 whole groups
    # Original order is kept inside each part.
    order = [s.image_path for s in data.samples]
    assert [order.index(s.image_path) for s in val.samples] == sorted(
        order.index(s.image_path) for s in val.samples
    )


def test_split_is_deterministic_and_seeded() -> None:
    data = _dataset(30)
    a = split_dataset(data, seed=5)[1]
    b = split_dataset(data, seed=5)[1]
    assert a.samples == b.samples
    assert _groups(split_dataset(data, seed=6)[1]) != _groups(a)
    shuffled = Dataset(root=data.root, samples=list(reversed(data.samples)))
    assert _groups(split_dataset(shuffled, seed=5)[1]) == _groups(a)


def test_split_edge_cases() -> None:
    data = _dataset(2)
    train, val = split_dataset(data, val_fraction=0.1)
    assert len(val) == 4 and len(train) == 4
    train, val = split_dataset(data, val_fraction=0.0)
    assert len(val) == 0 and len(train) == 8
    with pytest.raises(DataError, match="val_fraction"):
        split_dataset(data, val_fraction=1.0)


def test_split_of_the_real_set(tag_scratches: Path) -> None:
    data = load_dataset(tag_scratches)
    train, val = split_dataset(data, val_fraction=0.2, seed=0)
    assert not _groups(train) & _groups(val)
    assert 0.17 <= len(val) / len(data) <= 0.23
    assert len(train) + len(val) == 152
