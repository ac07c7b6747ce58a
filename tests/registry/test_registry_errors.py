"""Refused SageMaker calls reach registry callers as edgekit errors (botocore Stubber)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from edgekit import registry
from edgekit.errors import AccessDeniedError, RegistryError
from edgekit.registry import describe_version, latest_approved, list_versions

GROUP = "tag-scratch"
GROUP_ARN = f"arn:aws:sagemaker:us-east-1:123456789012:model-package-group/{GROUP}"
PACKAGE_ARN = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{GROUP}/1"


@pytest.fixture
def sm() -> Any:
    return boto3.client(
        "sagemaker",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _group(stub: Stubber) -> None:
    stub.add_response(
        "describe_model_package_group",
        {
            "ModelPackageGroupName": GROUP,
            "ModelPackageGroupArn": GROUP_ARN,
            "CreationTime": "2026-01-01T00:00:00Z",
            "CreatedBy": {},
            "ModelPackageGroupStatus": "Completed",
        },
    )


@pytest.mark.parametrize(
    ("code", "expected", "words"),
    [
        ("AccessDeniedException", AccessDeniedError, "cannot describe it"),
        ("ThrottlingException", RegistryError, "cannot describe it"),
    ],
)
def test_a_refused_group_lookup_names_the_group(
    sm: Any, code: str, expected: type[Exception], words: str
) -> None:
    with Stubber(sm) as stub:
        stub.add_client_error("describe_model_package_group", service_error_code=code)
        with pytest.raises(expected, match=f"model package group {GROUP}: {words}"):
            latest_approved(GROUP, client=sm)


def test_a_missing_group_says_what_to_do(sm: Any) -> None:
    with Stubber(sm) as stub:
        # What SageMaker answers for a group that does not exist.
        stub.add_client_error(
            "describe_model_package_group", service_error_code="ValidationException"
        )
        with pytest.raises(RegistryError, match=f"{GROUP} does not exist; register a version"):
            list_versions(GROUP, client=sm)


def test_listing_follows_every_page(sm: Any) -> None:
    summary = {
        "ModelPackageGroupName": GROUP,
        "ModelPackageArn": PACKAGE_ARN,
        "CreationTime": "2026-01-01T00:00:00Z",
        "ModelPackageStatus": "Completed",
        "ModelApprovalStatus": "Approved",
    }
    with Stubber(sm) as stub:
        _group(stub)
        stub.add_response(
            "list_model_packages",
            {"ModelPackageSummaryList": [{**summary, "ModelPackageVersion": 1}], "NextToken": "t"},
        )
        stub.add_response(
            "list_model_packages",
            {"ModelPackageSummaryList": [{**summary, "ModelPackageVersion": 2}]},
        )
        stub.add_client_error(  # the newest one was deleted meanwhile
            "describe_model_package", service_error_code="ResourceNotFound"
        )
        with pytest.raises(RegistryError, match=f"model package {PACKAGE_ARN} not found"):
            latest_approved(GROUP, client=sm)


def test_describe_version_maps_denied_and_missing(sm: Any) -> None:
    with Stubber(sm) as stub:
        stub.add_client_error("describe_model_package", service_error_code="AccessDeniedException")
        with pytest.raises(AccessDeniedError, match=f"model package {PACKAGE_ARN}"):
            describe_version(PACKAGE_ARN, client=sm)
        stub.add_client_error("describe_model_package", service_error_code="ValidationException")
        with pytest.raises(RegistryError, match="not found.*edgekit registry list"):
            describe_version(PACKAGE_ARN, client=sm)


def test_missing_s3_package_is_a_registry_error() -> None:
    s3 = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(s3) as stub:
        stub.add_client_error("get_object", service_error_code="NoSuchKey", http_status_code=404)
        with pytest.raises(RegistryError, match="does not exist; upload the package first"):
            registry.s3_object_sha256(s3, "s3://b/k.tar.gz")
        stub.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
        with pytest.raises(AccessDeniedError, match="s3://b/k.tar.gz: cannot read it"):
            registry.s3_object_sha256(s3, "s3://b/k.tar.gz")
