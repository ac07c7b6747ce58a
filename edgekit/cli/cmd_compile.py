"""``edgekit compile``: compile a model for a target runtime and check parity."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

# Listed here so ``--help`` stays fast; the registry decides what is valid.
BUILTIN_TARGETS = (
    "onnxruntime-fp32",
    "onnxruntime-int8",
    "openvino-fp32",
    "openvino-bf16",
    "openvino-int8",
    "auto",
    "sagemaker-neo",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compile",
        help="compile a model for a target runtime (with an accuracy parity check)",
        description=(
            "Compile an edgekit ONNX model (or an ultralytics YOLO detection export), then "
            "compare it with the source on a golden set. "
            "Fails if AP50 drops by more than --max-ap50-drop unless --force."
        ),
    )
    parser.add_argument(
        "--model", type=Path, metavar="MODEL.onnx", help="source model (default: shipped model)"
    )
    parser.add_argument(
        "--target",
        required=True,
        metavar="TARGET",
        help=f"compile target: {', '.join(BUILTIN_TARGETS)}",
    )
    parser.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="folder for the compiled model"
    )
    parser.add_argument(
        "--format",
        choices=("auto", "edgekit", "yolo"),
        default="auto",
        help="what the source model is: auto (default) detects an edgekit model or an "
        "ultralytics YOLO detection export ([1, 4+classes, anchors] output, names/task "
        "metadata); yolo or edgekit says which",
    )
    parser.add_argument(
        "--device",
        metavar="DEVICE",
        help="sagemaker-neo target: a Neo TargetDevice (ml_c5, jetson_xavier, ...) or a "
        "platform OS/ARCH[/ACCELERATOR] (linux/x86_64, linux/arm64/nvidia)",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        metavar="DIR",
        help="int8 calibration images: an image folder or Ground Truth data set "
        "(default: synthetic images)",
    )
    parser.add_argument(
        "--calibration-count",
        type=int,
        metavar="N",
        help="calibration images to use (default 64)",
    )
    parser.add_argument(
        "--golden",
        type=Path,
        metavar="DIR",
        help="parity images: Ground Truth data set or image folder "
        "(default: synthetic validation set)",
    )
    parser.add_argument(
        "--golden-count",
        type=int,
        default=200,
        metavar="N",
        help="synthetic golden images when --golden is not given (default 200)",
    )
    parser.add_argument(
        "--max-ap50-drop",
        type=float,
        default=0.02,
        metavar="X",
        help="largest AP50 loss accepted (default 0.02)",
    )
    parser.add_argument(
        "--force", action="store_true", help="keep the compiled model even if parity fails"
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="compile even if the compile cache holds this result, and do not store it "
        "(the cache: $EDGEKIT_COMPILE_CACHE, else $XDG_CACHE_HOME/edgekit/compile; "
        "EDGEKIT_COMPILE_CACHE=off turns it off)",
    )
    parser.set_defaults(handler=_compile)


def _compile(args: argparse.Namespace) -> int:
    from edgekit.compile import CompileOptions, ParityWarning, compile_model
    from edgekit.neo import neo_account

    extra: dict[str, object] = {"device": args.device} if args.device else {}
    if args.target == "sagemaker-neo":  # the compiler takes the account; the wiring is here
        extra["aws"] = neo_account()
    with warnings.catch_warnings():
        # The table below says FAILED (forced); a second warning line adds nothing.
        warnings.simplefilter("ignore", ParityWarning)
        report = compile_model(
            args.model,
            args.target,
            args.out,
            calibration=args.calibration,
            calibration_count=args.calibration_count,
            golden=args.golden,
            golden_count=args.golden_count,
            force=args.force,
            max_ap50_drop=args.max_ap50_drop,
            options=CompileOptions(extra=extra) if extra else None,
            cache=False if args.no_cache else None,
            source_format=args.format,
        )
    print(report.table())
    return 0
