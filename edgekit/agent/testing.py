"""Helpers to exercise the agent without a trained model: keys, a signed package.

Tests and ``benchmarks/agent_overhead.py`` use them; they build a tiny
random-weight detector with ``onnx.helper`` (see :mod:`edgekit.compile.testing`)
or package a given ONNX file, sign it with a fresh key and return the paths.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgekit.compile.testing import build_tiny_model
from edgekit.package import build_package, generate_keypair
from edgekit.package.keys import PRIVATE_KEY_NAME, PUBLIC_KEY_NAME


@dataclass(frozen=True)
class SignedPackage:
    package: Path
    """The signed .tar.gz."""
    model: Path
    """The ONNX file inside it (a copy outside the package, for in-process comparisons)."""
    public_key: Path
    private_key: Path


def short_tempdir(prefix: str = "ek-") -> Path:
    """A fresh folder under /tmp: unix socket paths must stay under 108 bytes."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def signed_package(
    workdir: str | Path,
    *,
    name: str = "tiny-detector",
    version: str = "1.0.0",
    model: str | Path | None = None,
    height: int = 64,
    width: int = 96,
    key_dir: str | Path | None = None,
) -> SignedPackage:
    """Sign ``model`` (default: a tiny detector of ``height`` x ``width``) into a package.

    Keys are generated in ``key_dir`` (default ``workdir/keys``) unless they exist there.
    """
    work = Path(workdir)
    keys = Path(key_dir) if key_dir is not None else work / "keys"
    if not (keys / PRIVATE_KEY_NAME).is_file():
        generate_keypair(keys)
    if model is None:
        model_path = build_tiny_model(
            work / f"{name}-model" / "model.onnx", height=height, width=width
        )
    else:
        model_path = Path(model)
    built = build_package(
        model_path,
        name=name,
        version=version,
        key=keys / PRIVATE_KEY_NAME,
        out=work / f"{name}-{version}.tar.gz",
    )
    return SignedPackage(built.path, model_path, keys / PUBLIC_KEY_NAME, keys / PRIVATE_KEY_NAME)
