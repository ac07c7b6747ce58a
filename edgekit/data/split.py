"""Train/validation split that never separates crops of one photo.

The four crops of a photo show the same tag under the same light; a crop in
training and its neighbour in validation would make validation scores lie.
Whole groups (``Sample.group``) therefore go to one side.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from edgekit.data.types import Dataset, Sample
from edgekit.errors import DataError
from edgekit.spelling import parameter_text


def split_dataset(
    dataset: Dataset, val_fraction: float = 0.2, seed: int = 0
) -> tuple[Dataset, Dataset]:
    """Split into (train, val) by group, with about ``val_fraction`` of the *images* in val.

    Groups are shuffled with ``seed`` and taken into validation while that brings
    the image count closer to the target, so the result is deterministic and
    independent of the order of the label file. Both parts keep the original
    sample order.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(
            f"{parameter_text('val_fraction', val_fraction)}: must be at least 0 and below 1"
        )
    by_group: dict[str, list[Sample]] = defaultdict(list)
    for sample in dataset.samples:
        by_group[sample.group or str(sample.image_path)].append(sample)
    names = sorted(by_group)
    order = np.random.default_rng(seed).permutation(len(names))
    target = val_fraction * len(dataset.samples)
    val_groups: set[str] = set()
    taken = 0
    for i in order:
        name = names[int(i)]
        size = len(by_group[name])
        if abs(taken + size - target) < abs(taken - target):
            val_groups.add(name)
            taken += size
    if not val_groups and val_fraction > 0 and len(names) > 1:
        # Tiny data sets: one group in validation beats no validation at all.
        val_groups.add(names[int(order[0])])
    train = [s for s in dataset.samples if (s.group or str(s.image_path)) not in val_groups]
    val = [s for s in dataset.samples if (s.group or str(s.image_path)) in val_groups]
    return (
        Dataset(root=dataset.root, samples=train, labels=dict(dataset.labels)),
        Dataset(root=dataset.root, samples=val, labels=dict(dataset.labels)),
    )
