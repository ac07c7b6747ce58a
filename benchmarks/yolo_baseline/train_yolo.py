"""Train the YOLOv8n baseline from scratch and export it to ONNX (runs in .bench-yolo only).

``setup_env.sh`` calls this with the baseline's own interpreter; edgekit never
imports it (ultralytics is AGPL-3.0). Offline by construction: the model is
built from ``yolov8n.yaml`` (no ``.pt`` download), plots are off, ultralytics'
settings live under ``OUT/config`` with sync off, automatic installs are off,
and the font ultralytics insists on (``Arial.ttf``) is satisfied with the
DejaVu Sans file matplotlib ships, so nothing is fetched at run time.

Writes ``OUT/yolov8n.onnx`` (1x3x448x448 input, output ``[1, 4 + classes,
anchors]``) and ``OUT/baseline.json`` (settings, epochs reached, seconds,
ultralytics' own validation mAP50 for reference; the number to compare is
edgekit's evaluator in ``benchmarks/model_quality.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path


def offline_environment(out: Path) -> None:
    config = out / "config"
    config.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_CONFIG_DIR"] = str(config)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        target = config / name
        if not target.exists() and font.exists():
            shutil.copyfile(font, target)


def cpu_torchvision() -> None:
    """Let torchvision import next to the CPU build of torch.

    The package index's torchvision wheels are built against CUDA torch: their C
    extension (``torchvision._C``, which holds the ``nms`` kernel) needs
    ``libtorch_cuda.so`` and cannot load next to ``torch==2.13.0+cpu``, and
    ``torchvision._meta_registrations`` then fails at import. ultralytics only needs
    torchvision's NMS from it, and ships a pure-PyTorch NMS that "matches torchvision
    behavior exactly" (``ultralytics.utils.nms.TorchNMS``): skip the meta
    registrations and route ``torchvision.ops.nms`` there.
    """
    import types

    sys.modules.setdefault(
        "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
    )
    import torchvision
    import torchvision.ops
    from ultralytics.utils.nms import TorchNMS

    if not torchvision.extension._has_ops():
        torchvision.ops.nms = TorchNMS.nms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="data.yaml from prepare_data.py")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--hours", type=float, default=None, help="time budget (overrides epochs)")
    parser.add_argument("--imgsz", type=int, default=448)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    out = args.out.resolve()
    offline_environment(out)

    cpu_torchvision()
    from ultralytics import YOLO, settings

    settings.update(
        {
            "sync": False,
            "runs_dir": str(out / "runs"),
            "weights_dir": str(out / "weights"),
            "datasets_dir": str(out),
        }
    )
    import torch

    torch.set_num_threads(2)
    model = YOLO("yolov8n.yaml")
    started = time.perf_counter()
    train_args = dict(
        data=str(args.data.resolve()),
        imgsz=args.imgsz,
        batch=args.batch,
        epochs=args.epochs,
        device="cpu",
        workers=args.workers,
        seed=args.seed,
        deterministic=True,
        pretrained=False,
        amp=False,
        plots=False,
        project=str(out / "runs"),
        name="train",
        exist_ok=True,
        verbose=False,
    )
    if args.hours:
        train_args["time"] = args.hours
    model.train(**train_args)
    seconds = time.perf_counter() - started
    trainer = model.trainer
    best = Path(trainer.best) if Path(trainer.best).exists() else Path(trainer.last)
    final = YOLO(str(best))
    metrics = final.val(
        data=str(args.data.resolve()),
        imgsz=args.imgsz,
        batch=args.batch,
        device="cpu",
        plots=False,
        verbose=False,
    )
    exported = Path(
        final.export(
            format="onnx", imgsz=args.imgsz, opset=17, simplify=False, dynamic=False, device="cpu"
        )
    )
    onnx_path = out / "yolov8n.onnx"
    shutil.copyfile(exported, onnx_path)
    summary = {
        "model": "YOLO('yolov8n.yaml') from scratch",
        "settings": {k: v for k, v in train_args.items() if k not in ("project", "name")},
        "epochs_reached": int(trainer.epoch) + 1,
        "train_seconds": round(seconds, 1),
        "weights": str(best),
        "ultralytics_val_map50": round(float(metrics.box.map50), 4),
        "onnx": str(onnx_path),
        "torch": torch.__version__,
    }
    try:
        import ultralytics

        summary["ultralytics"] = ultralytics.__version__
    except AttributeError:
        pass
    (out / "baseline.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
