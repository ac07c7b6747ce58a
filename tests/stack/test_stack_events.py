"""A refused CloudFormation call becomes one edgekit error naming the stack (Stubber)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from edgekit.errors import AccessDeniedError, StackError
from edgekit.stack import delete_stack, empty_bucket, stack_outputs, stack_status


def _client(service: str) -> Any:
    return boto3.client(
        service,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (
            "AccessDenied",
            "not authorized to perform cloudformation:DescribeStacks",
            AccessDeniedError,
        ),
        ("ValidationError", "1 validation error detected", StackError),
        # Not-found answers to a stack call are about something the stack names.
        ("ResourceNotFoundException", "role gone", StackError),
    ],
)
def test_describe_errors_are_mapped(code: str, message: str, expected: type[Exception]) -> None:
    cfn = _client("cloudformation")
    with Stubber(cfn) as stub:
        stub.add_client_error("describe_stacks", service_error_code=code, service_message=message)
        with pytest.raises(
            expected, match=f"stack dev: cannot describe it: {code}: {message}"
        ) as info:
            stack_status("dev", client=cfn)
    if isinstance(info.value, StackError):
        assert info.value.stack == "dev"
        assert info.value.reason == message
    else:
        assert info.value.code == code and "IAM permissions" in str(info.value)


def test_an_absent_stack_is_none_or_says_what_to_do() -> None:
    cfn = _client("cloudformation")
    gone = {
        "service_error_code": "ValidationError",
        "service_message": "Stack with id dev does not exist",
    }
    with Stubber(cfn) as stub:
        stub.add_client_error("describe_stacks", **gone)
        stub.add_client_error("describe_stacks", **gone)
        assert stack_status("dev", client=cfn) is None
        with pytest.raises(StackError, match="stack dev does not exist; deploy it first"):
            stack_outputs("dev", client=cfn)
        stub.add_client_error("describe_stacks", **gone)
        assert delete_stack("dev", client=cfn, progress=False) is False


def test_empty_bucket_reads_every_page_and_kind() -> None:
    """Versions and delete markers, over several pages, all go; a missing bucket is fine."""
    s3 = _client("s3")
    with Stubber(s3) as stub:
        stub.add_response(
            "list_object_versions",
            {"Versions": [{"Key": "a", "VersionId": "1"}], "IsTruncated": True,
             "NextKeyMarker": "a", "NextVersionIdMarker": "1"},
        )  # fmt: skip
        stub.add_response(
            "list_object_versions",
            {"Versions": [{"Key": "b", "VersionId": "2"}], "IsTruncated": False},
        )
        stub.add_response("delete_objects", {})
        stub.add_response(
            "list_object_versions",
            {"DeleteMarkers": [{"Key": "a", "VersionId": "3"}], "IsTruncated": False},
        )
        stub.add_response("delete_objects", {})
        assert empty_bucket(s3, "bucket") == 3
        stub.add_client_error("list_object_versions", service_error_code="NoSuchBucket")
        assert empty_bucket(s3, "bucket") == 0
        stub.add_client_error(
            "list_object_versions", service_error_code="AccessDenied", http_status_code=403
        )
        with pytest.raises(AccessDeniedError, match="bucket bucket: cannot empty it"):
            empty_bucket(s3, "bucket")
