"""A rollout candidate without training: the same model files as a new, signed version."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.compile.testing import build_tiny_model
from edgekit.errors import ConfigurationError, PackageError, VerificationError
from edgekit.files import sha256_file
from edgekit.package import build_package, generate_keypair, verify_package
from edgekit.rollout.candidate import next_version, repackage


@pytest.mark.parametrize(
    ("version", "expected"),
    [("1.0.0", "1.0.1"), ("2.3.9", "2.3.10"), ("1.0.0-rc.1", "1.0.1"), ("0.1.4+build.7", "0.1.5")],
)
def test_next_version_bumps_the_patch(version: str, expected: str) -> None:
    assert next_version(version) == expected


def test_next_version_refuses_what_is_not_semver() -> None:
    with pytest.raises(PackageError, match="'v1' is not a semantic version"):
        next_version("v1")


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, Path]:
    keys = tmp_path / "keys"
    generate_keypair(keys)
    model = build_tiny_model(tmp_path / "tiny.onnx")
    built = build_package(
        model,
        name="tag-scratch-detector",
        version="1.0.0",
        key=keys / "private_key.pem",
        out=tmp_path / "m-1.0.0.tar.gz",
    )
    return built.path, keys


def test_repackage_is_a_new_version_of_the_same_model(
    source: tuple[Path, Path], tmp_path: Path
) -> None:
    package, keys = source
    built = repackage(package, key_dir=keys, out=tmp_path / "candidate.tar.gz")
    manifest = verify_package(built.path, keys / "public_key.pem")
    before = verify_package(package, keys / "public_key.pem")
    assert (manifest.name, manifest.version) == ("tag-scratch-detector", "1.0.1")
    assert manifest.files == before.files and manifest.created_at == before.created_at
    assert built.sha256 == sha256_file(built.path) != sha256_file(package)
    # The same inputs give the same archive: a rollout of it is found again, not restarted.
    again = repackage(package, key_dir=keys, out=tmp_path / "again.tar.gz")
    assert again.sha256 == built.sha256
    named = repackage(package, key_dir=keys, out=tmp_path / "v2.tar.gz", version="2.0.0")
    assert named.manifest.version == "2.0.0" and named.sha256 != built.sha256


def test_repackage_refuses_the_same_version_a_missing_key_and_another_key(
    source: tuple[Path, Path], tmp_path: Path
) -> None:
    package, keys = source
    with pytest.raises(ConfigurationError, match=r"already is tag-scratch-detector 1\.0\.0"):
        repackage(package, key_dir=keys, out=tmp_path / "c.tar.gz", version="1.0.0")
    with pytest.raises(ConfigurationError, match="private_key.pem: not found"):
        repackage(package, key_dir=tmp_path / "nowhere", out=tmp_path / "c.tar.gz")
    other = tmp_path / "other-keys"
    generate_keypair(other)
    with pytest.raises(VerificationError):
        repackage(package, key_dir=other, out=tmp_path / "c.tar.gz")
    assert not (tmp_path / "c.tar.gz").exists()
