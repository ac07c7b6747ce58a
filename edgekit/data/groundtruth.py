"""Read and write SageMaker Ground Truth bounding-box labels.

Two formats arrive from labeling jobs:

- the CSV export (``labels.csv``) with columns ``source_ref, image_width,
  image_height, image_depth, annotations, event_time, labeling_job, status``,
  where ``annotations`` is a *Python literal* list of dicts (single quotes), so
  it is parsed with :func:`ast.literal_eval`, never ``eval``;
- the output manifest (JSON Lines): ``source-ref`` plus a label attribute named
  after the job, holding ``image_size`` and ``annotations``, and a
  ``<label>-metadata`` object whose ``class-map`` names the classes.

Every problem is reported as a :class:`~edgekit.errors.DataError` naming the
file and the 1-based line (the CSV header is line 1), so a user can open the
file at that line and fix it.
"""

from __future__ import annotations

import ast
import csv
import json
import math
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from edgekit.data.types import Box, Dataset, Sample
from edgekit.errors import DataError

CSV_COLUMNS = (
    "source_ref",
    "image_width",
    "image_height",
    "image_depth",
    "annotations",
    "event_time",
    "labeling_job",
    "status",
)
# Columns the reader cannot do without; the others are carried through when present.
REQUIRED_CSV_COLUMNS = ("source_ref", "image_width", "image_height", "annotations")
BOX_KEYS = ("class_id", "top", "left", "height", "width")
MANIFEST_SUFFIXES = (".manifest", ".jsonl")

_CROP_SUFFIX = re.compile(r"-cropped-.*$")


def group_of(name: str) -> str:
    """The photo a crop came from: ``image-...-26-cropped-left-top.jpg`` -> ``image-...-26``.

    Crops of one photo share scratches and lighting; keeping them in the same
    split stops validation from leaking training data.
    """
    stem = Path(name.split("?", 1)[0]).stem
    return _CROP_SUFFIX.sub("", stem)


def resolve_image(root: Path, ref: str) -> Path:
    """Where ``ref`` (relative path, absolute path or ``s3://`` URI) lives on disk.

    An S3 URI cannot be read offline; the convention is that the images were
    downloaded next to the label file, into ``images/<basename>`` (or the
    folder itself).
    """
    if ref.startswith("s3://"):
        name = ref.rstrip("/").rsplit("/", 1)[-1]
        for candidate in (root / "images" / name, root / name):
            if candidate.is_file():
                return candidate
        return root / "images" / name
    path = Path(ref)
    return path if path.is_absolute() else root / path


def _number(value: Any, what: str, path: Path, line: int) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DataError(
            f"{what} must be a number, got {value!r}; fix or remove this annotation",
            path=str(path),
            line=line,
        )
    return float(value)


def parse_boxes(items: Any, *, width: int, height: int, path: Path, line: int) -> tuple[Box, ...]:
    """Validate a list of Ground Truth annotation dicts and turn them into boxes."""
    if not isinstance(items, list):
        raise DataError(
            f"annotations must be a list of boxes, got {type(items).__name__}",
            path=str(path),
            line=line,
        )
    boxes: list[Box] = []
    for k, item in enumerate(items, start=1):
        if not isinstance(item, Mapping):
            raise DataError(
                f"annotation {k} must be a dict with {', '.join(BOX_KEYS)}, got {item!r}",
                path=str(path),
                line=line,
            )
        missing = [key for key in BOX_KEYS if key not in item]
        if missing:
            raise DataError(
                f"annotation {k} lacks {', '.join(missing)}; every box needs {', '.join(BOX_KEYS)}",
                path=str(path),
                line=line,
            )
        left, top, w, h = (
            _number(item[key], f"annotation {k} {key}", path, line)
            for key in ("left", "top", "width", "height")
        )
        class_id = _number(item["class_id"], f"annotation {k} class_id", path, line)
        if w <= 0 or h <= 0:
            raise DataError(
                f"annotation {k} has a zero or negative size (width={w:g}, height={h:g}); "
                "redraw or delete the box",
                path=str(path),
                line=line,
            )
        if left < 0 or top < 0 or left + w > width + 1 or top + h > height + 1:
            raise DataError(
                f"annotation {k} (left={left:g}, top={top:g}, width={w:g}, height={h:g}) lies "
                f"outside the {width}x{height} image; redraw the box inside the image",
                path=str(path),
                line=line,
            )
        if class_id < 0 or class_id != int(class_id):
            raise DataError(
                f"annotation {k} class_id must be a non-negative integer, got {class_id:g}",
                path=str(path),
                line=line,
            )
        boxes.append(Box(left, top, w, h, int(class_id)))
    return tuple(boxes)


