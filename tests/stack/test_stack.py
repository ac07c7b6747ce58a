"""edgekit.stack units: parameter checks before AWS, failure reports, the AWS rollback path.

The rollback path (resources failing asynchronously, the stack ending in
ROLLBACK_COMPLETE) is what AWS does and moto does not emulate, so it is driven here by
botocore's Stubber, which checks every request against the CloudFormation API model.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from edgekit.errors import EdgekitError
from edgekit.settings import Settings
from edgekit.stack import (
    DEFAULT_TEMPLATE,
    StackError,
    deploy_stack,
    device_parameters,
    first_failure,
    load_template,
    template_parameters,
    validate_parameters,
)

ARN = "arn:aws:cloudformation:us-east-1:123456789012"
STACK_ID = f"{ARN}:stack/dev/0a1b2c3d-0000-0000-0000-000000000000"
CS_ID = f"{ARN}:changeSet/cs/0a1b2c3d-0000-0000-0000-000000000001"


@pytest.fixture
def cfn() -> Any:
    return boto3.client(
        "cloudformation",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_stack_error_is_an_edgekit_error() -> None:
    assert issubclass(StackError, EdgekitError)


def test_unknown_parameter_is_named() -> None:
    declared = template_parameters(DEFAULT_TEMPLATE)
    with pytest.raises(StackError, match="unknown parameter.*ThingNmae") as info:
        validate_parameters(declared, {"ThingNmae": "x"}, template="t.yaml")
    assert "ThingName" in str(info.value)  # the known names are listed


def test_missing_required_parameter_is_named() -> None:
    declared = {"Bucket": {"Type": "String"}, "Size": {"Type": "Number", "Default": 1}}
    with pytest.raises(StackError, match="missing required parameter.*Bucket"):
        validate_parameters(declared, {}, template="t.yaml")
    # an existing stack keeps its previous value
    assert validate_parameters(declared, {}, existing=["Bucket"]) == [
        {"ParameterKey": "Bucket", "UsePreviousValue": True}
    ]


def test_values_are_checked_against_the_template() -> None:
    declared = template_parameters(DEFAULT_TEMPLATE)
    with pytest.raises(StackError, match="InstanceType='t2.nano' is not one of"):
        validate_parameters(declared, {"InstanceType": "t2.nano"})
    with pytest.raises(StackError, match="ThingName='bad name' does not match"):
        validate_parameters(declared, {"ThingName": "bad name"})
    with pytest.raises(StackError, match="not a number"):
        validate_parameters({"N": {"Type": "Number"}}, {"N": "ten"})
    assert validate_parameters(declared, {"ThingName": "core-1", "InstanceType": "t3.large"}) == [
        {"ParameterKey": "ThingName", "ParameterValue": "core-1"},
        {"ParameterKey": "InstanceType", "ParameterValue": "t3.large"},
    ]


def test_device_parameters_follow_settings() -> None:
    settings = Settings(project_name="demo", thing_group="line-1", results_topic="qi/results")
    assert device_parameters(settings, ThingName="cam-7") == {
        "ProjectName": "demo",
        "ThingGroupName": "line-1",
        "TopicPrefix": "qi",
        "ThingName": "cam-7",
    }


def test_bad_templates_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="missing.yaml: cannot read"):
        load_template(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("Resources: [unclosed\n")
    with pytest.raises(StackError, match="bad.yaml: not a valid CloudFormation template"):
        load_template(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("Parameters: {}\n")
    with pytest.raises(StackError, match="no Resources section"):
        load_template(empty)


def test_parameter_errors_come_before_any_call(cfn: Any) -> None:
    with Stubber(cfn) as stub:  # no responses queued: any call would fail the test
        with pytest.raises(StackError, match="unknown parameter"):
            deploy_stack("dev", DEFAULT_TEMPLATE, {"Nope": "1"}, client=cfn, progress=False)
        with pytest.raises(StackError, match="stack name 'bad_name'"):
            deploy_stack("bad_name", DEFAULT_TEMPLATE, {}, client=cfn, progress=False)
        stub.assert_no_pending_responses()


def _event(n: int, logical: str, rtype: str, status: str, reason: str = "") -> dict[str, Any]:
    event = {
        "StackId": STACK_ID,
        "EventId": f"event-{n}",
        "StackName": "dev",
        "LogicalResourceId": logical,
        "PhysicalResourceId": "",
        "ResourceType": rtype,
        "Timestamp": dt.datetime(2026, 1, 1, 0, 0, n, tzinfo=dt.UTC),
        "ResourceStatus": status,
    }
    if reason:
        event["ResourceStatusReason"] = reason
    return event


def test_first_failure_skips_cancellations() -> None:
    events = [
        _event(1, "Bucket", "AWS::S3::Bucket", "CREATE_FAILED", "Resource creation cancelled"),
        _event(2, "Role", "AWS::IAM::Role", "CREATE_FAILED", "Role already exists"),
        _event(3, "dev", "AWS::CloudFormation::Stack", "ROLLBACK_IN_PROGRESS", "failed"),
    ]
    assert first_failure(events, "dev")["LogicalResourceId"] == "Role"
    assert first_failure(events[:1], "dev")["LogicalResourceId"] == "Bucket"
    assert first_failure(events[2:], "dev") is None


def test_failed_create_reports_the_resource_and_what_to_do(cfn: Any, tmp_path: Path) -> None:
    template = tmp_path / "t.yaml"
    template.write_text(
        "Resources:\n"
        "  Role:\n"
        "    Type: AWS::IAM::Role\n"
        "    Properties:\n"
        "      AssumeRolePolicyDocument: {}\n"
    )
    missing = {"Error": {"Code": "ValidationError", "Message": "Stack with id dev does not exist"}}
    failed_events = [
        _event(4, "dev", "AWS::CloudFormation::Stack", "ROLLBACK_COMPLETE"),
        _event(3, "dev", "AWS::CloudFormation::Stack", "ROLLBACK_IN_PROGRESS", "failed: [Role]"),
        _event(2, "Role", "AWS::IAM::Role", "CREATE_FAILED", "Role dev-role already exists"),
        _event(1, "dev", "AWS::CloudFormation::Stack", "CREATE_IN_PROGRESS", "User Initiated"),
        _event(0, "dev", "AWS::CloudFormation::Stack", "REVIEW_IN_PROGRESS", "User Initiated"),
    ]
    stack = {
        "StackId": STACK_ID,
        "StackName": "dev",
        "CreationTime": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "StackStatus": "ROLLBACK_COMPLETE",
    }
    with Stubber(cfn) as stub:
        stub.add_client_error(
            "describe_stacks",
            service_error_code="ValidationError",
            service_message=missing["Error"]["Message"],
        )
        stub.add_response(
            "create_change_set",
            {"Id": CS_ID, "StackId": STACK_ID},
            {
                "StackName": "dev",
                "ChangeSetName": ANY,
                "ChangeSetType": "CREATE",
                "TemplateBody": template.read_text(),
                "Parameters": [],
                "Capabilities": ["CAPABILITY_NAMED_IAM"],
                "Description": "edgekit deploy",
            },
        )
        stub.add_response(
            "describe_change_set",
            {
                "ChangeSetId": CS_ID,
                "StackId": STACK_ID,
                "Status": "CREATE_COMPLETE",
                "Changes": [
                    {
                        "Type": "Resource",
                        "ResourceChange": {
                            "Action": "Add",
                            "LogicalResourceId": "Role",
                            "ResourceType": "AWS::IAM::Role",
                        },
                    }
                ],
            },
            {"ChangeSetName": CS_ID},
        )
        stub.add_response(
            "describe_stack_events", {"StackEvents": failed_events[-1:]}, {"StackName": STACK_ID}
        )
        stub.add_response("execute_change_set", {}, {"ChangeSetName": CS_ID})
        stub.add_response(
            "describe_stack_events", {"StackEvents": failed_events}, {"StackName": STACK_ID}
        )
        stub.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": STACK_ID})
        stub.add_response(
            "describe_stack_events", {"StackEvents": failed_events}, {"StackName": STACK_ID}
        )
        with pytest.raises(StackError) as info:
            deploy_stack("dev", template, {}, client=cfn, progress=False)
        stub.assert_no_pending_responses()
    error = info.value
    assert (error.logical_id, error.resource_type, error.status) == (
        "Role",
        "AWS::IAM::Role",
        "ROLLBACK_COMPLETE",
    )
    assert error.reason == "Role dev-role already exists"
    assert "edgekit stack delete --name dev" in str(error)
