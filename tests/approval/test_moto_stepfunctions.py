"""edgekit.local.moto_stepfunctions in-process (moto's decorator, no server).

An approval with plain boto3 starts the rule's state machine (SageMaker's event through
EventBridge), the customer metadata survives an UpdateModelPackage that leaves it out,
and the moto snapshot saves executions (their history kept, a running one ABORTED).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from edgekit.local import moto_stepfunctions
from edgekit.local.moto_backends import dump_backends, restore_backends

REGION = "us-east-1"
PATTERN = {
    "source": ["aws.sagemaker"],
    "detail-type": ["SageMaker Model Package State Change"],
    "detail": {"ModelPackageGroupName": ["g"], "ModelApprovalStatus": ["Approved"]},
}


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    moto_stepfunctions.install(moto_port=1, greengrass_port_file=None)
    with mock_aws():
        yield {
            s: boto3.client(s, region_name=REGION) for s in ("events", "stepfunctions", "sagemaker")
        }


def machine(sfn: Any, definition: dict[str, Any]) -> str:
    return str(
        sfn.create_state_machine(
            name=f"m{time.monotonic_ns()}",
            definition=json.dumps(definition),
            roleArn="arn:aws:iam::123456789012:role/r",
        )["stateMachineArn"]
    )


PASS = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}


def wait_done(sfn: Any, arn: str) -> dict[str, Any]:
    for _ in range(200):
        done = sfn.describe_execution(executionArn=arn)
        if done["status"] != "RUNNING":
            return dict(done)
        time.sleep(0.02)
    raise AssertionError(f"{arn} still running")


def test_an_approval_starts_the_rules_state_machine_and_keeps_the_metadata(
    aws: dict[str, Any],
) -> None:
    sfn, events, sm = aws["stepfunctions"], aws["events"], aws["sagemaker"]
    arn = machine(sfn, PASS)
    events.put_rule(Name="approved", EventPattern=json.dumps(PATTERN), State="ENABLED")
    events.put_targets(Rule="approved", Targets=[{"Id": "sfn", "Arn": arn}])
    sm.create_model_package_group(ModelPackageGroupName="g")
    package = sm.create_model_package(
        ModelPackageGroupName="g",
        ModelApprovalStatus="PendingManualApproval",
        SourceUri="s3://b/k",
        CustomerMetadataProperties={"edgekit:sha256": "abc"},
    )["ModelPackageArn"]
    assert sfn.list_executions(stateMachineArn=arn)["executions"] == []
    sm.update_model_package(ModelPackageArn=package, ModelApprovalStatus="Approved")
    [execution] = sfn.list_executions(stateMachineArn=arn)["executions"]
    event = json.loads(wait_done(sfn, execution["executionArn"])["input"])
    assert event["source"] == "aws.sagemaker"
    assert event["detail"]["ModelPackageArn"] == package
    assert event["detail"]["ModelApprovalStatus"] == "Approved"
    described = sm.describe_model_package(ModelPackageName=package)
    assert described["CustomerMetadataProperties"] == {"edgekit:sha256": "abc"}
    # Approving again changes nothing: no second execution.
    sm.update_model_package(ModelPackageArn=package, ModelApprovalStatus="Approved")
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 1


def test_a_rule_with_a_queue_and_a_state_machine_target_serves_both(aws: dict[str, Any]) -> None:
    sfn, events = aws["stepfunctions"], aws["events"]
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="q")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    arn = machine(sfn, PASS)
    events.put_rule(Name="both", EventPattern=json.dumps({"source": ["me"]}), State="ENABLED")
    events.put_targets(
        Rule="both",
        Targets=[
            {"Id": "sfn", "Arn": arn},
            {"Id": "q", "Arn": queue_arn["Attributes"]["QueueArn"]},
        ],
    )
    events.put_events(Entries=[{"Source": "me", "DetailType": "t", "Detail": "{}"}])
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 1
    assert sqs.receive_message(QueueUrl=queue).get("Messages")


def test_the_snapshot_saves_executions_with_their_history(aws: dict[str, Any]) -> None:
    sfn = aws["stepfunctions"]
    done_arn = machine(sfn, PASS)
    done = sfn.start_execution(stateMachineArn=done_arn)["executionArn"]
    wait_done(sfn, done)
    before = sfn.get_execution_history(executionArn=done)["events"]
    waiting = machine(
        sfn, {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 30, "End": True}}}
    )
    running = sfn.start_execution(stateMachineArn=waiting)["executionArn"]
    payload, services = dump_backends()
    assert "stepfunctions" in services
    restore_backends(bytes(payload), "test")
    assert sfn.get_execution_history(executionArn=done)["events"] == before
    assert sfn.describe_execution(executionArn=done)["status"] == "SUCCEEDED"
    assert sfn.describe_execution(executionArn=running)["status"] == "ABORTED"


def test_executions_started_without_a_name_get_distinct_names(aws: dict[str, Any]) -> None:
    sfn = aws["stepfunctions"]
    arn = machine(sfn, PASS)
    first = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    second = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    assert first != second and not first.endswith(":None")


SHA = "a" * 64
SINCE = "2026-12-06T05:00:00Z"


def _reported(**changes: Any) -> dict[str, Any]:
    reported = {
        "thing_name": "t",
        "timestamp": "2026-12-06T05:00:07.250Z",
        "started_at": "2026-12-06T05:00:01.000Z",
        "health_state": "running",
        "problem": None,
        "model_name": "scratch-detector",
        "model_version": "1.0.1",
        "package_sha256": SHA,
        "key_fingerprint": "SHA256:k",
        "results_published": 3,
        "model_state": "running",
    }
    reported.update(changes)
    return reported


# (the device's edgekit-health shadow, reported state; None: no shadow) -> state, problem
PROOF_CASES: list[tuple[dict[str, Any] | None, str, str]] = [
    (None, "PENDING", "no edgekit-health shadow yet"),
    (_reported(package_sha256=None, model_name=None), "PENDING", "reports no current model"),
    (_reported(package_sha256="b" * 64), "PENDING", f"sha256 {'b' * 64} (scratch-detector"),
    (_reported(results_published=2), "PENDING", "2 of 3 results published"),
    (_reported(timestamp="2026-12-06T04:59:59Z"), "PENDING", "older than this execution"),
    (_reported(), "PROVEN", ""),
    (_reported(results_published=40, timestamp=SINCE), "PROVEN", ""),
]


def test_a_devices_proof_is_read_from_its_health_shadow(aws: dict[str, Any]) -> None:
    """The deploy-on-approval proof of one device, through ``aws-sdk:iotdataplane``: its
    shadow's payload comes back as text, ``IotDataPlane.ResourceNotFoundException`` when
    there is none (the names Step Functions uses on AWS)."""
    from edgekit.workflow.approval_proof import device_proof_states

    sfn = aws["stepfunctions"]
    iot = boto3.client("iot", region_name=REGION)
    data = boto3.client("iot-data", region_name=REGION)
    arn = machine(sfn, device_proof_states())
    runs = []
    for n, (reported, _, _) in enumerate(PROOF_CASES):
        thing = f"t{n}"
        iot.create_thing(thingName=thing)
        if reported is not None:
            data.update_thing_shadow(
                thingName=thing,
                shadowName="edgekit-health",
                payload=json.dumps({"state": {"reported": reported}}).encode(),
            )
        state_input = {
            "thing": thing,
            "sha256": SHA,
            "minResults": 3,
            "shadowName": "edgekit-health",
            "since": SINCE,
        }
        runs.append(
            sfn.start_execution(stateMachineArn=arn, input=json.dumps(state_input))["executionArn"]
        )
    for n, (run, (_, state, problem)) in enumerate(zip(runs, PROOF_CASES, strict=True)):
        done = wait_done(sfn, run)
        assert done["status"] == "SUCCEEDED", done
        output = json.loads(done["output"])
        assert output["thing"] == f"t{n}"
        assert output["state"] == state, output
        assert problem in output.get("problem", ""), output


def test_the_execution_start_time_is_an_aws_timestamp_string(aws: dict[str, Any]) -> None:
    """``$$.Execution.StartTime`` reads as on AWS (``2026-12-06T05:30:00.123Z``) and compares
    in a Choice rule with a time that has microseconds and one with an offset."""
    sfn = aws["stepfunctions"]
    definition = {
        "StartAt": "Start",
        "States": {
            "Start": {
                "Type": "Pass",
                "Parameters": {"start.$": "$$.Execution.StartTime"},
                "Next": "Compare",
            },
            "Compare": {
                "Type": "Choice",
                "Choices": [
                    {
                        "And": [
                            {"Variable": "$.start", "IsTimestamp": True},
                            {
                                "Variable": "$.start",
                                "TimestampGreaterThan": "2026-01-01T00:00:00.000001Z",
                            },
                            {
                                "Variable": "$.start",
                                "TimestampLessThan": "2999-01-01T00:00:00+02:00",
                            },
                        ],
                        "Next": "Yes",
                    }
                ],
                "Default": "No",
            },
            "Yes": {"Type": "Pass", "Result": "compared", "ResultPath": "$.verdict", "End": True},
            "No": {"Type": "Fail", "Error": "NotCompared"},
        },
    }
    run = sfn.start_execution(stateMachineArn=machine(sfn, definition))["executionArn"]
    done = wait_done(sfn, run)
    assert done["status"] == "SUCCEEDED", done
    output = json.loads(done["output"])
    assert output["verdict"] == "compared"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", output["start"]), output
