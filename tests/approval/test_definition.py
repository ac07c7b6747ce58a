"""The deploy-on-approval definition and template, without a device.

- the shipped ASL file is what the generator builds (from the recipe templates);
- every state is reachable and every transition names a state; moto's ASL parser takes it;
- the model recipe the state machine builds is the recipe ``edgekit components publish``
  renders (run by moto's interpreter on the two recipe states);
- the template is cfn-lint clean and its role allows each aws-sdk action the ASL calls,
  on named resources wherever IAM has resource-level permissions for it.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from edgekit.components import build_components
from edgekit.components.build import PREVIEW_VALUES, PUBLISH_KEYS
from edgekit.errors import ConfigurationError
from edgekit.local.moto_stepfunctions import _to_boto, _to_sfn, definition_of
from edgekit.resources import components_dir
from edgekit.settings import Settings
from edgekit.stack import load_template
from edgekit.workflow.approval_definition import (
    build_definition,
    definition_path,
    definition_text,
    template_path,
)
from edgekit.workflow.approval_states import AWS_SDK

SUBSTITUTIONS = {
    "ModelPackageGroup": "g",
    "ThingGroupName": "tg",
    "ThingGroupArn": "arn:aws:iot:us-east-1:123456789012:thinggroup/tg",
    "ModelComponent": "com.qualityinspection.model",
    "AgentComponent": "com.qualityinspection.agent",
    "InferenceComponent": "com.qualityinspection",
    "ModelComponentArn": "a",
    "AgentComponentArn": "b",
    "InferenceComponentArn": "c",
    "PollSeconds": "1",
    "MaxPolls": "3",
    "MinResults": "3",
    "HealthShadow": "edgekit-health",
}
# aws-sdk service name -> IAM service prefix
IAM_PREFIX = {
    "greengrassv2": "greengrass",
    "sagemaker": "sagemaker",
    "iot": "iot",
    "iotdataplane": "iot",
}


def test_the_shipped_file_is_the_generated_definition() -> None:
    assert definition_path().read_text() == definition_text(), (
        "cloudformation/deploy-on-approval.asl.json is stale: run "
        "`python -c 'from edgekit.workflow.approval_definition import write_definition; "
        "write_definition()'`"
    )


def _machines(definition: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The definition and every Map's ItemProcessor in it."""
    yield definition
    for state in definition["States"].values():
        if state["Type"] == "Map":
            yield from _machines(state["ItemProcessor"])


def _targets(state: dict[str, Any]) -> set[str]:
    found = {state["Next"]} if "Next" in state else set()
    found.update(c["Next"] for c in state.get("Choices", []))
    if "Default" in state:
        found.add(state["Default"])
    found.update(c["Next"] for c in state.get("Catch", []))
    return found


def test_every_state_is_reachable_and_every_transition_names_a_state() -> None:
    definition = json.loads(definition_path().read_text())
    for machine in _machines(definition):
        states = machine["States"]
        seen, todo = set(), [machine["StartAt"]]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            assert name in states, f"transition to {name}, which is not a state"
            seen.add(name)
            todo.extend(_targets(states[name]))
        assert seen == set(states), f"unreachable: {sorted(set(states) - seen)}"
        ends = [n for n, s in states.items() if s.get("End") or s["Type"] in ("Succeed", "Fail")]
        assert ends


def test_moto_parses_the_definition_after_substitution() -> None:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    text = definition_of(
        {
            "DefinitionString": definition_path().read_text(),
            "DefinitionSubstitutions": SUBSTITUTIONS,
        },
        "123456789012",
    )
    assert "${" not in text
    AmazonStateLanguageParser.parse(text)


def _run_recipe_states(state_input: dict[str, Any]) -> dict[str, Any]:
    """The RecipeParts and ModelRecipe states, run by moto's ASL interpreter."""
    states = build_definition()["States"]
    machine = {
        "StartAt": "RecipeParts",
        "States": {
            "RecipeParts": states["RecipeParts"],
            "ModelRecipe": {**states["ModelRecipe"], "End": True},
        },
    }
    machine["States"]["ModelRecipe"].pop("Next")
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="recipe",
            definition=json.dumps(machine),
            roleArn="arn:aws:iam::123456789012:role/r",
        )["stateMachineArn"]
        run = sfn.start_execution(stateMachineArn=arn, input=json.dumps(state_input))
        for _ in range(200):
            done = sfn.describe_execution(executionArn=run["executionArn"])
            if done["status"] != "RUNNING":
                break
            time.sleep(0.05)
    assert done["status"] == "SUCCEEDED", done
    return dict(json.loads(done["output"])["recipe"])


