"""Labeled images: synthetic tag scratches, Ground Truth import, splits, image loading.

Owns: the data types (Box, Detection, Sample, Dataset), image loading, the
synthetic data generator, Ground Truth readers/writers and data set splits.

Must not import: any other edgekit package (it is the bottom layer with
edgekit.errors, edgekit.files and edgekit.progress). tqdm (edgekit.progress)
is imported only inside the functions that show progress: devices import
this package without it.
"""

from __future__ import annotations

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
