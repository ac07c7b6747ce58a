"""The model registry against moto on loopback (AWS code path), plus request unit tests.

Settings use ``backend="aws"`` with ``AWS_ENDPOINT_URL`` pointing at a
ThreadedMotoServer, so every call goes through :mod:`edgekit.clients` exactly as
on AWS and is validated by botocore before it is sent. moto's model registry
stores groups, versions (numbered per group), approval status and customer
metadata; it ignores ``SourceUri`` (edgekit keeps the URI in the metadata too).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from botocore.validate import ParamValidator

from edgekit import clients, registry
from edgekit.cli import main
from edgekit.compile.testing import build_tiny_model
from edgekit.errors import ConfigurationError, PackageError
from edgekit.package import build_package, generate_keypair
from edgekit.registry import RegistryError
from edgekit.settings import Settings

REGION = "us-east-1"


@pytest.fixture
def settings(moto_settings: Settings) -> Settings:
    """AWS backend settings whose calls land on moto (conftest's ``moto_settings``)."""
    return moto_settings


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two real signed packages (1.0.0 and 1.1.0) of a tiny model, and the key pair."""
    root = tmp_path_factory.mktemp("registry")
    model_dir = root / "model"
    build_tiny_model(model_dir / "model.onnx", seed=5)
    (model_dir / "metrics.json").write_text(json.dumps({"ap50": 0.8125}))
    keys = generate_keypair(root / "keys")
    built = {
        v: build_package(
            model_dir,
            name="tag-scratch-detector",
            version=v,
            key=keys.private_key,
            out=root / f"pkg-{v}.tar.gz",
        )
        for v in ("1.0.0", "1.1.0")
    }
    return {"built": built, "keys": keys}


def _upload(settings: Settings, bucket: str, path: Path) -> str:
    s3 = clients.client("s3", settings)
    try:
        s3.head_bucket(Bucket=bucket)
    except Exception:
        s3.create_bucket(Bucket=bucket)
    key = f"packages/{path.name}"
    s3.upload_file(str(path), bucket, key)
    return f"s3://{bucket}/{key}"


# ---------------------------------------------------------------- unit: requests


def test_customer_metadata_carries_the_package_facts(packages: dict[str, Any]) -> None:
    built = packages["built"]["1.0.0"]
    props = registry.customer_metadata(
        built.manifest, sha256=built.sha256, package_s3_uri="s3://b/packages/pkg-1.0.0.tar.gz"
    )
    assert props == {
        "edgekit:name": "tag-scratch-detector",
        "edgekit:semver": "1.0.0",
        "edgekit:sha256": built.sha256,
        "edgekit:runtime": "onnxruntime",
        "edgekit:ap50": "0.8125",
        "edgekit:package-s3-uri": "s3://b/packages/pkg-1.0.0.tar.gz",
        "edgekit:model-sha256": built.manifest.files["model.onnx"].sha256,
    }
    with pytest.raises(RegistryError, match="does not fit"):
        registry.customer_metadata(built.manifest, sha256="x", package_s3_uri="s3://b/a?b=c")


def test_the_create_request_passes_botocore_validation(packages: dict[str, Any]) -> None:
    import botocore.session

    built = packages["built"]["1.0.0"]
    uri = "s3://bucket/packages/pkg-1.0.0.tar.gz"
    request = registry.build_create_request(
        group="tag-scratch-detector",
        package_s3_uri=uri,
        metadata=registry.customer_metadata(
            built.manifest, sha256=built.sha256, package_s3_uri=uri
        ),
        approval_status="PendingManualApproval",
        description="edgekit 1.0.0",
    )
    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.operation_model("CreateModelPackage").input_shape
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()
    assert request["ModelApprovalStatus"] in model.shape_for("ModelApprovalStatus").enum
    assert "InferenceSpecification" not in request  # not allowed together with SourceUri
    assert "ModelPackageName" not in request  # versioned packages take the group name

    client = boto3.client(
        "sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="y"
    )
    with Stubber(client) as stub:
        stub.add_response(
            "create_model_package", {"ModelPackageArn": "arn:x"}, expected_params=request
        )
        client.create_model_package(**request)


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: registry.check_group_name("bad_name"), "letters, digits and hyphens"),
        (lambda: registry.check_group_name("x" * 64), "1-63"),
        (lambda: registry.check_approval_status("approved"), "not one of Approved"),
        (lambda: registry.parse_s3_uri("https://b/k"), "not an s3://bucket/key"),
    ],
)
def test_bad_arguments_name_the_field(call: Any, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        call()


# ---------------------------------------------------------------- moto: the registry


@pytest.mark.integration
def test_register_approve_and_deploy_the_latest_approved(
    settings: Settings, packages: dict[str, Any], tmp_path: Path
) -> None:
    group = "flow-detector"
    built = packages["built"]
    uri1 = _upload(settings, "registry-flow", built["1.0.0"].path)
    uri2 = _upload(settings, "registry-flow", built["1.1.0"].path)

    arn = registry.ensure_group(group, settings)
    assert arn.endswith(f":model-package-group/{group}")
    assert registry.ensure_group(group, settings) == arn  # idempotent

    v1 = registry.register_model_version(
        settings, group=group, package_s3_uri=uri1, manifest=built["1.0.0"]
    )
    v2 = registry.register_model_version(
        settings,
        group=group,
        package_s3_uri=uri2,
        manifest=built["1.1.0"].manifest,
        description="retrained",
    )
    assert (v1.version, v2.version) == (1, 2)
    assert v1.approval_status == v2.approval_status == "PendingManualApproval"
    assert v1.semver == "1.0.0" and v2.semver == "1.1.0"
    assert v2.package_s3_uri == uri2 and v2.description == "retrained"
    assert v1.sha256 == hashlib.sha256(built["1.0.0"].path.read_bytes()).hexdigest()
    assert v1.ap50 == pytest.approx(0.8125) and v1.runtime == "onnxruntime"
    assert v1.created is not None

    assert registry.latest_approved(group, settings) is None
    approved = registry.approve(v1.arn, settings, description="checked on the bench")
    assert approved.approval_status == "Approved"
    assert approved.sha256 == v1.sha256  # approving keeps the metadata
    assert registry.latest_approved(group, settings) == approved

    registry.approve(v2.arn, settings)
    latest = registry.latest_approved(group, settings)
    assert latest is not None and (latest.version, latest.semver) == (2, "1.1.0")

    registry.reject(v2.arn, settings)
    latest = registry.latest_approved(group, settings)
    assert latest is not None and latest.version == 1

    versions = registry.list_versions(group, settings)
    assert [(v.version, v.approval_status) for v in versions] == [(2, "Rejected"), (1, "Approved")]
    assert [v.version for v in registry.list_versions(group, settings, status="Rejected")] == [2]
    assert registry.find_version(group, 2, settings).arn == v2.arn

    # What the deploy notebook fetches: the bytes that were registered, or an error.
    fetched = registry.download_package(latest, tmp_path / "deploy", settings)
    assert fetched.read_bytes() == built["1.0.0"].path.read_bytes()
    bucket, key = registry.parse_s3_uri(uri1)
    clients.client("s3", settings).put_object(Bucket=bucket, Key=key, Body=b"replaced")
    with pytest.raises(PackageError, match="was replaced after registration"):
        registry.download_package(latest, tmp_path / "deploy2", settings)
    assert not list((tmp_path / "deploy2").iterdir())


@pytest.mark.integration
def test_registering_a_missing_or_different_object_is_refused(
    settings: Settings, packages: dict[str, Any]
) -> None:
    built = packages["built"]["1.0.0"]
    with pytest.raises(RegistryError, match="s3://registry-flow/nope.tar.gz does not exist"):
        registry.register_model_version(
            settings,
            group="refused",
            package_s3_uri="s3://registry-flow/nope.tar.gz",
            manifest=built,
        )
    other = _upload(settings, "registry-flow", packages["built"]["1.1.0"].path)
    with pytest.raises(PackageError, match="differs from the package's"):
        registry.register_model_version(
            settings, group="refused", package_s3_uri=other, manifest=built
        )
    sm = clients.client("sagemaker", settings)
    assert sm.list_model_packages(ModelPackageGroupName="refused")["ModelPackageSummaryList"] == []


@pytest.mark.integration
def test_an_unknown_group_is_an_error_not_an_empty_answer(settings: Settings) -> None:
    with pytest.raises(RegistryError, match="group no-such-group does not exist"):
        registry.latest_approved("no-such-group", settings)
    with pytest.raises(RegistryError, match="does not exist"):
        registry.list_versions("no-such-group", settings)


@pytest.mark.integration
def test_cli_register_list_approve_latest(
    settings: Settings,
    packages: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EDGEKIT_BACKEND", "aws")
    clients.client("s3", settings).create_bucket(Bucket="registry-cli")
    group = ["--group", "cli-detector"]
    public = str(packages["keys"].public_key)
    for version in ("1.0.0", "1.1.0"):
        path = str(packages["built"][version].path)
        argv = ["registry", "register", *group, "--package", path, "--public-key", public]
        assert main([*argv, "--bucket", "registry-cli"]) == 0
    out = capsys.readouterr().out
    assert "registered tag-scratch-detector 1.1.0 as version 2 of cli-detector" in out
    digest = hashlib.sha256(packages["built"]["1.1.0"].path.read_bytes()).hexdigest()
    uri = f"s3://registry-cli/edgekit/packages/tag-scratch-detector/1.1.0/{digest[:16]}/pkg-1.1.0"
    assert f"{uri}.tar.gz" in out

    assert main(["registry", "latest", *group]) == 1
    assert "no Approved version in cli-detector" in capsys.readouterr().out

    assert main(["registry", "approve", *group, "--version", "1"]) == 0
    assert ": Approved (semver 1.0.0)" in capsys.readouterr().out

    assert main(["registry", "latest", *group, "--json"]) == 0
    latest = json.loads(capsys.readouterr().out)
    assert (latest["version"], latest["semver"], latest["approval_status"]) == (
        1,
        "1.0.0",
        "Approved",
    )

    assert main(["registry", "list", *group]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["version", "status", "semver", "AP50", "created", "package"]
    assert table[1].split()[:4] == ["2", "PendingManualApproval", "1.1.0", "0.8125"]
    assert table[2].split()[:4] == ["1", "Approved", "1.0.0", "0.8125"]

    # An ARN from another group is refused before anything changes.
    other = registry.register_model_version(
        settings,
        group="cli-other",
        package_s3_uri=latest["package_s3_uri"],
        manifest=packages["built"]["1.0.0"].manifest,
    )
    assert main(["registry", "reject", *group, "--arn", other.arn]) == 1
    assert "belongs to group cli-other" in capsys.readouterr().err
    assert registry.describe_version(other.arn, settings).approval_status == (
        "PendingManualApproval"
    )


@pytest.mark.integration
def test_cli_register_refuses_a_package_signed_by_another_key(
    settings: Settings,
    packages: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EDGEKIT_BACKEND", "aws")
    stranger = generate_keypair(tmp_path / "stranger")
    path = str(packages["built"]["1.0.0"].path)
    argv = ["registry", "register", "--group", "cli-bad-key", "--package", path]
    assert main([*argv, "--public-key", str(stranger.public_key)]) == 1
    assert "not with the given public key" in capsys.readouterr().err
    sm = clients.client("sagemaker", settings)
    groups = sm.list_model_package_groups()["ModelPackageGroupSummaryList"]
    assert "cli-bad-key" not in [g["ModelPackageGroupName"] for g in groups]