def test_the_state_machine_builds_the_recipe_components_publish_renders(tmp_path: Path) -> None:
    settings = Settings(local_home=tmp_path / "home")
    [model] = build_components(
        settings, out_dir=tmp_path / "build", names=[settings.model_component]
    )
    uri = f"s3://packages/edgekit/packages/m/1.0.0/{model.values['PACKAGE_SHA256'][:16]}/"
    uri += model.values["PACKAGE_FILE"]
    publish = {**{k: PREVIEW_VALUES[k] for k in PUBLISH_KEYS}, "COMPONENT_VERSION": "1.0.7"}
    publish["ARTIFACT_PREFIX"] = uri.rsplit("/", 1)[0]  # the one difference: where it lives
    python = model.render(publish)
    built = _run_recipe_states(
        {
            "config": {"modelComponent": settings.model_component},
            "next": {"version": "1.0.7"},
            "model": {
                "name": model.values["MODEL_NAME"],
                "semver": model.values["MODEL_VERSION"],
                "sha256": model.values["PACKAGE_SHA256"],
                "uri": uri,
                "file": model.values["PACKAGE_FILE"],
            },
        }
    )
    assert built == python


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Signed @@MODEL_NAME@@ for @@CAPTURE_BUCKET@@", "@@CAPTURE_BUCKET@@ has no value"),
        ("cost ${Price} for @@MODEL_NAME@@", "DefinitionSubstitutions"),
        ("plain ${HOME} text", "DefinitionSubstitutions"),
    ],
)
def test_a_template_the_state_machine_cannot_build_is_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    templates = tmp_path / "component"
    shutil.copytree(components_dir(), templates)
    recipe = templates / "com.qualityinspection.model" / "recipe.yaml"
    source = recipe.read_text()
    old = 'ComponentDescription: "Signed model package @@MODEL_NAME@@ @@MODEL_VERSION@@'
    assert old in source
    start = source.index(old)
    end = source.index("\n", start)
    recipe.write_text(source[:start] + f'ComponentDescription: "{text}"' + source[end:])
    with pytest.raises(ConfigurationError) as info:
        build_definition(templates)
    assert message in str(info.value) and "ComponentDescription" in str(info.value)


@pytest.mark.slow
def test_cfn_lint_reports_nothing() -> None:
    from cfnlint.api import ManualArgs, lint_file

    config = ManualArgs(regions=["us-east-1", "eu-west-1"], include_checks=["I"])
    assert [f"{m.rule.id} {m.message}" for m in lint_file(template_path(), config)] == []


def test_the_role_allows_exactly_the_calls_the_definition_makes() -> None:
    template = load_template(template_path())[1]
    role = template["Resources"]["StateMachineRole"]["Properties"]
    statements = role["Policies"][0]["PolicyDocument"]["Statement"]
    allowed: dict[str, Any] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            assert "*" not in action
            allowed[action] = statement["Resource"]
    called = set()
    for machine in _machines(build_definition()):
        for state in machine["States"].values():
            resource = state.get("Resource", "")
            if resource.startswith(AWS_SDK):
                service, action = resource[len(AWS_SDK) :].split(":")
                called.add(f"{IAM_PREFIX[service]}:{action[:1].upper()}{action[1:]}")
    assert called <= set(allowed), f"not allowed: {sorted(called - set(allowed))}"
    # Only ListModelPackages (no resource-level permissions in IAM) is on "*".
    assert [a for a, r in allowed.items() if r == "*"] == ["sagemaker:ListModelPackages"]
    # What CreateDeployment needs besides greengrass:CreateDeployment (IoT jobs), and S3
    # reads of the package for CreateComponentVersion, are the only extra actions.
    extra = set(allowed) - called
    assert extra <= {
        "iot:CreateJob",
        "iot:CancelJob",
        "iot:UpdateJob",
        "iot:DescribeJob",
        "iot:DescribeThingGroup",
        "s3:GetObject",
    }


