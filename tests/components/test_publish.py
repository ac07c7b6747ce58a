"""Publishing's AWS boundary: refused calls become edgekit errors; every page is read."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from edgekit.components.profiles import AwsProfile, LocalProfile
from edgekit.components.publish import component_versions
from edgekit.errors import AccessDeniedError, AwsServiceError, ConfigurationError
from edgekit.settings import Settings

ARN = "arn:aws:greengrass:us-east-1:123456789012:components:com.example.Model"


def _client(service: str) -> Any:
    return boto3.client(
        service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def test_component_versions_reads_every_page_and_maps_errors() -> None:
    gg = _client("greengrassv2")
    row = {"componentName": "com.example.Model", "arn": f"{ARN}:versions:1.0.0"}
    with Stubber(gg) as stub:
        stub.add_response(
            "list_component_versions",
            {"componentVersions": [{**row, "componentVersion": "1.0.0"}], "nextToken": "n"},
        )
        stub.add_response(
            "list_component_versions",
            {"componentVersions": [{**row, "componentVersion": "1.0.1"}]},
        )
        assert component_versions(gg, ARN) == ["1.0.0", "1.0.1"]
        stub.add_client_error(
            "list_component_versions",
            service_error_code="ResourceNotFoundException",
            http_status_code=404,
        )
        assert component_versions(gg, ARN) == []  # a new component
        stub.add_client_error(
            "list_component_versions",
            service_error_code="AccessDeniedException",
            http_status_code=403,
        )
        with pytest.raises(AccessDeniedError, match=f"component {ARN}: cannot list its versions"):
            component_versions(gg, ARN)


def test_aws_bucket_checks_say_what_to_do() -> None:
    s3 = _client("s3")
    profile = AwsProfile(Settings(backend="aws"))
    with Stubber(s3) as stub:
        stub.add_client_error("head_bucket", service_error_code="404", http_status_code=404)
        with pytest.raises(
            ConfigurationError, match="artifact bucket b does not exist; pass --bucket"
        ):
            profile.ensure_bucket(s3, "b", "123456789012")
        stub.add_client_error("head_bucket", service_error_code="403", http_status_code=403)
        with pytest.raises(AwsServiceError, match="artifact bucket b: cannot read it.*--bucket"):
            profile.ensure_bucket(s3, "b", "123456789012")


def test_local_bucket_is_created_when_missing() -> None:
    s3 = _client("s3")
    profile = LocalProfile(Settings(backend="local"))
    with Stubber(s3) as stub:
        stub.add_client_error("head_bucket", service_error_code="404", http_status_code=404)
        stub.add_response("create_bucket", {}, {"Bucket": "b"})
        assert profile.ensure_bucket(s3, "b", "123456789012") == "b"
