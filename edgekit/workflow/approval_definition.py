"""The deploy-on-approval state machine's definition (Amazon States Language), built here.

``cloudformation/deploy-on-approval.asl.json`` is the output of :func:`build_definition`
(``tests/approval`` fails when they differ; :func:`write_definition` rewrites the file).
Building it from the recipe templates is what keeps the state machine's model recipe the
same as the one ``edgekit components publish`` renders: the model template
(``component/com.qualityinspection.model/recipe.yaml``) becomes a Pass state whose
Parameters are the recipe, each ``@@PLACEHOLDER@@`` string a ``States.Format`` over
``$.recipeParts`` (the literal text around the placeholders, kept in a Pass state's
Result so no intrinsic-function escaping is needed: recipe variables such as
``{artifacts:path}`` contain braces) and the values the workflow read from the registry.

One value differs by design: ``components publish`` copies the package to
``s3://<bucket>/edgekit/components/<component>/<version>/<file>``, the state machine uses
the package where the registry points (``edgekit:package-s3-uri``, content-addressed by
its sha256), since States Language cannot cut an S3 URI into bucket and key for a copy.
So the recipe's artifact URI is the registry's URI; every other field is the template's.

The deployment resets the same configuration keys as ``edgekit deploy``
(:func:`edgekit.components.generated_configuration`) with the same policies
(``edgekit.deploy.DEPLOYMENT_POLICIES``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgekit.components.templates import Template
from edgekit.deploy.create import DEPLOYMENT_POLICIES
from edgekit.files import write_text_atomic
from edgekit.resources import resource_path
from edgekit.workflow.approval_proof import proof_states
from edgekit.workflow.approval_recipe import recipe_states
from edgekit.workflow.approval_states import device_states, fail, sdk_task

#: The runtime of a registered version whose metadata does not name one (registered before
#: edgekit recorded it: every such package ran on ONNX Runtime).
DEFAULT_RUNTIME = "onnxruntime"

DEFINITION_FILE = "deploy-on-approval.asl.json"
TEMPLATE_FILE = "deploy-on-approval.yaml"
#: The role of each component in the DefinitionSubstitutions of the template.
SUBSTITUTIONS = {
    "model": "ModelComponent",
    "agent": "AgentComponent",
    "inference": "InferenceComponent",
}


def definition_path() -> Path:
    return resource_path("cloudformation", DEFINITION_FILE, must_exist=False)


def template_path() -> Path:
    return resource_path("cloudformation", TEMPLATE_FILE, must_exist=False)


def _latest(service_arn: str, result: str, next_state: str) -> dict[str, Any]:
    return sdk_task(
        "greengrassv2",
        "listComponentVersions",
        {"Arn.$": service_arn},
        ResultSelector={"versions.$": "$.ComponentVersions"},
        ResultPath=result,
        Next=next_state,
    )


def _deployment_components(folder: Path | None) -> dict[str, Any]:
    versions = {
        "model": "$.next.version",
        "agent": "$.latest.agent.ComponentVersion",
        "inference": "$.latest.inference.ComponentVersion",
    }
    components: dict[str, Any] = {}
    for role, key in SUBSTITUTIONS.items():
        spec: dict[str, Any] = {"ComponentVersion.$": versions[role]}
        reset = Template.load(role, folder).generated_configuration()
        if reset:
            spec["ConfigurationUpdate"] = {"Reset": reset}
        if role == "agent":
            # After the reset (Greengrass applies Reset, then Merge): the agent version's
            # default names the runtime of the package it was built with, not necessarily
            # the approved one's.
            spec.setdefault("ConfigurationUpdate", {})["Merge.$"] = (
                "States.JsonToString($.agentMerge)"
            )
        components[f"${{{key}}}"] = spec
    return components


def _policies() -> dict[str, Any]:
    def pascal(node: Any) -> Any:
        if isinstance(node, Mapping):
            return {k[:1].upper() + k[1:]: pascal(v) for k, v in node.items()}
        return node

    return dict(pascal(DEPLOYMENT_POLICIES))


def build_definition(templates_dir: str | Path | None = None) -> dict[str, Any]:
    """The state machine, from the recipe templates (default: the installed ones)."""
    folder = Path(templates_dir) if templates_dir is not None else None
    parts, recipe = recipe_states(Template.load("model", folder))
    props = "$.approvedPackage.props"
    versions_path = "$.modelVersions.latest.ComponentVersion"
    split_uri = f"States.StringSplit({props}['edgekit:package-s3-uri'], '/')"
    states: dict[str, Any] = {
        "Config": {
            "Type": "Pass",
            "Comment": "The stack's settings (DefinitionSubstitutions)",
            "Parameters": {
                "modelPackageGroup": "${ModelPackageGroup}",
                "thingGroup": "${ThingGroupName}",
                "thingGroupArn": "${ThingGroupArn}",
                "modelComponent": "${ModelComponent}",
                "agentComponent": "${AgentComponent}",
                "inferenceComponent": "${InferenceComponent}",
                "modelComponentArn": "${ModelComponentArn}",
                "agentComponentArn": "${AgentComponentArn}",
                "inferenceComponentArn": "${InferenceComponentArn}",
                "pollSeconds.$": "States.StringToJson('${PollSeconds}')",
                "maxPolls.$": "States.StringToJson('${MaxPolls}')",
                "minResults.$": "States.StringToJson('${MinResults}')",
                "healthShadow": "${HealthShadow}",
            },
            "ResultPath": "$.config",
            "Next": "FindApprovedVersion",
        },
        "FindApprovedVersion": sdk_task(
            "sagemaker",
            "listModelPackages",
            {
                "ModelPackageGroupName.$": "$.config.modelPackageGroup",
                "ModelApprovalStatus": "Approved",
                "SortBy": "CreationTime",
                "SortOrder": "Descending",
                "MaxResults": 1,
            },
            ResultSelector={"list.$": "$.ModelPackageSummaryList"},
            ResultPath="$.approved",
            Next="HasApprovedVersion",
        ),
        "HasApprovedVersion": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.approved.list[0]", "IsPresent": True, "Next": "NewestApproved"}
            ],
            "Default": "NoApprovedVersion",
        },
        "NoApprovedVersion": fail(
            "NoApprovedVersion",
            cause_path="States.Format('model package group {} has no Approved version; approve "
            "one (edgekit registry approve)', $.config.modelPackageGroup)",
        ),
        "NewestApproved": {
            "Type": "Pass",
            "Comment": "moto reads $.list[0].field as a list: take the item first",
            "Parameters": {"first.$": "$.approved.list[0]"},
            "ResultPath": "$.approved",
            "Next": "DescribeApprovedVersion",
        },
        "DescribeApprovedVersion": sdk_task(
            "sagemaker",
            "describeModelPackage",
            {"ModelPackageName.$": "$.approved.first.ModelPackageArn"},
            ResultSelector={
                "arn.$": "$.ModelPackageArn",
                "version.$": "$.ModelPackageVersion",
                "props.$": "$.CustomerMetadataProperties",
            },
            ResultPath="$.approvedPackage",
            Next="IsEdgekitPackage",
        ),
        "IsEdgekitPackage": {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": f"{props}['edgekit:{key}']", "IsPresent": True}
                        for key in ("name", "semver", "sha256", "package-s3-uri")
                    ],
                    "Next": "RegistryDefaults",
                }
            ],
            "Default": "NotAnEdgekitPackage",
        },
        "RegistryDefaults": {
            "Type": "Pass",
            "Comment": "Versions registered before edgekit recorded runtimes ran on ONNX Runtime",
            "Result": {"edgekit:runtime": DEFAULT_RUNTIME},
            "ResultPath": "$.registryDefaults",
            "Next": "RegistryFacts",
        },
        "RegistryFacts": {
            "Type": "Pass",
            "Parameters": {
                "props.$": f"States.JsonMerge($.registryDefaults, {props}, false)",
            },
            "ResultPath": "$.registry",
            "Next": "ModelFacts",
        },
        "NotAnEdgekitPackage": fail(
            "NotAnEdgekitPackage",
            cause_path="States.Format('{} has no edgekit:name, edgekit:semver, edgekit:sha256 "
            "and edgekit:package-s3-uri customer metadata; register it with edgekit registry "
            "register', $.approvedPackage.arn)",
        ),
        "ModelFacts": {
            "Type": "Pass",
            "Parameters": {
                "arn.$": "$.approvedPackage.arn",
                "registryVersion.$": "$.approvedPackage.version",
                "name.$": f"{props}['edgekit:name']",
                "semver.$": f"{props}['edgekit:semver']",
                "sha256.$": f"{props}['edgekit:sha256']",
                "uri.$": f"{props}['edgekit:package-s3-uri']",
                "runtime.$": "$.registry.props['edgekit:runtime']",
                "file.$": f"States.ArrayGetItem({split_uri}, "
                f"States.MathAdd(States.ArrayLength({split_uri}), -1))",
            },
            "ResultPath": "$.model",
            "Next": "AgentRuntimes",
        },
        "AgentRuntimes": {
            "Type": "Pass",
            "Comment": "The agent installs the runtime the approved package needs (ModelRuntimes)",
            "Parameters": {"ModelRuntimes.$": "$.model.runtime"},
            "ResultPath": "$.agentMerge",
            "Next": "ModelVersions",
        },
        "ModelVersions": _latest(
            "$.config.modelComponentArn", "$.modelVersions", "HasModelVersion"
        ),
        "HasModelVersion": {
            "Type": "Choice",
            "Choices": [
                {
                    "Variable": "$.modelVersions.versions[0]",
                    "IsPresent": True,
                    "Next": "LatestModelVersion",
                }
            ],
            "Default": "FirstVersion",
        },
        "FirstVersion": {
            "Type": "Pass",
            "Result": {"version": "1.0.0"},
            "ResultPath": "$.next",
            "Next": "AgentVersions",
        },
        "LatestModelVersion": {
            "Type": "Pass",
            "Parameters": {"latest.$": "$.modelVersions.versions[0]"},
            "ResultPath": "$.modelVersions",
            "Next": "SplitLatestVersion",
        },
        "SplitLatestVersion": {
            "Type": "Pass",
            "Comment": "1.2.3-rc.1+build -> [1.2.3, rc.1]: a pre-release counts as its release",
            "Parameters": {
                "release.$": "States.StringSplit(States.ArrayGetItem("
                f"States.StringSplit({versions_path}, '+'), 0), '-')"
            },
            "ResultPath": "$.next",
            "Next": "VersionNumbers",
        },
        "VersionNumbers": {
            "Type": "Pass",
            "Parameters": {
                "numbers.$": "States.StringSplit($.next.release[0], '.')",
                "parts.$": "States.ArrayLength($.next.release)",
            },
            "ResultPath": "$.next",
            "Next": "IsPrerelease",
        },
        "IsPrerelease": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.next.parts", "NumericGreaterThan": 1, "Next": "ReleaseOfPrerelease"}
            ],
            "Default": "NextPatch",
        },
        "ReleaseOfPrerelease": {
            "Type": "Pass",
            "Parameters": {
                "version.$": "States.Format('{}.{}.{}', $.next.numbers[0], $.next.numbers[1], "
                "$.next.numbers[2])"
            },
            "ResultPath": "$.next",
            "Next": "AgentVersions",
        },
        "NextPatch": {
            "Type": "Pass",
            "Parameters": {
                "version.$": "States.Format('{}.{}.{}', $.next.numbers[0], $.next.numbers[1], "
                "States.MathAdd(States.StringToJson($.next.numbers[2]), 1))"
            },
            "ResultPath": "$.next",
            "Next": "AgentVersions",
        },
        "AgentVersions": _latest(
            "$.config.agentComponentArn", "$.agentVersions", "InferenceVersions"
        ),
        "InferenceVersions": _latest(
            "$.config.inferenceComponentArn", "$.inferenceVersions", "HasAppVersions"
        ),
        "HasAppVersions": {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.agentVersions.versions[0]", "IsPresent": True},
                        {"Variable": "$.inferenceVersions.versions[0]", "IsPresent": True},
                    ],
                    "Next": "LatestAppVersions",
                }
            ],
            "Default": "AppNotPublished",
        },
        "AppNotPublished": fail(
            "AppNotPublished",
            cause_path="States.Format('{} or {} has no version; publish the components first "
            "(edgekit components publish)', $.config.agentComponent, $.config.inferenceComponent)",
        ),
        "LatestAppVersions": {
            "Type": "Pass",
            "Parameters": {
                "agent.$": "$.agentVersions.versions[0]",
                "inference.$": "$.inferenceVersions.versions[0]",
            },
            "ResultPath": "$.latest",
            "Next": "RecipeParts",
        },
        "RecipeParts": {
            "Type": "Pass",
            "Comment": "From the model recipe template (edgekit.workflow.approval_recipe)",
            "Result": parts,
            "ResultPath": "$.recipeParts",
            "Next": "ModelRecipe",
        },
        "ModelRecipe": {
            "Type": "Pass",
            "Comment": "The model recipe template with the registry's values",
            "Parameters": recipe,
            "ResultPath": "$.recipe",
            "Next": "CreateModelComponentVersion",
        },
        "CreateModelComponentVersion": sdk_task(
            "greengrassv2",
            "createComponentVersion",
            {"InlineRecipe.$": "$.recipe"},
            ResultSelector={"arn.$": "$.Arn", "version.$": "$.ComponentVersion"},
            ResultPath="$.created",
            Next="StartComponentPoll",
        ),
        "StartComponentPoll": {
            "Type": "Pass",
            "Result": {"value": 0},
            "ResultPath": "$.componentPolls",
            "Next": "DescribeModelComponent",
        },
        "DescribeModelComponent": sdk_task(
            "greengrassv2",
            "describeComponent",
            {"Arn.$": "$.created.arn"},
            ResultSelector={"state.$": "$.Status.ComponentState"},
            ResultPath="$.component",
            Next="IsDeployable",
        ),
        "IsDeployable": {
            "Type": "Choice",
            "Choices": [
                {
                    "Variable": "$.component.state",
                    "StringEquals": "DEPLOYABLE",
                    "Next": "CreateDeployment",
                },
                {
                    "Variable": "$.component.state",
                    "StringEquals": "FAILED",
                    "Next": "ComponentFailed",
                },
                {
                    "Variable": "$.componentPolls.value",
                    "NumericGreaterThanEqualsPath": "$.config.maxPolls",
                    "Next": "ComponentFailed",
                },
            ],
            "Default": "WaitForComponent",
        },
        "WaitForComponent": {
            "Type": "Wait",
            "SecondsPath": "$.config.pollSeconds",
            "Next": "CountComponentPoll",
        },
        "CountComponentPoll": {
            "Type": "Pass",
            "Parameters": {"value.$": "States.MathAdd($.componentPolls.value, 1)"},
            "ResultPath": "$.componentPolls",
            "Next": "DescribeModelComponent",
        },
        "ComponentFailed": fail(
            "ComponentNotDeployable",
            cause_path="States.Format('component version {} is {}, not DEPLOYABLE', "
            "$.created.arn, $.component.state)",
        ),
        "CreateDeployment": sdk_task(
            "greengrassv2",
            "createDeployment",
            {
                "TargetArn.$": "$.config.thingGroupArn",
                "DeploymentName.$": "States.Format('{}-approved-{}-v{}', $.config.thingGroup, "
                "$.config.modelPackageGroup, $.model.registryVersion)",
                "Components": _deployment_components(folder),
                "DeploymentPolicies": _policies(),
            },
            ResultSelector={"id.$": "$.DeploymentId"},
            ResultPath="$.deployment",
            Next="StartDevicePoll",
        ),
        "StartDevicePoll": {
            "Type": "Pass",
            "Result": {"value": 0},
            "ResultPath": "$.polls",
            "Next": "WaitForDevices",
        },
        "WaitForDevices": {
            "Type": "Wait",
            "SecondsPath": "$.config.pollSeconds",
            "Next": "ListDevices",
        },
        "ListDevices": sdk_task(
            "iot",
            "listThingsInThingGroup",
            {"ThingGroupName.$": "$.config.thingGroup"},
            ResultSelector={"things.$": "$.Things"},
            ResultPath="$.members",
            Next="HasDevices",
        ),
        "HasDevices": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.members.things[0]", "IsPresent": True, "Next": "DeviceStates"}
            ],
            "Default": "NoDevices",
        },
        "NoDevices": fail(
            "NoDevices",
            cause_path="States.Format('thing group {} has no devices; nothing runs deployment {}', "
            "$.config.thingGroup, $.deployment.id)",
        ),
        "DeviceStates": {
            "Type": "Map",
            "ItemsPath": "$.members.things",
            "ItemSelector": {"thing.$": "$$.Map.Item.Value", "deploymentId.$": "$.deployment.id"},
            "ItemProcessor": device_states(),
            "ResultPath": "$.devices",
            "Next": "Summary",
        },
        "Summary": {
            "Type": "Pass",
            "Parameters": {
                "failed.$": "States.ArrayContains($.devices[*].state, 'FAILED')",
                "pending.$": "States.ArrayContains($.devices[*].state, 'PENDING')",
            },
            "ResultPath": "$.summary",
            "Next": "AllDone",
        },
        "AllDone": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.summary.failed", "BooleanEquals": True, "Next": "DeploymentFailed"},
                {
                    "And": [
                        {"Variable": "$.summary.pending", "BooleanEquals": True},
                        {
                            "Variable": "$.polls.value",
                            "NumericGreaterThanEqualsPath": "$.config.maxPolls",
                        },
                    ],
                    "Next": "DeploymentTimedOut",
                },
                {"Variable": "$.summary.pending", "BooleanEquals": True, "Next": "CountDevicePoll"},
            ],
            "Default": "StartProof",
        },
        "CountDevicePoll": {
            "Type": "Pass",
            "Parameters": {"value.$": "States.MathAdd($.polls.value, 1)"},
            "ResultPath": "$.polls",
            "Next": "WaitForDevices",
        },
        "DeploymentFailed": fail(
            "DeploymentFailed",
            cause_path="States.Format('deployment {} of {} {} failed on a device (Greengrass "
            "rolled "
            "it back): {}', $.deployment.id, $.config.modelComponent, $.next.version, "
            "States.JsonToString($.devices))",
        ),
        "DeploymentTimedOut": fail(
            "DeploymentTimedOut",
            cause_path="States.Format('deployment {} of {} {} not done on every device after {} "
            "polls: {}', $.deployment.id, $.config.modelComponent, $.next.version, $.polls.value, "
            "States.JsonToString($.devices))",
        ),
        "Deployed": {
            "Type": "Pass",
            "Parameters": {
                "modelPackageArn.$": "$.model.arn",
                "sha256.$": "$.model.sha256",
                "component.$": "$.config.modelComponent",
                "componentVersion.$": "$.next.version",
                "deploymentId.$": "$.deployment.id",
                "devices.$": "$.devices",
                "proofs.$": "$.proofs",
            },
            "End": True,
        },
        **proof_states("Deployed"),
    }
    return {
        "Comment": (
            "Deploy the latest Approved version of a model package group to a thing group "
            "(edgekit). Generated by edgekit.workflow.approval_definition: do not edit by hand."
        ),
        "StartAt": "Config",
        "States": states,
    }


def state_count(templates_dir: str | Path | None = None) -> int:
    """How many top-level states one pass through the workflow can enter at most (a
    progress bar's length; polling loops enter some again)."""
    return len(build_definition(templates_dir)["States"])


def definition_text(templates_dir: str | Path | None = None) -> str:
    return json.dumps(build_definition(templates_dir), indent=2) + "\n"


def write_definition(path: str | Path | None = None) -> Path:
    """Write :func:`build_definition` (installed templates) to ``path`` (default: the
    shipped file)."""
    target = Path(path) if path is not None else definition_path()
    write_text_atomic(target, definition_text())
    return target


__all__ = [
    "DEFINITION_FILE",
    "TEMPLATE_FILE",
    "build_definition",
    "definition_path",
    "definition_text",
    "recipe_states",
    "state_count",
    "template_path",
    "write_definition",
]