def test_aws_sdk_names_map_both_ways_and_keep_map_keys() -> None:
    import botocore.session

    model = botocore.session.get_session().get_service_model("greengrassv2")
    create = model.operation_model("CreateDeployment")
    request = _to_boto(
        {
            "TargetArn": "arn",
            "Components": {"com.Example": {"ComponentVersion": "1.0.0"}},
            "DeploymentPolicies": {"FailureHandlingPolicy": "ROLLBACK"},
        },
        create.input_shape,
    )
    assert request == {
        "targetArn": "arn",
        "components": {"com.Example": {"componentVersion": "1.0.0"}},
        "deploymentPolicies": {"failureHandlingPolicy": "ROLLBACK"},
    }
    recipe = _to_boto(
        {"InlineRecipe": {"a": 1}}, model.operation_model("CreateComponentVersion").input_shape
    )
    assert recipe == {"inlineRecipe": b'{"a":1}'}
    listed = _to_sfn(
        {"componentVersions": [{"componentVersion": "1.0.0", "arn": "x"}]},
        model.operation_model("ListComponentVersions").output_shape,
    )
    assert listed == {"ComponentVersions": [{"ComponentVersion": "1.0.0", "Arn": "x"}]}


def _run(states: dict[str, Any], start: str, inputs: list[dict[str, Any]]) -> list[Any]:
    """``states`` (from ``start``) run by moto's ASL interpreter, once per input; the outputs."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="part",
            definition=json.dumps({"StartAt": start, "States": states}),
            roleArn="arn:aws:iam::123456789012:role/r",
        )["stateMachineArn"]
        runs = [
            sfn.start_execution(stateMachineArn=arn, name=f"run-{n}", input=json.dumps(i))[
                "executionArn"
            ]
            for n, i in enumerate(inputs)
        ]
        outputs = []
        for run in runs:
            for _ in range(200):
                done = sfn.describe_execution(executionArn=run)
                if done["status"] != "RUNNING":
                    break
                time.sleep(0.05)
            assert done["status"] == "SUCCEEDED", done
            outputs.append(json.loads(done["output"]))
    return outputs


# ListComponentVersions lists the greatest version first.
VERSION_LISTS = [[], ["1.0.0"], ["1.0.9", "1.0.8"], ["2.3.4-rc.1"], ["1.2.3+build.5"], ["10.20.30"]]


def test_the_next_model_version_is_the_one_components_publish_picks() -> None:
    from edgekit.components import next_version

    names = (
        "HasModelVersion",
        "FirstVersion",
        "LatestModelVersion",
        "SplitLatestVersion",
        "VersionNumbers",
        "IsPrerelease",
        "ReleaseOfPrerelease",
        "NextPatch",
    )
    all_states = build_definition()["States"]
    states = {name: dict(all_states[name]) for name in names}
    for state in states.values():
        if state.get("Next") == "AgentVersions":
            state["Next"] = "Done"
    states["Done"] = {"Type": "Succeed"}
    inputs = [
        {"modelVersions": {"versions": [{"ComponentVersion": v} for v in versions]}}
        for versions in VERSION_LISTS
    ]
    got = [out["next"]["version"] for out in _run(states, "HasModelVersion", inputs)]
    assert got == [next_version(versions) for versions in VERSION_LISTS]


# (the device's effective deployments as (id, status), its state for deployment "mine")
DEVICE_CASES = [
    ([], "PENDING"),
    ([("other", "SUCCEEDED")], "PENDING"),
    ([("mine", "IN_PROGRESS"), ("other", "SUCCEEDED")], "PENDING"),
    ([("other", "FAILED"), ("mine", "SUCCEEDED")], "SUCCEEDED"),
    ([("mine", "FAILED")], "FAILED"),
    ([("mine", "TIMED_OUT")], "FAILED"),
    ([("mine", "REJECTED")], "FAILED"),
    ([("mine", "CANCELED")], "FAILED"),
]


def test_a_devices_state_is_its_status_of_this_deployment() -> None:
    from edgekit.workflow.approval_states import device_states

    states = dict(device_states()["States"])
    states.pop("ListEffectiveDeployments")  # its result is the input here
    inputs = [
        {
            "thing": "t1",
            "deploymentId": "mine",
            "listed": {
                "effective": [
                    {"DeploymentId": d, "CoreDeviceExecutionStatus": s} for d, s in effective
                ]
            },
        }
        for effective, _ in DEVICE_CASES
    ]
    outputs = _run(states, "DeploymentKeys", inputs)
    assert outputs == [{"thing": "t1", "state": state} for _, state in DEVICE_CASES]


def test_min_results_below_one_is_refused_before_anything_is_created() -> None:
    from edgekit.workflow.approval import deploy_approval_stack

    with pytest.raises(ConfigurationError, match=r"--min-results\) is 0"):
        deploy_approval_stack(Settings(backend="local"), min_results=0, progress=False)


def test_the_template_reads_the_shadow_the_app_writes() -> None:
    from edgekit.schemas.health_shadow import HEALTH_SHADOW

    parameters = load_template(template_path())[1]["Parameters"]
    assert parameters["HealthShadow"]["Default"] == HEALTH_SHADOW
