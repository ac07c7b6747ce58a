"""The deploy-on-approval workflow's proof of inspection: each device's health shadow.

Greengrass reporting the deployment SUCCEEDED on every device means the components'
lifecycle steps ran, not that the devices inspect with the new package. ``edgekit deploy
--wait`` proves the latter from the health and results messages (MQTT,
:mod:`edgekit.deploy.proof`); a state machine cannot subscribe to MQTT, so the inference
app also writes a flat summary of its health to the named shadow ``edgekit-health`` of its
thing (:mod:`edgekit.edge.health_shadow`), which these states read with IoT's
``GetThingShadow``. A device is PROVEN when its shadow's reported state

- names the approved package's sha256 as the current model's ``package_sha256``;
- counts at least ``MinResults`` results published with it by the app's current run
  (``results_published``);
- was written at or after the execution started (``timestamp``), so an old shadow of a
  device that ran the same package before cannot prove a new execution.

Otherwise the device is PENDING with the reason (no shadow yet, another package, too few
results, an old report); the loop looks again every ``PollSeconds`` up to ``MaxPolls``
times, then fails ``NotProven`` naming each device and its reason. What this does not
check, compared with ``edgekit deploy --wait``: that the results reached the cloud (the
app counts a result when PublishToIoTCore returned), and the agent's key fingerprint.
"""

from __future__ import annotations

from typing import Any

from edgekit.workflow.approval_states import fail, sdk_task

#: The error Step Functions raises for GetThingShadow on a thing without that shadow.
SHADOW_NOT_FOUND = "IotDataPlane.ResourceNotFoundException"
_REPORTED = "$.health.reported"


def _pending(problem: str, *values: str) -> dict[str, Any]:
    """A Pass state that ends one device's iteration as PENDING with ``problem``."""
    cause = f"States.Format('{problem}', {', '.join(values)})" if values else None
    parameters: dict[str, Any] = {"thing.$": "$.thing", "state": "PENDING"}
    if cause:
        parameters["problem.$"] = cause
    else:
        parameters["problem"] = problem
    return {"Type": "Pass", "Parameters": parameters, "End": True}


#: Every field the checks and messages read, for a shadow that lacks some (a JSON null in
#: an update deletes a field from a shadow): merged under the reported state.
REPORTED_DEFAULTS: dict[str, Any] = {
    "health_state": "-",
    "problem": "-",
    "model_name": "-",
    "model_version": "-",
    "package_sha256": "",
    "results_published": 0,
    "started_at": "-",
    "timestamp": "1970-01-01T00:00:00Z",
}


def device_proof_states() -> dict[str, Any]:
    """The Map iteration for one device: PROVEN, or PENDING with the reason."""
    reported = _REPORTED
    return {
        "StartAt": "ReadHealthShadow",
        "States": {
            "ReadHealthShadow": sdk_task(
                "iotdataplane",
                "getThingShadow",
                {"ThingName.$": "$.thing", "ShadowName.$": "$.shadowName"},
                ResultSelector={"document.$": "States.StringToJson($.Payload)"},
                ResultPath="$.shadow",
                Catch=[
                    {
                        "ErrorEquals": [SHADOW_NOT_FOUND],
                        "ResultPath": "$.error",
                        "Next": "NoHealthShadow",
                    }
                ],
                Next="HasReportedState",
            ),
            "NoHealthShadow": _pending(
                "no {} shadow yet: the inference app has not reported its health",
                "$.shadowName",
            ),
            "HasReportedState": {
                "Type": "Choice",
                "Choices": [
                    {
                        "Variable": "$.shadow.document.state.reported",
                        "IsPresent": True,
                        "Next": "ReportedDefaults",
                    }
                ],
                "Default": "NoReportedState",
            },
            "NoReportedState": _pending("its {} shadow has no reported state", "$.shadowName"),
            "ReportedDefaults": {
                "Type": "Pass",
                "Result": REPORTED_DEFAULTS,
                "ResultPath": "$.defaults",
                "Next": "HealthFields",
            },
            "HealthFields": {
                "Type": "Pass",
                "Parameters": {
                    "reported.$": "States.JsonMerge($.defaults, "
                    "$.shadow.document.state.reported, false)"
                },
                "ResultPath": "$.health",
                "Next": "CheckHealth",
            },
            "CheckHealth": {
                "Type": "Choice",
                "Choices": [
                    {
                        "Not": {"Variable": f"{reported}.package_sha256", "IsString": True},
                        "Next": "NoCurrentModel",
                    },
                    {
                        "Variable": f"{reported}.package_sha256",
                        "StringEquals": "",
                        "Next": "NoCurrentModel",
                    },
                    {
                        "Not": {
                            "Variable": f"{reported}.package_sha256",
                            "StringEqualsPath": "$.sha256",
                        },
                        "Next": "OtherPackage",
                    },
                    {
                        "Not": {"Variable": f"{reported}.results_published", "IsNumeric": True},
                        "Next": "TooFewResults",
                    },
                    {
                        "Variable": f"{reported}.results_published",
                        "NumericLessThanPath": "$.minResults",
                        "Next": "TooFewResults",
                    },
                    {
                        "Not": {"Variable": f"{reported}.timestamp", "IsTimestamp": True},
                        "Next": "OldReport",
                    },
                    {
                        "Variable": f"{reported}.timestamp",
                        "TimestampLessThanPath": "$.since",
                        "Next": "OldReport",
                    },
                ],
                "Default": "DeviceProven",
            },
            "NoCurrentModel": _pending(
                "health (state {}, problem {}) reports no current model",
                f"{reported}.health_state",
                f"{reported}.problem",
            ),
            "OtherPackage": _pending(
                "health reports package sha256 {} ({} {}), not the approved {}",
                f"{reported}.package_sha256",
                f"{reported}.model_name",
                f"{reported}.model_version",
                "$.sha256",
            ),
            "TooFewResults": _pending(
                "{} of {} results published with the approved package by the current run "
                "of the app (started {})",
                f"{reported}.results_published",
                "$.minResults",
                f"{reported}.started_at",
            ),
            "OldReport": _pending(
                "its last health report ({}) is older than this execution ({})",
                f"{reported}.timestamp",
                "$.since",
            ),
            "DeviceProven": {
                "Type": "Pass",
                "Parameters": {
                    "thing.$": "$.thing",
                    "state": "PROVEN",
                    "results.$": f"{reported}.results_published",
                    "reportedAt.$": f"{reported}.timestamp",
                },
                "End": True,
            },
        },
    }


