"""Labeled images: synthetic tag scratches, Ground Truth import, splits, image loading.

Owns: the data types (Box, Detection, Sample, Dataset), image loading, the
synthetic data generator, Ground Truth readers/writers and data set splits.

Must not import: any other edgekit package (it is the bottom layer with
edgekit.errors, edgekit.files and edgekit.progress). tqdm (edgekit.progress)
is imported only inside the functions that show progress: devices import
this package without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgekit.lazy import lazy_attributes

if TYPE_CHECKING:  # pragma: no cover
    from edgekit.data.groundtruth import (
        group_of,
        load_dataset,
        read_labels_csv,
        read_manifest,
        write_labels_csv,
    )
    from edgekit.data.images import ImageScan, iter_images, load_image
    from edgekit.data.split import split_dataset
    from edgekit.data.synthetic import SyntheticTagScratches, render, write_dataset
    from edgekit.data.types import Box, Dataset, Detection, Sample

# Loaded on first use: a device process that needs only the data types or image loading
# does not load the synthetic generator, Ground Truth readers or splits.
_LAZY = {
    "group_of": "edgekit.data.groundtruth",
    "load_dataset": "edgekit.data.groundtruth",
    "read_labels_csv": "edgekit.data.groundtruth",
    "read_manifest": "edgekit.data.groundtruth",
    "write_labels_csv": "edgekit.data.groundtruth",
    "ImageScan": "edgekit.data.images",
    "iter_images": "edgekit.data.images",
    "load_image": "edgekit.data.images",
    "split_dataset": "edgekit.data.split",
    "SyntheticTagScratches": "edgekit.data.synthetic",
    "render": "edgekit.data.synthetic",
    "write_dataset": "edgekit.data.synthetic",
    "Box": "edgekit.data.types",
    "Dataset": "edgekit.data.types",
    "Detection": "edgekit.data.types",
    "Sample": "edgekit.data.types",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "Box",
    "Dataset",
    "Detection",
    "ImageScan",
    "Sample",
    "SyntheticTagScratches",
    "group_of",
    "iter_images",
    "load_dataset",
    "load_image",
    "read_labels_csv",
    "read_manifest",
    "render",
    "split_dataset",
    "write_dataset",
    "write_labels_csv",
]
