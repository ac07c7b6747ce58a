"""Image sets used while compiling: calibration images and golden (parity) images.

Both accept the same sources: a Ground Truth data set (folder with
``labels.csv`` or a ``*.manifest``, or the label file itself), a plain folder
of images, or None for synthetic tag-scratch images.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.data.groundtruth import load_dataset
from edgekit.data.images import iter_images, load_image
from edgekit.data.synthetic import SyntheticTagScratches
from edgekit.data.types import Box
from edgekit.errors import CompileError
from edgekit.model.metadata import Preprocessing
from edgekit.model.postprocess import preprocess

LABEL_PATTERNS = ("labels.csv", "*.manifest", "*.jsonl", "*.csv")


@dataclass(frozen=True)
class LabeledImage:
    """One image with its ground-truth boxes, or ``boxes=None`` when it has no labels."""

    name: str
    image: np.ndarray
    boxes: tuple[Box, ...] | None


def is_labeled_dataset(path: Path) -> bool:
    """True for a Ground Truth label file or a folder holding one."""
    if path.is_file():
        return True
    return any(any(path.glob(pattern)) for pattern in LABEL_PATTERNS)


def iter_source(source: Path | None, *, count: int, seed: int) -> Iterator[LabeledImage]:
    """Images from ``source`` (all of them, or the first ``count`` for synthetic ones)."""
    if source is None:
        synthetic = SyntheticTagScratches(count, seed=seed)
        for index in range(count):
            image, boxes = synthetic[index]
            yield LabeledImage(f"synthetic-{seed}-{index:05d}", image, tuple(boxes))
        return
    source = Path(source).expanduser()
    if not source.exists():
        raise CompileError(f"{source}: image folder or data set not found")
    if is_labeled_dataset(source):
        dataset = load_dataset(source)
        if not dataset.samples:
            raise CompileError(f"{source}: the data set has no labeled images")
        for sample in dataset.samples:
            image = np.asarray(load_image(sample.image_path))
            yield LabeledImage(sample.image_path.name, image, tuple(sample.boxes))
        return
    found = False
    for path, image in iter_images(source):
        found = True
        yield LabeledImage(Path(path).name, np.asarray(image), None)
    if not found:
        raise CompileError(
            f"{source}: no readable images (.jpg, .png, ...) in this folder; give a folder "
            "of images or a Ground Truth data set"
        )


def describe_source(source: Path | None, *, count: int, seed: int) -> str:
    if source is None:
        return f"synthetic tag scratches ({count} images, seed {seed})"
    source = Path(source)
    kind = "Ground Truth data set" if is_labeled_dataset(source) else "image folder"
    return f"{kind} {source}"


class CalibrationImages:
    """Preprocessed calibration tensors for ONNX Runtime's static quantization.

    Implements the ``CalibrationDataReader`` protocol (``get_next`` returns an
    input feed or None at the end; ``rewind`` starts over) without importing
    onnxruntime here. Tensors are computed once and kept: calibration reads
    them more than once for some methods.
    """

    def __init__(
        self, source: Path | None, *, preprocessing: Preprocessing, count: int, seed: int
    ) -> None:
        self.input_name = preprocessing.input_name
        self.description = describe_source(source, count=count, seed=seed)
        # For a folder or data set, ``count`` caps how many images are used (the first ones).
        images = itertools.islice(iter_source(source, count=count, seed=seed), count)
        self.tensors = [preprocess(item.image, preprocessing) for item in images]
        if not self.tensors:
            raise CompileError(f"calibration set {self.description} is empty")
        self._start = 0
        self._end = len(self.tensors)
        self._position = 0

    def __len__(self) -> int:
        return len(self.tensors)

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._position >= self._end:
            return None
        tensor = self.tensors[self._position]
        self._position += 1
        return {self.input_name: tensor}

    def rewind(self) -> None:
        self._position = self._start

    def set_range(self, start_index: int, end_index: int) -> None:
        """Restrict to a slice; ONNX Runtime's strided MinMax calibration calls this."""
        self._start = max(0, start_index)
        self._end = min(len(self.tensors), end_index)
        self._position = self._start
