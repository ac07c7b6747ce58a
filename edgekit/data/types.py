"""Value types shared by data readers, the model and evaluation.

Boxes are always in pixels of the original image, in the Ground Truth
convention ``(left, top, width, height)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Box:
    left: float
    top: float
    width: float
    height: float
    class_id: int = 0

    def as_list(self) -> list[float]:
        return [self.left, self.top, self.width, self.height]

    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.left, self.top, self.left + self.width, self.top + self.height)


@dataclass(frozen=True)
class Sample:
    """One labeled image. ``group`` keeps crops of one photo in the same split."""

    image_path: Path
    width: int
    height: int
    boxes: tuple[Box, ...]
    group: str
    source_ref: str = ""


@dataclass(frozen=True)
class Detection:
    box: Box
    score: float
    label: str = "scratch"

    def to_json(self) -> dict[str, Any]:
        return {
            "class_id": self.box.class_id,
            "label": self.label,
            "score": round(float(self.score), 4),
            "box": [round(float(v), 1) for v in self.box.as_list()],
        }


@dataclass
class Dataset:
    """Samples plus the label map read alongside them."""

    root: Path
    samples: list[Sample]
    labels: dict[int, str] = field(default_factory=lambda: {0: "scratch"})

    def __len__(self) -> int:
        return len(self.samples)
