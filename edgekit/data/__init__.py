"""Labeled images: synthetic tag scratches, Ground Truth import, splits, image loading."""

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
