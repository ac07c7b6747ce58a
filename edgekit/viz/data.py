"""Turning what callers have (tables, dicts, Detection objects, paths) into what plots need."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import DataError
from edgekit.schemas import parse_timestamp


@dataclass(frozen=True)
class DrawBox:
    """One box to draw: pixels (left, top, width, height), with an optional label and score."""

    left: float
    top: float
    width: float
    height: float
    label: str = ""
    score: float | None = None


def as_results(results: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """A list of result messages from a ResultsTable, a LiveCollector snapshot or dicts."""
    return list(results)


def timestamp_of(result: Mapping[str, Any], index: int) -> datetime:

    value = result.get("timestamp")
    try:
        return parse_timestamp(str(value))
    except ValueError as exc:
        raise DataError(
            f"result #{index} ({result.get('image_name', '?')}): timestamp {value!r} is not "
            "ISO 8601 UTC with milliseconds and Z"
        ) from exc


def _box_values(box: Any) -> tuple[float, float, float, float]:
    if hasattr(box, "as_list"):
        box = box.as_list()
    values = [float(v) for v in box]
    if len(values) != 4:
        raise DataError(f"box {box!r} is not [left, top, width, height]")
    return values[0], values[1], values[2], values[3]


def draw_boxes(items: Any, *, default_label: str = "") -> list[DrawBox]:
    """Boxes from result detections (dicts), `Detection`/`Box` objects or plain 4-lists.

    A result message (a mapping with ``detections``) gives its detections.
    """
    if items is None:
        return []
    if isinstance(items, Mapping):
        items = items.get("detections", [])
    boxes: list[DrawBox] = []
    for item in items:
        if isinstance(item, Mapping):
            left, top, width, height = _box_values(item["box"])
            score = item.get("score")
            boxes.append(
                DrawBox(
                    left,
                    top,
                    width,
                    height,
                    str(item.get("label", default_label)),
                    None if score is None else float(score),
                )
            )
        elif hasattr(item, "box") and hasattr(item, "score"):  # edgekit.data.types.Detection
            left, top, width, height = _box_values(item.box)
            boxes.append(
                DrawBox(
                    left, top, width, height, str(getattr(item, "label", "")), float(item.score)
                )
            )
        else:  # a Box or [left, top, width, height]
            left, top, width, height = _box_values(item)
            boxes.append(DrawBox(left, top, width, height, default_label))
    return boxes


def load_image(image: Any) -> np.ndarray:
    """An HxW or HxWx3 array from a path, a PIL image or an array."""
    if isinstance(image, str | os.PathLike):
        from PIL import Image, UnidentifiedImageError

        path = Path(image)
        try:
            with Image.open(path) as img:
                return np.asarray(img.convert("RGB"))
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"cannot read image: {exc}", path=str(path)) from exc
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL.Image.Image
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise DataError(f"image array has shape {array.shape}; expected HxW or HxWx3")
    return array


def find_image(image_dir: str | os.PathLike[str] | None, image_name: str) -> Path | None:
    """``image_dir/image_name`` if it exists (also looked up by base name), else None."""
    if image_dir is None:
        return None
    root = Path(image_dir)
    for candidate in (root / image_name, root / Path(image_name).name):
        if candidate.is_file():
            return candidate
    return None


def first_key(row: Mapping[str, Any], keys: Sequence[str], what: str, index: int) -> Any:
    for key in keys:
        if key in row and row[key] is not None:
            return row[key]
    raise DataError(
        f"row #{index} has no {what}: expected one of {', '.join(keys)}; got keys "
        f"{', '.join(map(str, row)) or '(none)'}"
    )
