"""A rollout candidate without training: a package's model files as a new version.

A workshop (notebook ``05_rollout``) or a smoke test needs a candidate that differs from
what the fleet runs, i.e. a new model version with its own package sha256, and cannot
wait for a training run. `repackage` verifies a package, copies the files its manifest
lists into a new package of another version (default `next_version`: the patch number
plus one) signed with the same key, keeping the original ``created_at`` so that the same
inputs give a byte-identical archive: running it again yields the same candidate, and
the rollout of that candidate resumes instead of starting over.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from edgekit.errors import ConfigurationError
from edgekit.package import BuiltPackage, build_package, open_package
from edgekit.package.keys import PRIVATE_KEY_NAME, PUBLIC_KEY_NAME
from edgekit.package.manifest import SEMVER, validate_version


def next_version(version: str) -> str:
    """``MAJOR.MINOR.PATCH`` with the patch number plus one (pre-release and build dropped)."""
    match = SEMVER.match(version)
    if match is None:
        validate_version(version)  # raises, naming the version and the expected form
        raise AssertionError(version)  # pragma: no cover - validate_version raised
    major, minor, patch = match.group(1, 2, 3)
    return f"{major}.{minor}.{int(patch) + 1}"


def repackage(
    package: str | os.PathLike[str],
    *,
    key_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    version: str | None = None,
) -> BuiltPackage:
    """``package``'s model as ``version`` (default: `next_version` of its own), signed with the
    keys in ``key_dir`` (``private_key.pem`` signs, ``public_key.pem`` verifies the source),
    written to ``out``. Raises PackageError/VerificationError for a bad source package and
    ConfigurationError for a missing key or a version equal to the source's."""
    source = Path(package).expanduser()
    keys = Path(key_dir).expanduser()
    private, public = keys / PRIVATE_KEY_NAME, keys / PUBLIC_KEY_NAME
    for path in (private, public):
        if not path.is_file():
            raise ConfigurationError(
                f"{path}: not found; key_dir must hold the key pair that signed {source} "
                "(`edgekit package` writes it; notebook 02 keeps it under the local home)"
            )
    with open_package(source, public_key=public) as opened:
        manifest = opened.manifest
        new_version = validate_version(version) if version else next_version(manifest.version)
        if new_version == manifest.version:
            raise ConfigurationError(
                f"version {new_version}: {source} already is {manifest.name} {new_version}; "
                "a candidate needs another version (e.g. "
                f"{next_version(manifest.version)})"
            )
        with tempfile.TemporaryDirectory(prefix="edgekit-candidate-") as tmp:
            folder = Path(tmp) / "model"
            for name in manifest.files:
                target = folder / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(opened.root / name, target)
            return build_package(
                folder,
                name=manifest.name,
                version=new_version,
                key=private,
                out=out,
                created_at=manifest.created_at,
            )


__all__ = ["next_version", "repackage"]
