"""edgekit.workflow.model: notebook 02's package, found or made, and registered once.

The integration test runs the local endpoints in a throwaway home.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.files import sha256_file
from edgekit.handover import MODEL_PACKAGE, write_handover
from edgekit.settings import Settings
from edgekit.workflow.model import PackageRef, ensure_registered, find_model_package, version_rows

SETTINGS = Settings(backend="local")


def test_model_package_from_notebook_02(tmp_path: Path) -> None:
    package, key = tmp_path / "m.tar.gz", tmp_path / "keys" / "public_key.pem"
    key.parent.mkdir()
    package.write_bytes(b"package")
    key.write_text("key")
    write_handover(tmp_path, MODEL_PACKAGE, {"package": str(package), "public_key": str(key)})
    found = find_model_package(SETTINGS, tmp_path)
    assert (found.path, found.public_key, found.key_dir) == (package, key, key.parent)
    assert "notebook 02" in found.source
    assert found.sha256() == sha256_file(package)


def test_model_package_falls_back_to_the_shipped_model(tmp_path: Path) -> None:
    from edgekit.package import verify_package

    settings = Settings(local_home=tmp_path / "home")
    write_handover(
        tmp_path, MODEL_PACKAGE, {"package": str(tmp_path / "gone.tar.gz"), "public_key": ""}
    )
    found = find_model_package(settings, tmp_path)
    assert "shipped with edgekit" in found.source and "gone.tar.gz" in found.source
    assert found.path.is_relative_to(tmp_path / "components")
    assert found.public_key == (tmp_path / "home" / "keys" / "public_key.pem").resolve()
    manifest = verify_package(found.path, found.public_key)
    assert (manifest.name, manifest.version) == (settings.model_name, "1.0.0")


def test_version_rows_mark_the_deployed_version() -> None:
    from edgekit.registry import ModelVersion

    versions = [
        ModelVersion("arn:2", "g", 2, "PendingManualApproval", None, semver="1.1.0"),
        ModelVersion("arn:1", "g", 1, "Approved", None, semver="1.0.0", sha256="ab" * 32),
    ]
    rows = version_rows(versions, current=1)
    assert [r["deploy"] for r in rows] == ["", "◀ deploying"]
    assert rows[1]["sha256"] == "ab" * 6


def signed_package(settings: Settings, out: Path, *, seed: int) -> PackageRef:
    from edgekit.compile.testing import build_tiny_model
    from edgekit.components.build import signing_keys
    from edgekit.package import build_package

    private, public = signing_keys(None, settings)
    folder = out / f"seed-{seed}"
    model = build_tiny_model(folder / "tiny.onnx", seed=seed)
    # Same file name, name and version every time: only the bytes differ.
    built = build_package(
        model, name=settings.model_name, version="2.0.0", key=private, out=folder / "m.tar.gz"
    )
    return PackageRef(built.path, public, "test")


@pytest.mark.integration
def test_register_once_and_never_overwrite_another_versions_package(
    local: Settings, tmp_path: Path
) -> None:
    from edgekit.registry import download_package, list_versions

    group = "nbhelpers-registry"
    first = signed_package(local, tmp_path, seed=1)
    made = ensure_registered(local, group, first)
    again = ensure_registered(local, group, first)
    assert made.created and not again.created
    assert again.version.arn == made.version.arn and made.version.approval_status == "Approved"

    # Same name and semver, other bytes: a new version, and the first one's object survives.
    second = signed_package(local, tmp_path, seed=2)
    other = ensure_registered(local, group, second, approval_status="PendingManualApproval")
    assert other.created and other.package_s3_uri != made.package_s3_uri
    assert second.sha256()[:12] in str(other.package_s3_uri)
    assert [v.version for v in list_versions(group, local)] == [2, 1]
    for version, package in ((made.version, first), (other.version, second)):
        fetched = download_package(version, tmp_path / f"dl-{version.version}", local)
        assert sha256_file(fetched) == package.sha256()
