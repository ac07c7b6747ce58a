"""``edgekit registry list``: the group defaults as in the notebooks, and a version whose
package is gone from S3 (its bucket deleted by ``deprovision``) says so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edgekit import clients, registry
from edgekit.cli import main
from edgekit.compile.testing import build_tiny_model
from edgekit.package import build_package, generate_keypair
from edgekit.settings import Settings


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("pkg")
    build_tiny_model(root / "model" / "model.onnx", seed=3)
    keys = generate_keypair(root / "keys")
    built = build_package(
        root / "model",
        name="tag-scratch-detector",
        version="1.0.0",
        key=keys.private_key,
        out=root / "pkg.tar.gz",
    )
    return {"path": built.path, "public": keys.public_key}


def _register(settings: Settings, package: dict[str, Any], bucket: str, group: str) -> None:
    clients.client("s3", settings).create_bucket(Bucket=bucket)
    argv = ["registry", "register", "--group", group, "--bucket", bucket]
    argv += ["--package", str(package["path"]), "--public-key", str(package["public"])]
    assert main(argv) == 0


def _empty_and_delete(settings: Settings, bucket: str) -> None:
    s3 = clients.client("s3", settings)
    for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=item["Key"])
    s3.delete_bucket(Bucket=bucket)


@pytest.mark.integration
def test_list_defaults_the_group_to_the_settings_model_name(
    moto_settings: Settings,
    package: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EDGEKIT_BACKEND", "aws")
    monkeypatch.setenv("EDGEKIT_MODEL_NAME", "default-detector")
    _register(moto_settings, package, "registry-default", "default-detector")
    capsys.readouterr()
    assert main(["registry", "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == [
        "version",
        "status",
        "semver",
        "AP50",
        "created",
        "package",
    ]
    assert "s3://registry-default/" in out
    assert main(["registry", "latest"]) == 1
    assert "no Approved version in default-detector" in capsys.readouterr().out


@pytest.mark.integration
def test_list_says_which_versions_lost_their_package(
    moto_settings: Settings,
    package: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EDGEKIT_BACKEND", "aws")
    _register(moto_settings, package, "registry-gone", "gone-detector")
    _register(moto_settings, package, "registry-kept", "gone-detector")
    _empty_and_delete(moto_settings, "registry-gone")
    capsys.readouterr()

    assert main(["registry", "list", "--group", "gone-detector"]) == 0
    captured = capsys.readouterr()
    rows = captured.out.splitlines()
    assert rows[1].split()[0] == "2" and "missing" not in rows[1]
    assert rows[1].endswith(".tar.gz") and "s3://registry-kept/" in rows[1]
    assert rows[2].split()[0] == "1"
    assert "missing (bucket registry-gone deleted): s3://registry-gone/" in rows[2]
    assert "1 version(s) point at a package that is not in S3" in captured.err

    assert main(["registry", "list", "--group", "gone-detector", "--json"]) == 0
    states = {v["version"]: v["package_state"] for v in json.loads(capsys.readouterr().out)}
    assert states == {2: registry.PACKAGE_PRESENT, 1: "missing (bucket registry-gone deleted)"}


@pytest.mark.integration
def test_a_deleted_object_is_named_too(moto_settings: Settings, package: dict[str, Any]) -> None:
    settings = moto_settings
    clients.client("s3", settings).create_bucket(Bucket="registry-obj")
    uri, manifest, digest = registry.upload_package(
        settings, package["path"], public_key=package["public"], bucket="registry-obj"
    )
    version = registry.register_model_version(
        settings, group="obj-detector", package_s3_uri=uri, manifest=manifest, sha256=digest
    )
    bucket, key = registry.parse_s3_uri(uri)
    clients.client("s3", settings).delete_object(Bucket=bucket, Key=key)
    states = registry.package_states([version], settings)
    assert states == {version.arn: "missing (object deleted)"}


@pytest.mark.integration
def test_approve_without_a_version_approves_the_newest_pending_one(
    moto_settings: Settings,
    package: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("EDGEKIT_BACKEND", "aws")
    group = "pending-detector"
    clients.client("s3", moto_settings).create_bucket(Bucket="registry-pending")
    # The signer's key from the default key folder (<local home>/keys) when not given; a
    # home of this test's own (the session's home holds the notebooks' signing keys).
    home = tmp_path / "home"
    monkeypatch.setenv("EDGEKIT_LOCAL_HOME", str(home))
    keys = home / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    (keys / "public_key.pem").write_bytes(package["public"].read_bytes())
    for _ in range(2):
        argv = ["registry", "register", "--group", group, "--bucket", "registry-pending"]
        assert main([*argv, "--package", str(package["path"])]) == 0
    capsys.readouterr()
    assert main(["registry", "approve", "--group", group]) == 0
    assert ":2: Approved" in capsys.readouterr().out.replace("/2:", ":2:")
    statuses = {v.version: v.approval_status for v in registry.list_versions(group, moto_settings)}
    assert statuses == {1: "PendingManualApproval", 2: "Approved"}
    assert main(["registry", "reject", "--group", group]) == 0
    statuses = {v.version: v.approval_status for v in registry.list_versions(group, moto_settings)}
    assert statuses == {1: "Rejected", 2: "Approved"}
    capsys.readouterr()
    assert main(["registry", "approve", "--group", group]) == 1
    assert "has no PendingManualApproval version" in capsys.readouterr().err