def proof_states(done: str) -> dict[str, Any]:
    """The top-level states of the proof loop; it starts at ``StartProof`` and goes to
    ``done`` when every device of the thing group is PROVEN."""
    return {
        "StartProof": {
            "Type": "Pass",
            "Parameters": {"value": 0, "since.$": "$$.Execution.StartTime"},
            "ResultPath": "$.proofPolls",
            "Next": "DeviceProofs",
        },
        "DeviceProofs": {
            "Type": "Map",
            "ItemsPath": "$.members.things",
            "ItemSelector": {
                "thing.$": "$$.Map.Item.Value",
                "sha256.$": "$.model.sha256",
                "minResults.$": "$.config.minResults",
                "shadowName.$": "$.config.healthShadow",
                "since.$": "$.proofPolls.since",
            },
            "ItemProcessor": device_proof_states(),
            "ResultPath": "$.proofs",
            "Next": "ProofSummary",
        },
        "ProofSummary": {
            "Type": "Pass",
            "Parameters": {"pending.$": "States.ArrayContains($.proofs[*].state, 'PENDING')"},
            "ResultPath": "$.proofSummary",
            "Next": "AllProven",
        },
        "AllProven": {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.proofSummary.pending", "BooleanEquals": True},
                        {
                            "Variable": "$.proofPolls.value",
                            "NumericGreaterThanEqualsPath": "$.config.maxPolls",
                        },
                    ],
                    "Next": "NotProven",
                },
                {
                    "Variable": "$.proofSummary.pending",
                    "BooleanEquals": True,
                    "Next": "CountProofPoll",
                },
            ],
            "Default": done,
        },
        "CountProofPoll": {
            "Type": "Pass",
            "Parameters": {
                "value.$": "States.MathAdd($.proofPolls.value, 1)",
                "since.$": "$.proofPolls.since",
            },
            "ResultPath": "$.proofPolls",
            "Next": "WaitForProof",
        },
        "WaitForProof": {
            "Type": "Wait",
            "SecondsPath": "$.config.pollSeconds",
            "Next": "DeviceProofs",
        },
        "NotProven": fail(
            "NotProven",
            cause_path="States.Format('deployment {} of {} {} SUCCEEDED in Greengrass, but "
            "not every device proved it inspects with the approved package (sha256 {}) after "
            "{} looks: {}. Look at the PENDING devices: `edgekit deploy --wait` redeploys the "
            "same versions and shows each device proof with the log tail of a failing "
            "component', $.deployment.id, $.config.modelComponent, $.next.version, "
            "$.model.sha256, $.proofPolls.value, States.JsonToString($.proofs))",
        ),
    }


__all__ = [
    "REPORTED_DEFAULTS",
    "SHADOW_NOT_FOUND",
    "device_proof_states",
    "proof_states",
]
