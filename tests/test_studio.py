"""SageMaker Studio support: detection, the SDK-missing error, fallbacks against moto's STS/IAM.

The ``sagemaker`` SDK is not installed here (it is in the ``aws`` extra). Tests
that need it absent make sure it is (``sys.modules["sagemaker"] = None``); the
one test of the Studio branch isolates the unit with a small stand-in module,
since the real SDK would call AWS.
"""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import boto3
import pytest

from edgekit import clients, studio
from edgekit.errors import ConfigurationError
from edgekit.settings import Settings

REGION = "us-east-1"
ACCOUNT = "123456789012"


@pytest.fixture
def no_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sagemaker", None)  # import sagemaker -> ImportError


@pytest.fixture
def studio_file(tmp_path: Path) -> Path:
    path = tmp_path / "resource-metadata.json"
    path.write_text(
        json.dumps(
            {
                "AppType": "JupyterLab",
                "DomainId": "d-abc123",
                "SpaceName": "edgekit-space",
                "ResourceArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:app/d-abc123/x/jupyterlab/x",
                "ResourceName": "default",
            }
        )
    )
    return path


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (studio.ROLE_ENV, studio.BUCKET_ENV):
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------- detection


def test_detection_reads_the_metadata_file(studio_file: Path, tmp_path: Path) -> None:
    assert studio.in_studio(studio_file)
    assert studio.studio_metadata(studio_file)["DomainId"] == "d-abc123"  # type: ignore[index]
    assert studio.studio_region(studio_file) == REGION
    assert not studio.in_studio(tmp_path / "absent.json")
    assert studio.studio_region(tmp_path / "absent.json") is None
    (tmp_path / "empty.json").write_text("{}")
    assert not studio.in_studio(tmp_path / "empty.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ConfigurationError, match=r"broken\.json: not valid JSON"):
        studio.in_studio(tmp_path / "broken.json")


def test_the_default_marker_is_the_documented_path() -> None:
    assert str(studio.METADATA_FILE) == "/opt/ml/metadata/resource-metadata.json"


# ---------------------------------------------------------------- without the SDK


def test_missing_sdk_says_how_to_install_it(no_sdk: None) -> None:
    for call in (studio.sagemaker_sdk, studio.execution_role, studio.default_bucket):
        hint = re.escape("pip install 'edgekit-inspection[aws]'")
        with pytest.raises(ConfigurationError, match=hint):
            call()


def test_in_studio_on_aws_without_the_sdk_is_a_clear_error(no_sdk: None, studio_file: Path) -> None:
    settings = Settings(backend="aws", region=REGION)
    hint = r"pip install 'edgekit-inspection\[aws\]'.*EDGEKIT_SAGEMAKER"
    with pytest.raises(ConfigurationError, match=hint):
        studio.studio_defaults(settings, metadata_path=studio_file)


def test_explicit_values_need_neither_sdk_nor_network(no_sdk: None, studio_file: Path) -> None:
    settings = Settings(backend="aws", region=REGION)
    role = f"arn:aws:iam::{ACCOUNT}:role/service-role/AmazonSageMaker-ExecutionRole-1"
    got = studio.studio_defaults(
        settings, role_arn=role, bucket="my-bucket", metadata_path=studio_file
    )
    assert got == studio.StudioDefaults(role, "my-bucket", "argument", "argument")
    with pytest.raises(ConfigurationError, match="role_arn: 'arn:aws:iam::1:user/x' is not an IAM"):
        studio.studio_defaults(settings, role_arn="arn:aws:iam::1:user/x", bucket="b")


def test_in_studio_the_sdk_supplies_role_and_bucket(
    studio_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/service-role/AmazonSageMaker-ExecutionRole-1"
    fake = types.ModuleType("sagemaker")
    fake.get_execution_role = lambda: role  # type: ignore[attr-defined]

    class Session:
        def default_bucket(self) -> str:
            return f"sagemaker-{REGION}-{ACCOUNT}"

    fake.Session = Session  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sagemaker", fake)
    got = studio.studio_defaults(Settings(backend="aws", region=REGION), metadata_path=studio_file)
    assert got == studio.StudioDefaults(role, f"sagemaker-{REGION}-{ACCOUNT}", "studio", "studio")

    # The environment wins over the SDK (set on purpose by the user).
    monkeypatch.setenv(studio.BUCKET_ENV, "team-bucket")
    got = studio.studio_defaults(Settings(backend="aws", region=REGION), metadata_path=studio_file)
    assert (got.bucket, got.bucket_source, got.role_source) == (
        "team-bucket",
        "environment",
        "studio",
    )


def test_role_arn_from_caller() -> None:
    assumed = f"arn:aws:sts::{ACCOUNT}:assumed-role/AmazonSageMaker-ExecutionRole-1/SageMaker"
    assert studio.role_arn_from_caller(assumed) == (
        f"arn:aws:iam::{ACCOUNT}:role/AmazonSageMaker-ExecutionRole-1"
    )
    role = f"arn:aws:iam::{ACCOUNT}:role/x"
    assert studio.role_arn_from_caller(role) == role
    assert studio.role_arn_from_caller(f"arn:aws:iam::{ACCOUNT}:user/alice") is None
    assert studio.role_arn_from_caller(f"arn:aws:sts::{ACCOUNT}:federated-user/bob") is None


# ---------------------------------------------------------------- fallbacks against moto


@pytest.fixture
def aws_env(moto_settings: Settings) -> Settings:
    """AWS backend settings whose calls land on moto (conftest's ``moto_settings``)."""
    return moto_settings


@pytest.mark.integration
def test_outside_studio_an_iam_user_caller_needs_an_explicit_role(
    aws_env: Settings, no_sdk: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absent = tmp_path / "absent.json"
    # moto's default caller is arn:aws:sts::123456789012:user/moto: not a role.
    with pytest.raises(
        ConfigurationError, match=r"caller arn:aws:sts::\d+:user/moto is not an IAM"
    ):
        studio.studio_defaults(aws_env, metadata_path=absent)

    role = f"arn:aws:iam::{ACCOUNT}:role/EdgekitNeo"
    monkeypatch.setenv(studio.ROLE_ENV, role)
    got = studio.studio_defaults(aws_env, metadata_path=absent)
    assert got == studio.StudioDefaults(
        role, f"edgekit-artifacts-{ACCOUNT}-{REGION}", "environment", "default"
    )


@pytest.mark.integration
def test_outside_studio_an_assumed_role_caller_is_used_with_its_path(
    aws_env: Settings, moto_url: str, no_sdk: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=moto_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    created = client("iam").create_role(
        RoleName="NotebookRole",
        Path="/service-role/",
        AssumeRolePolicyDocument=json.dumps(studio.SAGEMAKER_TRUST_POLICY),
    )["Role"]
    creds = client("sts").assume_role(RoleArn=created["Arn"], RoleSessionName="nb")["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", creds["SessionToken"])
    monkeypatch.setattr(clients, "_sessions", {})

    got = studio.studio_defaults(aws_env, metadata_path=tmp_path / "absent.json")
    # STS reports .../assumed-role/NotebookRole/nb; IAM supplies the path STS drops.
    assert got.role_arn == f"arn:aws:iam::{ACCOUNT}:role/service-role/NotebookRole"
    assert got.role_source == "sts"


# ---------------------------------------------------------------- IAM permissions


def test_iam_actions_are_real_api_actions() -> None:
    import botocore.session

    session = botocore.session.get_session()
    service_names = {"greengrass": "greengrassv2"}
    # IAM-only actions with no API operation of the same name.
    not_operations = {"iam:PassRole", "iot:Connect", "iot:Subscribe", "iot:Receive"}
    for service, actions in studio.IAM_ACTIONS.items():
        if service == "s3":  # S3's action names differ from its operations (s3:ListBucket)
            continue
        operations = set(
            session.get_service_model(service_names.get(service, service)).operation_names
        )
        for action in actions:
            if f"{service}:{action}" not in not_operations:
                assert action in operations, f"{service}:{action}"


def test_iam_actions_cover_the_registry_and_neo_calls() -> None:
    called = {
        "CreateCompilationJob",
        "DescribeCompilationJob",
        "CreateModelPackageGroup",
        "DescribeModelPackageGroup",
        "CreateModelPackage",
        "DescribeModelPackage",
        "ListModelPackages",
        "UpdateModelPackage",
    }
    assert called <= set(studio.IAM_ACTIONS["sagemaker"])
    assert {"iam:PassRole", "sts:GetCallerIdentity", "s3:PutObject", "s3:GetObject"} <= set(
        studio.iam_actions()
    )


def test_markdown_lists_every_action_in_a_well_formed_table() -> None:
    text = studio.REQUIRED_IAM_PERMISSIONS
    for action in studio.iam_actions():
        assert f"`{action}`" in text
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + len(studio.IAM_ACTIONS) + 1
    assert all(line.count("|") == 4 for line in rows)  # no stray pipes inside cells


@pytest.mark.integration
def test_the_policy_document_is_accepted_by_iam(moto_url: str) -> None:
    iam = boto3.client(
        "iam",
        endpoint_url=moto_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    document = json.dumps(studio.iam_policy_document("edgekit-artifacts"))
    assert len(document) < 6144  # the managed-policy size limit
    policy = iam.create_policy(PolicyName="edgekit-notebooks", PolicyDocument=document)["Policy"]
    version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId="v1")["PolicyVersion"]
    statements = version["Document"]["Statement"]
    bucket = next(s for s in statements if s["Sid"] == "EdgekitBucket")
    assert bucket["Resource"] == [
        "arn:aws:s3:::edgekit-artifacts",
        "arn:aws:s3:::edgekit-artifacts/*",
    ]
