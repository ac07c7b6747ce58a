"""``edgekit components publish``: build and publish the three Greengrass components."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "components",
        help="build and publish the Greengrass components (model, agent, inference app)",
        description="Build the components' artifacts and recipes, upload them and create the "
        "next version of each component.",
    )
    sub = parser.add_subparsers(dest="components_command", metavar="ACTION", required=True)
    publish = sub.add_parser(
        "publish",
        help="publish the next version of the components",
        description="With no arguments: all three components, with the model shipped with "
        "edgekit (not a package you built: pass --model-package FILE --key-dir DIR for that). "
        "Prints which package the model component carries (sha256, signing key).",
    )
    publish.add_argument(
        "--name",
        action="append",
        metavar="NAME",
        help="a component to publish (repeat; default: all three)",
    )
    publish.add_argument(
        "--model-package", type=Path, metavar="FILE", help="signed model package (.tar.gz)"
    )
    publish.add_argument(
        "--key-dir",
        type=Path,
        metavar="DIR",
        help="signing key folder (default: <local home>/keys, created on first use)",
    )
    publish.add_argument("--bucket", help="artifact bucket (default: derived, see docs)")
    publish.add_argument("--out", type=Path, metavar="DIR", help="keep the build in DIR")
    publish.add_argument("--backend", choices=["local", "aws"], help="override EDGEKIT_BACKEND")
    publish.add_argument("--region", help="override EDGEKIT_REGION")
    publish.set_defaults(handler=_publish)
    build = sub.add_parser(
        "build",
        help="build one component as a GDK project (gdk component build runs it)",
        description="In a folder with a gdk-config.json (component/<name>/): fill the recipe "
        "template and write greengrass-build/recipes and greengrass-build/artifacts/<name>/"
        "<version>/ as the Greengrass Development Kit expects; `gdk component publish` then "
        "uploads and creates the version. See docs/gdk.md.",
    )
    build.add_argument(
        "--gdk",
        action="store_true",
        required=True,
        help="GDK layout (the only one so far; `publish --out DIR` keeps edgekit's own build)",
    )
    build.add_argument(
        "--project", type=Path, default=Path("."), metavar="DIR", help="GDK project (default: .)"
    )
    build.add_argument(
        "--model-package",
        type=Path,
        metavar="FILE",
        help="signed model package (.tar.gz; default: $EDGEKIT_MODEL_PACKAGE, else the shipped "
        "model)",
    )
    build.add_argument(
        "--key-dir",
        type=Path,
        metavar="DIR",
        help="signing key folder (default: $EDGEKIT_KEY_DIR, else <local home>/keys)",
    )
    build.set_defaults(handler=_build)


def _publish(args: argparse.Namespace) -> int:
    from edgekit.components import build_components, publish_components
    from edgekit.settings import Settings

    settings = Settings.from_env(backend=args.backend, region=args.region)
    with tempfile.TemporaryDirectory(prefix="edgekit-components-") as tmp:
        out = args.out or Path(tmp)
        built = build_components(
            settings,
            out_dir=out,
            model_package=args.model_package,
            key_dir=args.key_dir,
            names=args.name,
        )
        for component in built:
            if component.role == "model":
                if args.model_package is None:
                    print(
                        "note: no --model-package given: publishing the model shipped with "
                        "edgekit; to deploy a package you built, pass --model-package FILE "
                        "--key-dir DIR",
                        file=sys.stderr,
                    )
                print(component.describe(), flush=True)
        published = publish_components(settings, built, bucket=args.bucket)
    print(published.table())
    return 0


def _build(args: argparse.Namespace) -> int:
    from edgekit.components.gdk import build_gdk_project

    built = build_gdk_project(args.project, model_package=args.model_package, key_dir=args.key_dir)
    print(f"built {built.project.name} ({built.backend} backend) for GDK: {built.recipe}")
    for path in built.artifacts:
        print(f"  {path}")
    return 0
