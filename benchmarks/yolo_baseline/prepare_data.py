"""Write edgekit's train/validation split of a Ground Truth folder in the ultralytics layout.

Runs in edgekit's own environment (``.venv``), not in the baseline's: it uses
``edgekit.data.groundtruth.load_dataset`` and the split ``edgekit train`` and
``edgekit evaluate --split val`` use (``split_dataset(val_fraction=0.2, seed=0)``,
by photo), so the YOLO baseline trains on exactly the photos edgekit trains on
and is scored on exactly the photos edgekit is scored on.

Output (``OUT``, never inside the repository)::

    OUT/images/{train,val}/<name>.jpg   symlinks to the original photos (not copies)
    OUT/labels/{train,val}/<name>.txt   one "class cx cy w h" line per box, 0-1 units
    OUT/data.yaml                       path, train, val, names
    OUT/split.json                      which photo went where

Usage: .venv/bin/python benchmarks/yolo_baseline/prepare_data.py --data DIR --out OUT
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgekit.data.groundtruth import load_dataset
from edgekit.data.split import split_dataset
from edgekit.model.evaluate import SPLIT_SEED, VAL_FRACTION

REPO = Path(__file__).resolve().parents[2]


def yolo_lines(sample, width: int, height: int) -> list[str]:
    lines = []
    for b in sample.boxes:
        cx = (b.left + b.width / 2) / width
        cy = (b.top + b.height / 2) / height
        lines.append(
            f"{b.class_id} {cx:.6f} {cy:.6f} {b.width / width:.6f} {b.height / height:.6f}"
        )
    return lines


def prepare(data: Path, out: Path) -> dict:
    out = out.resolve()
    if out == REPO or REPO in out.parents:
        raise SystemExit(f"{out}: write the YOLO data set outside the repository ({REPO})")
    from PIL import Image

    dataset = load_dataset(data)
    train, val = split_dataset(dataset, val_fraction=VAL_FRACTION, seed=SPLIT_SEED)
    summary: dict = {
        "data": str(Path(data).resolve()),
        "val_fraction": VAL_FRACTION,
        "split_seed": SPLIT_SEED,
    }
    for part, subset in (("train", train), ("val", val)):
        images, labels = out / "images" / part, out / "labels" / part
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        names = []
        for sample in subset.samples:
            src = Path(sample.image_path).resolve()
            link = images / src.name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(src)
            with Image.open(src) as im:
                width, height = im.size
            (labels / f"{src.stem}.txt").write_text(
                "".join(line + "\n" for line in yolo_lines(sample, width, height))
            )
            names.append(src.name)
        summary[part] = names
    label_names = dict(dataset.labels) or {0: "scratch"}
    top = max([b.class_id for s in dataset.samples for b in s.boxes] + list(label_names))
    names_yaml = "".join(f"  {i}: {label_names.get(i, f'class{i}')}\n" for i in range(top + 1))
    (out / "data.yaml").write_text(
        f"path: {out}\ntrain: images/train\nval: images/val\nnames:\n{names_yaml}"
    )
    (out / "split.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Ground Truth folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder (outside the repo)")
    args = parser.parse_args(argv)
    summary = prepare(args.data, args.out)
    print(
        f"{len(summary['train'])} train / {len(summary['val'])} val images -> {args.out}/data.yaml"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
