"""``edgekit keygen``, ``edgekit package`` and ``edgekit verify``."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    keygen = subparsers.add_parser(
        "keygen",
        help="create an Ed25519 key pair for signing model packages",
        description="Write DIR/private_key.pem (mode 0600) and DIR/public_key.pem.",
    )
    keygen.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="key folder (default: <local home>/keys, outside the checkout; an existing pair "
        "there is kept and shown)",
    )
    keygen.add_argument("--force", action="store_true", help="replace an existing key pair")
    keygen.set_defaults(handler=_keygen)

    package = subparsers.add_parser(
        "package",
        help="build a signed, versioned model package (.tar.gz)",
        description="Package a compiled model folder (or one .onnx file) with a signed manifest.",
    )
    package.add_argument(
        "--model",
        required=True,
        type=Path,
        metavar="DIR_OR_FILE",
        help="compiled model folder (edgekit compile --out) or one .onnx file",
    )
    package.add_argument("--name", required=True, help="package name, e.g. tag-scratch-detector")
    # dest differs from "version": the top-level parser already uses that for --version.
    package.add_argument(
        "--version", dest="package_version", required=True, help="semantic version, e.g. 1.0.0"
    )
    package.add_argument(
        "--key",
        type=Path,
        metavar="PRIVATE_KEY_PEM",
        help="signing key (private_key.pem written by edgekit keygen; default: the one in "
        "<local home>/keys)",
    )
    package.add_argument(
        "--out", required=True, type=Path, metavar="FILE.tar.gz", help="package file to write"
    )
    package.set_defaults(handler=_package)

    verify = subparsers.add_parser(
        "verify",
        help="check a model package's signature and file hashes",
        description="Exit 0 if the package is intact and signed by the given key, else 1.",
    )
    verify.add_argument(
        "package", type=Path, metavar="FILE_OR_DIR", help="package .tar.gz or unpacked folder"
    )
    verify.add_argument(
        "--public-key",
        required=True,
        type=Path,
        metavar="PUBLIC_KEY_PEM",
        help="the signer's public key (public_key.pem written by edgekit keygen)",
    )
    verify.set_defaults(handler=_verify)


def _keygen(args: argparse.Namespace) -> int:
    from edgekit.package import generate_keypair
    from edgekit.package.keys import default_key_dir, existing_keypair
    from edgekit.settings import Settings

    folder = args.out
    pair = None
    if folder is None:
        folder = default_key_dir(Settings.from_env())
        # the default pair is shared (make demo, components publish): keep it, say so
        pair = None if args.force else existing_keypair(folder)
        if pair is not None:
            print(f"key pair already in {folder} (pass --force to replace it); using it")
    if pair is None:
        pair = generate_keypair(folder, force=args.force)
    print(f"private key: {pair.private_key} (keep it secret; mode 0600)")
    print(f"public key:  {pair.public_key} (key id {pair.key_id}; give it to devices)")
    return 0


def _package(args: argparse.Namespace) -> int:
    from edgekit.package import build_package
    from edgekit.package.keys import PRIVATE_KEY_NAME, default_key_dir
    from edgekit.settings import Settings

    key = args.key or default_key_dir(Settings.from_env()) / PRIVATE_KEY_NAME
    built = build_package(
        args.model, name=args.name, version=args.package_version, key=key, out=args.out
    )
    m = built.manifest
    print(f"package:  {built.path}")
    print(f"name:     {m.name} {m.version}")
    print(f"runtime:  {m.runtime}")
    print(f"model:    {m.model_file} (input {m.input['name']} {m.input['shape']})")
    print(f"files:    {', '.join(sorted(m.files))}")
    print(f"signed:   key {m.signing_key_id}")
    print(f"sha256:   {built.sha256}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from edgekit.package import verify_package

    manifest = verify_package(args.package, args.public_key)
    print(
        f"OK: {args.package} is {manifest.name} {manifest.version} ({manifest.runtime}), "
        f"{len(manifest.files)} file(s) match, signed by key {manifest.signing_key_id}"
    )
    return 0