def _image_size(value: Any, what: str, path: Path, line: int) -> int:
    try:
        size = int(str(value).strip())
    except (TypeError, ValueError):
        size = 0
    if size <= 0:
        raise DataError(
            f"{what} must be a positive integer, got {value!r}", path=str(path), line=line
        )
    return size


def _existing_image(root: Path, ref: str, path: Path, line: int) -> Path:
    if not ref:
        raise DataError("source_ref is empty; give the image path", path=str(path), line=line)
    image = resolve_image(root, ref)
    if not image.is_file():
        raise DataError(
            f"image {ref!r} not found at {image}; copy the image there or remove this line",
            path=str(path),
            line=line,
        )
    return image


def _sample(
    root: Path, ref: str, boxes: tuple[Box, ...], width: int, height: int, path: Path, line: int
) -> Sample:
    """A labeled image from either reader, its file checked to exist."""
    return Sample(
        image_path=_existing_image(root, ref, path, line),
        width=width,
        height=height,
        boxes=boxes,
        group=group_of(ref),
        source_ref=ref,
    )


def read_labels_csv(path: str | Path) -> Dataset:
    """Read a Ground Truth CSV export; image paths are relative to the CSV's folder."""
    csv_path = Path(path)
    root = csv_path.parent
    try:
        handle = csv_path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(f"cannot open label file: {exc.strerror}", path=str(csv_path)) from exc
    samples: list[Sample] = []
    with handle:
        reader = csv.DictReader(handle)
        try:
            header = reader.fieldnames
        except csv.Error as exc:
            raise DataError(f"not a CSV file: {exc}", path=str(csv_path), line=1) from exc
        if not header:
            raise DataError(
                f"file is empty; expected a header with {', '.join(CSV_COLUMNS)}",
                path=str(csv_path),
                line=1,
            )
        missing = [c for c in REQUIRED_CSV_COLUMNS if c not in header]
        if missing:
            raise DataError(
                f"missing column(s) {', '.join(missing)}; a Ground Truth CSV has the columns "
                f"{', '.join(CSV_COLUMNS)}",
                path=str(csv_path),
                line=1,
            )
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise DataError(
                    f"malformed CSV row: {exc}", path=str(csv_path), line=reader.line_num
                ) from exc
            line = reader.line_num
            if None in row or any(row.get(c) is None for c in REQUIRED_CSV_COLUMNS):
                raise DataError(
                    f"row has {len(header) + len(row.get(None) or [])} fields where the header "
                    f"has {len(header)}; quote the annotations column",
                    path=str(csv_path),
                    line=line,
                )
            width = _image_size(row["image_width"], "image_width", csv_path, line)
            height = _image_size(row["image_height"], "image_height", csv_path, line)
            text = row["annotations"].strip() or "[]"
            try:
                items = ast.literal_eval(text)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
                raise DataError(
                    f"annotations is not a Python-literal list of boxes ({type(exc).__name__}): "
                    f"{text[:80]!r}; write it like [{{'class_id': 0, 'top': 1, 'left': 2, "
                    "'height': 3, 'width': 4}]",
                    path=str(csv_path),
                    line=line,
                ) from exc
            boxes = parse_boxes(items, width=width, height=height, path=csv_path, line=line)
            ref = row["source_ref"].strip()
            samples.append(_sample(root, ref, boxes, width, height, csv_path, line))
    return Dataset(root=root, samples=samples)


def _label_attribute(record: Mapping[str, Any], path: Path, line: int, wanted: str | None) -> str:
    if wanted is not None:
        if wanted not in record:
            raise DataError(
                f"label attribute {wanted!r} not in this line (keys: {', '.join(record)})",
                path=str(path),
                line=line,
            )
        return wanted
    candidates = [
        key
        for key, value in record.items()
        if key != "source-ref"
        and not key.endswith("-metadata")
        and isinstance(value, Mapping)
        and "annotations" in value
    ]
    if len(candidates) != 1:
        found = ", ".join(candidates) or "none"
        raise DataError(
            "cannot tell which attribute holds the bounding boxes (candidates: "
            f"{found}); pass label_attribute= the LabelAttributeName of the labeling job",
            path=str(path),
            line=line,
        )
    return candidates[0]


