"""``edgekit train``, ``edgekit predict`` and ``edgekit evaluate``: the model pipeline."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from edgekit.errors import ConfigurationError, DataError

#: Where ``edgekit predict`` writes its JSON lines without ``--out``.
DEFAULT_PREDICTIONS = "predictions.jsonl"


def _init_arg(value: str | None) -> str | None:
    """``--init``: absent -> the default start, ``none`` -> from scratch, else a path."""
    from edgekit.model.train import DEFAULT_INIT

    if value is None:
        return DEFAULT_INIT
    return None if value.lower() == "none" else value


def _input_size(text: str) -> tuple[int, int]:
    """``--input-size WxH`` as (width, height)."""
    width, sep, height = text.lower().partition("x")
    if not sep or not width.strip().isdigit() or not height.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT in pixels, e.g. 416x256")
    return int(width), int(height)


def _train(args: argparse.Namespace) -> int:
    try:
        from edgekit.model.train import train
    except ModuleNotFoundError as exc:
        if exc.name == "torch":
            raise ConfigurationError(
                "training needs PyTorch; install the extra with: "
                "pip install 'edgekit-inspection[train]'"
            ) from exc
        raise
    parts = ["edgekit", "train", "--data", str(args.data), "--out", str(args.out)]
    if args.epochs is not None:
        parts += ["--epochs", str(args.epochs)]
    parts += ["--seed", str(args.seed)]
    if args.time_budget is not None:
        parts += ["--time-budget", f"{args.time_budget:g}"]
    if args.init is not None:
        parts += ["--init", str(args.init)]
    if args.lr is not None:
        parts += ["--lr", f"{args.lr:g}"]
    if args.threads is not None:
        parts += ["--threads", str(args.threads)]
    if args.input_size is not None:
        parts += ["--input-size", "x".join(str(v) for v in args.input_size)]
    if args.train_count is not None:
        parts += ["--train-count", str(args.train_count)]
    if args.val_count is not None:
        parts += ["--val-count", str(args.val_count)]
    result = train(
        args.data,
        args.out,
        epochs=args.epochs,
        seed=args.seed,
        train_count=args.train_count,
        val_count=args.val_count,
        threads=args.threads,
        command=shlex.join(parts),
        time_budget=args.time_budget,
        init=_init_arg(args.init),
        lr=args.lr,
        input_size=args.input_size,
    )
    validation = result.metrics["validation"]
    print(
        f"wrote {result.model_path} and {result.metrics_path} in {result.seconds:.0f} s: "
        f"AP50 {validation['ap50']:.3f} on {validation['num_images']} validation images"
    )
    return 0


def _predict(args: argparse.Namespace) -> int:
    from edgekit.data.images import IMAGE_SUFFIXES, ImageScan
    from edgekit.model.predict import predict_folder
    from edgekit.package import load_predictor

    predictor = load_predictor(args.model, threads=args.threads)
    if not ImageScan(args.images).paths():
        raise DataError(
            f"no image ({', '.join(sorted(IMAGE_SUFFIXES))}) in the folder; nothing predicted, "
            "nothing written",
            path=args.images,
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    count = boxes = 0
    with out.open("w", encoding="utf-8") as fh:
        records, skipped = predict_folder(predictor, args.images, args.threshold)
        for record in records:
            fh.write(json.dumps(record) + "\n")
            count += 1
            boxes += len(record["detections"])
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    print(
        f"{count} image(s) predicted, {len(skipped)} skipped, {boxes} detection(s) "
        f"written to {out.resolve()}",
        file=sys.stderr,
    )
    if count == 0:
        raise DataError(
            f"none of the {len(skipped)} image(s) could be read; {out} holds no prediction",
            path=args.images,
        )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from edgekit.model.evaluate import evaluate, evaluation_data
    from edgekit.package import load_predictor

    if args.data == "synthetic" and args.count < 1:
        raise ConfigurationError(f"--count {args.count}: score at least 1 synthetic image")
    predictor = load_predictor(args.model, threads=args.threads)
    data = evaluation_data(args.data, args.split, args.count)
    result = evaluate(predictor, data, args.threshold)
    if result.num_images == 0:
        raise DataError(
            f"no image to score in the {args.split} split; nothing evaluated (try --split all)",
            path=args.data,
        )
    where = (
        "synthetic validation set" if args.data == "synthetic" else f"{args.data} ({args.split})"
    )
    print(f"model {predictor.model_path} on {where}")
    print(result.format_table())
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"model": str(predictor.model_path), "data": str(args.data), "split": args.split}
        payload.update(result.to_json())
        out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}")
    return 0


def _model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help="ONNX file or model package (folder or .tar.gz); default: the shipped model",
    )
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads")
    parser.add_argument(
        "--threshold", type=float, default=None, help="score threshold (default: the model's)"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="train the scratch detector and export model.onnx + metrics.json",
        description="Train the tag-scratch detector (PyTorch, the [train] extra) on synthetic "
        "images or a Ground Truth folder, and write OUT/model.onnx and OUT/metrics.json "
        "(AP50 on the validation split).",
    )
    train.add_argument(
        "--data", required=True, help="'synthetic' or a Ground Truth folder (labels.csv + images)"
    )
    train.add_argument("--out", required=True, help="output folder")
    train.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs (default 5 of 1000 fresh synthetic images, about 4 minutes on 2 CPU "
        "cores; or 200 over a folder's training split, within 20 minutes for 120 photos)",
    )
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    train.add_argument(
        "--time-budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="train until SECONDS have passed instead of a fixed number of epochs (the "
        "cosine schedule is planned to end at the budget; --epochs, if given, caps it). "
        "More time, higher accuracy; loading, export and validation come on top",
    )
    train.add_argument("--threads", type=int, default=None, help="torch threads (default 2)")
    train.add_argument(
        "--lr",
        type=float,
        default=None,
        help="peak learning rate (default 1e-3 when fine-tuning, 3e-3 from scratch)",
    )
    train.add_argument(
        "--init",
        default=None,
        metavar="MODEL",
        help="start from this edgekit ONNX model and fine-tune it on --data (same architecture; "
        "another number of classes is fine). Default for a folder: the detector pretrained on "
        "synthetic renders that ships with edgekit; 'none': train from scratch",
    )
    train.add_argument(
        "--input-size",
        type=_input_size,
        default=None,
        metavar="WxH",
        help="network input in pixels, both multiples of 32 (default 384x256). Larger gives "
        "thin scratches more pixels and runs slower (time grows with the pixel count)",
    )
    # Smoke tests and quick experiments only.
    train.add_argument("--train-count", type=int, default=None, help=argparse.SUPPRESS)
    train.add_argument("--val-count", type=int, default=None, help=argparse.SUPPRESS)
    train.set_defaults(handler=_train)

    predict = subparsers.add_parser(
        "predict",
        help="detect scratches in a folder of images, one JSON line per image",
        description="Run a model (ONNX file or signed package; default: the shipped model) on "
        "every image of a folder and write one JSON line per image: image_name and its "
        "detections. Exit 1 when the folder holds no readable image.",
    )
    _model_arg(predict)
    predict.add_argument(
        "--images", required=True, help="folder of images (.jpg, .jpeg, .png, .bmp)"
    )
    predict.add_argument(
        "--out",
        default=DEFAULT_PREDICTIONS,
        metavar="FILE.jsonl",
        help=f"output file (default: {DEFAULT_PREDICTIONS} in the current folder)",
    )
    predict.set_defaults(handler=_predict)

    evaluate = subparsers.add_parser(
        "evaluate",
        help="AP50, precision and recall of a model",
        description="Score a model (ONNX file or signed package; default: the shipped model) "
        "on synthetic validation images or a Ground Truth folder: AP50, precision, recall.",
    )
    _model_arg(evaluate)
    evaluate.add_argument(
        "--data", default="synthetic", help="'synthetic' (default) or a Ground Truth folder"
    )
    evaluate.add_argument(
        "--split", choices=["val", "all"], default="val", help="which part of a folder to score"
    )
    evaluate.add_argument(
        "--count", type=int, default=200, help="synthetic validation images (default 200)"
    )
    evaluate.add_argument("--out", default=None, help="write the full result as JSON here")
    evaluate.set_defaults(handler=_evaluate)
