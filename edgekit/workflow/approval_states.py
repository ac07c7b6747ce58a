"""Building blocks of the deploy-on-approval state machine (Amazon States Language).

``sdk_task`` (an ``arn:aws:states:::aws-sdk:`` Task), ``fail`` (a Fail state with a fixed
or computed cause) and ``device_states``: the Map iteration that reads one device's
effective deployments (Greengrass ``ListEffectiveDeployments``) and says whether the
deployment SUCCEEDED, FAILED (or was rejected, canceled, timed out) or is PENDING there.
"""

from __future__ import annotations

from typing import Any

AWS_SDK = "arn:aws:states:::aws-sdk:"
#: A device's Greengrass execution states that end a deployment on it unsuccessfully.
DEVICE_FAILURES = ("FAILED", "TIMED_OUT", "REJECTED", "CANCELED")


def sdk_task(
    service: str, action: str, parameters: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": f"{AWS_SDK}{service}:{action}",
        "Parameters": parameters,
        **fields,
    }


def fail(error: str, cause: str | None = None, cause_path: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"Type": "Fail", "Error": error}
    if cause_path is not None:
        state["CausePath"] = cause_path
    else:
        state["Cause"] = cause
    return state


def device_states() -> dict[str, Any]:
    """The Map iteration for one device: its Greengrass state for this deployment."""
    checks = {
        "succeeded.$": "States.ArrayContains($.keys, States.Format('{}=SUCCEEDED', $.deploymentId))"
    }
    for status in DEVICE_FAILURES:
        checks[f"{status.lower()}.$"] = (
            f"States.ArrayContains($.keys, States.Format('{{}}={status}', $.deploymentId))"
        )
    failed = [{"Variable": f"$.check.{s.lower()}", "BooleanEquals": True} for s in DEVICE_FAILURES]
    return {
        "StartAt": "ListEffectiveDeployments",
        "States": {
            "ListEffectiveDeployments": sdk_task(
                "greengrassv2",
                "listEffectiveDeployments",
                {"CoreDeviceThingName.$": "$.thing"},
                ResultSelector={"effective.$": "$.EffectiveDeployments"},
                ResultPath="$.listed",
                Next="DeploymentKeys",
            ),
            "DeploymentKeys": {
                "Type": "Map",
                "ItemsPath": "$.listed.effective",
                "ItemSelector": {
                    "key.$": "States.Format('{}={}', $$.Map.Item.Value.DeploymentId, "
                    "$$.Map.Item.Value.CoreDeviceExecutionStatus)"
                },
                "ItemProcessor": {
                    "StartAt": "Key",
                    "States": {"Key": {"Type": "Pass", "OutputPath": "$.key", "End": True}},
                },
                "ResultPath": "$.keys",
                "Next": "CheckDevice",
            },
            "CheckDevice": {
                "Type": "Pass",
                "Parameters": checks,
                "ResultPath": "$.check",
                "Next": "DeviceState",
            },
            "DeviceState": {
                "Type": "Choice",
                "Choices": [
                    {"Or": failed, "Next": "DeviceFailed"},
                    {
                        "Variable": "$.check.succeeded",
                        "BooleanEquals": True,
                        "Next": "DeviceSucceeded",
                    },
                ],
                "Default": "DevicePending",
            },
            "DeviceFailed": {
                "Type": "Pass",
                "Parameters": {"thing.$": "$.thing", "state": "FAILED"},
                "End": True,
            },
            "DeviceSucceeded": {
                "Type": "Pass",
                "Parameters": {"thing.$": "$.thing", "state": "SUCCEEDED"},
                "End": True,
            },
            "DevicePending": {
                "Type": "Pass",
                "Parameters": {"thing.$": "$.thing", "state": "PENDING"},
                "End": True,
            },
        },
    }


__all__ = ["AWS_SDK", "DEVICE_FAILURES", "device_states", "fail", "sdk_task"]