def read_manifest(path: str | Path, *, label_attribute: str | None = None) -> Dataset:
    """Read a Ground Truth bounding-box output manifest (JSON Lines)."""
    manifest = Path(path)
    root = manifest.parent
    try:
        lines = manifest.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise DataError(f"cannot open manifest: {exc.strerror}", path=str(manifest)) from exc
    except UnicodeDecodeError as exc:
        raise DataError("manifest is not UTF-8 text", path=str(manifest)) from exc
    samples: list[Sample] = []
    labels: dict[int, str] = {}
    for line, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"not valid JSON ({exc.msg} at column {exc.colno}); each line of a manifest "
                "is one JSON object",
                path=str(manifest),
                line=line,
            ) from exc
        if not isinstance(record, dict):
            raise DataError(
                "each manifest line must be a JSON object", path=str(manifest), line=line
            )
        ref = record.get("source-ref")
        if not isinstance(ref, str):
            raise DataError(
                "missing 'source-ref' (the image's S3 URI or path)", path=str(manifest), line=line
            )
        attr = _label_attribute(record, manifest, line, label_attribute)
        label = record[attr]
        if not isinstance(label, Mapping):
            raise DataError(
                f"{attr!r} must be an object with image_size and annotations",
                path=str(manifest),
                line=line,
            )
        sizes = label.get("image_size")
        if not isinstance(sizes, list) or not sizes or not isinstance(sizes[0], Mapping):
            raise DataError(
                f"{attr}.image_size must be a list like [{{'width': 450, 'height': 300, "
                "'depth': 3}]",
                path=str(manifest),
                line=line,
            )
        width = _image_size(sizes[0].get("width"), f"{attr}.image_size width", manifest, line)
        height = _image_size(sizes[0].get("height"), f"{attr}.image_size height", manifest, line)
        boxes = parse_boxes(
            label.get("annotations"), width=width, height=height, path=manifest, line=line
        )
        meta = record.get(f"{attr}-metadata")
        class_map = meta.get("class-map") if isinstance(meta, Mapping) else None
        if isinstance(class_map, Mapping):
            for key, name in class_map.items():
                try:
                    labels[int(key)] = str(name)
                except (TypeError, ValueError) as exc:
                    raise DataError(
                        f"{attr}-metadata.class-map key {key!r} is not a class number",
                        path=str(manifest),
                        line=line,
                    ) from exc
        samples.append(_sample(root, ref, boxes, width, height, manifest, line))
    dataset = Dataset(root=root, samples=samples)
    if labels:
        dataset.labels = dict(sorted(labels.items()))
    return dataset


def find_label_file(folder: Path) -> Path:
    """The label file of a data set folder: ``labels.csv``, else the single manifest or CSV."""
    preferred = folder / "labels.csv"
    if preferred.is_file():
        return preferred
    for pattern in ("*.manifest", "*.jsonl", "*.csv"):
        found = sorted(folder.glob(pattern))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise DataError(
                f"several label files ({names}); pass the one to use instead of the folder",
                path=str(folder),
            )
    raise DataError(
        "no labels.csv or *.manifest in this folder; point at a Ground Truth CSV export or "
        "output manifest",
        path=str(folder),
    )


def load_dataset(path: str | Path, *, label_attribute: str | None = None) -> Dataset:
    """Load a labeled data set from a folder or a label file (CSV export or manifest)."""
    target = Path(path).expanduser()
    if target.is_dir():
        target = find_label_file(target)
    elif not target.exists():
        raise DataError(
            "no such file or folder; give a data set folder, labels.csv or a .manifest",
            path=str(target),
        )
    if target.suffix.lower() in MANIFEST_SUFFIXES:
        return read_manifest(target, label_attribute=label_attribute)
    if target.suffix.lower() == ".csv":
        return read_labels_csv(target)
    # A manifest is sometimes saved without a suffix (output.manifest is the usual name).
    with target.open("rb") as handle:
        first = handle.read(1)
    if first == b"{":
        return read_manifest(target, label_attribute=label_attribute)
    return read_labels_csv(target)


def _plain(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(float(value), 2)


def annotation_literal(boxes: Iterable[Box]) -> str:
    """Boxes as the Python-literal list Ground Truth writes into the CSV export."""
    items = [
        {
            "class_id": int(b.class_id),
            "top": _plain(b.top),
            "left": _plain(b.left),
            "height": _plain(b.height),
            "width": _plain(b.width),
        }
        for b in boxes
    ]
    return repr(items)


def write_labels_csv(
    data: Dataset | Iterable[Sample],
    path: str | Path,
    *,
    labeling_job: str = "edgekit",
    status: str = "APPROVED",
    event_time: float | None = 0.0,
) -> Path:
    """Write samples as a Ground Truth CSV export readable by :func:`read_labels_csv`.

    ``source_ref`` is written relative to the CSV's folder when the image lies
    under it, so the folder can be moved as a whole. ``event_time=None`` stamps
    the current time; the default keeps the file reproducible.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    samples = data.samples if isinstance(data, Dataset) else list(data)
    stamp = f"{time.time() if event_time is None else event_time:.1f}"
    base = out.parent.resolve()
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for s in samples:
            image = Path(s.image_path)
            try:
                ref = image.resolve().relative_to(base).as_posix()
            except ValueError:
                ref = str(image)
            writer.writerow(
                [
                    ref,
                    s.width,
                    s.height,
                    3,
                    annotation_literal(s.boxes),
                    stamp,
                    labeling_job,
                    status,
                ]
            )
    return out
