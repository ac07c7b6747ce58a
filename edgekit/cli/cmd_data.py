"""``edgekit data``: make a synthetic data set, or inspect a labeled one."""

from __future__ import annotations

import argparse

from edgekit.errors import ConfigurationError


def _synth(args: argparse.Namespace) -> int:
    from edgekit.data.synthetic import write_dataset

    if args.count < 1:
        raise ConfigurationError(f"--count {args.count}: render at least 1 image")
    labels = write_dataset(args.out, args.count, args.seed, image_format=args.format)
    print(f"wrote {args.count} images and {labels}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from edgekit.data.groundtruth import load_dataset
    from edgekit.data.stats import format_summary, summarize

    dataset = load_dataset(args.path)
    print(format_summary(summarize(dataset, val_fraction=args.val_fraction, seed=args.seed)))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="synthetic images and Ground Truth data sets",
        description="Render a synthetic tag-scratch data set, or summarize a labeled one "
        "(a SageMaker Ground Truth export: labels.csv or an output manifest).",
    )
    commands = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    synth = commands.add_parser(
        "synth",
        help="render a synthetic tag-scratch data set",
        description="Write OUT/images/ and OUT/labels.csv: deterministic for a given --seed.",
    )
    synth.add_argument("--out", required=True, help="folder to write images/ and labels.csv to")
    synth.add_argument("--count", type=int, default=200, help="number of images (default 200)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--format", choices=["jpg", "png"], default="jpg", help="image format")
    synth.set_defaults(handler=_synth)

    inspect = commands.add_parser(
        "inspect",
        help="count images and boxes, box sizes and split sizes of a data set",
        description="Read a data set folder, labels.csv or Ground Truth manifest and print its "
        "images, boxes, box sizes and the train/validation split edgekit train would use.",
    )
    inspect.add_argument("path", help="data set folder, labels.csv or Ground Truth manifest")
    inspect.add_argument("--val-fraction", type=float, default=0.2, help="validation share")
    inspect.add_argument("--seed", type=int, default=0, help="split seed")
    inspect.set_defaults(handler=_inspect)
