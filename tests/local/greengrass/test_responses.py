"""Every implemented greengrassv2 operation answers in the shape botocore's model declares.

A small checker walks botocore.model shapes over the parsed responses: each
member present has the declared type, required members are present, enums and
patterns hold, lengths respect min/max, timestamps parse. It also records which
output members were seen, so an operation that silently drops a member fails.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")

from botocore.model import Shape  # noqa: E402

from edgekit.local.greengrass.responses import GreengrassResponses  # noqa: E402
from edgekit.local.greengrass.server import GreengrassServer  # noqa: E402

pytestmark = pytest.mark.integration

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "edgekit-shape-artifacts"
CREDS = {"region_name": REGION, "aws_access_key_id": "testing", "aws_secret_access_key": "t"}
GROUP = f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/line-1"
THING = "shape-dev"
PARENT = f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/parent"


def check_shape(shape: Shape, value: Any, path: str, problems: list[str], seen: set[str]) -> None:
    """Append to ``problems`` every way ``value`` (parsed by botocore) departs from ``shape``."""
    seen.add(path)
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a structure, got {type(value).__name__}")
            return
        for name in shape.required_members:
            if name not in value:
                problems.append(f"{path}.{name}: required member missing")
        for name, member_value in value.items():
            if name == "ResponseMetadata" and path.count(".") == 0:
                continue
            if name not in shape.members:
                problems.append(f"{path}.{name}: not a member of {shape.name}")
                continue
            check_shape(shape.members[name], member_value, f"{path}.{name}", problems, seen)
        return
    if kind in ("list", "map"):
        expected = list if kind == "list" else dict
        if not isinstance(value, expected):
            problems.append(f"{path}: expected a {kind}, got {type(value).__name__}")
            return
        if "min" in meta and len(value) < meta["min"]:
            problems.append(f"{path}: {len(value)} entries, model min is {meta['min']}")
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: {len(value)} entries, model max is {meta['max']}")
        if kind == "list":
            for item in value:
                check_shape(shape.member, item, f"{path}[]", problems, seen)
        else:
            for key, item in value.items():
                check_shape(shape.key, key, f"{path}{{key}}", problems, seen)
                check_shape(shape.value, item, f"{path}{{}}", problems, seen)
        return
    if kind == "string":
        if not isinstance(value, str):
            problems.append(f"{path}: expected a string, got {type(value).__name__}")
            return
        enum = getattr(shape, "enum", None)
        if enum and value not in enum:
            problems.append(f"{path}: {value!r} is not in enum {enum}")
        if "min" in meta and len(value) < meta["min"]:
            problems.append(f"{path}: {value!r} shorter than min {meta['min']}")
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: longer than max {meta['max']}")
        if "pattern" in meta and not re.search(meta["pattern"], value):
            problems.append(f"{path}: {value!r} does not match {meta['pattern']}")
        return
    if kind == "timestamp":
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            problems.append(f"{path}: expected an aware datetime, got {value!r}")
        elif abs(value.timestamp() - time.time()) > 3600:
            problems.append(f"{path}: timestamp {value} is not near now")
        return
    if kind == "blob":
        if not isinstance(value, bytes):
            problems.append(f"{path}: expected bytes, got {type(value).__name__}")
        return
    if kind == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{path}: expected a boolean, got {value!r}")
        return
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{path}: expected an integer, got {value!r}")
            return
    elif kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{path}: expected a number, got {value!r}")
            return
    else:
        problems.append(f"{path}: unhandled shape type {kind}")
        return
    if "min" in meta and value < meta["min"]:
        problems.append(f"{path}: {value} below min {meta['min']}")
    if "max" in meta and value > meta["max"]:
        problems.append(f"{path}: {value} above max {meta['max']}")


def all_paths(shape: Shape, path: str, depth: int = 0) -> set[str]:
    """Every member path of an output shape (as check_shape names them)."""
    paths = {path}
    if depth > 6:
        return paths
    if shape.type_name == "structure":
        for name, member in shape.members.items():
            if member.serialization.get("location"):
                continue
            paths |= all_paths(member, f"{path}.{name}", depth + 1)
    elif shape.type_name == "list":
        paths |= all_paths(shape.member, f"{path}[]", depth + 1)
    elif shape.type_name == "map":
        paths.add(f"{path}{{key}}")
        paths |= all_paths(shape.value, f"{path}{{}}", depth + 1)
    return paths


# Output members the emulator never fills, with the reason.
NEVER_FILLED = {
    # Components are DEPLOYABLE once created locally, so there are never per-platform errors.
    "CreateComponentVersion.status.errors{key}",
    "CreateComponentVersion.status.errors{}",
    "DescribeComponent.status.errors{key}",
    "DescribeComponent.status.errors{}",
    # Only set by AWS for public components it retired.
    "ResolveComponentCandidates.resolvedComponentVersions[].message",
    # AWS fills this from the IoT job's description, which local deployments don't have.
    "ListEffectiveDeployments.effectiveDeployments[].description",
}


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, moto_url: str
) -> Iterator[tuple[GreengrassServer, Any]]:
    s3 = boto3.client("s3", endpoint_url=moto_url, **CREDS)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="app/run.py", Body=b"print('shape')\n")
    server = GreengrassServer(tmp_path_factory.mktemp("gg-shapes"), moto_url, REGION).start()
    gg = boto3.client("greengrassv2", endpoint_url=server.url, **CREDS)
    yield server, gg
    server.stop()


def _device(server: GreengrassServer, method: str, path: str, body: Any) -> None:
    request = urllib.request.Request(
        server.url + path, data=json.dumps(body).encode(), method=method
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def _populate(server: GreengrassServer, gg: Any) -> dict[str, str]:
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.example.Shape",
        "ComponentVersion": "1.0.0",
        "ComponentDescription": "shape test",
        "ComponentPublisher": "edgekit",
        "Manifests": [
            {
                "Platform": {"os": "linux", "architecture": "amd64"},
                "Lifecycle": {"Run": "python3 {artifacts:path}/run.py"},
                "Artifacts": [{"URI": f"s3://{BUCKET}/app/run.py"}],
            }
        ],
    }
    created = gg.create_component_version(
        inlineRecipe=json.dumps(recipe).encode(), tags={"team": "qa"}
    )
    other = dict(recipe, ComponentName="com.example.Zother", Manifests=[{"Lifecycle": {}}])
    gg.create_component_version(inlineRecipe=json.dumps(other).encode())
    deployment = gg.create_deployment(
        targetArn=GROUP,
        deploymentName="shape deployment",
        components={
            "com.example.Shape": {
                "componentVersion": "1.0.0",
                "configurationUpdate": {"merge": '{"a": 1}', "reset": ["/b"]},
                "runWith": {
                    "posixUser": "ggc_user:ggc_group",
                    "windowsUser": "ggc_user",
                    "systemResourceLimits": {"memory": 204800, "cpus": 0.5},
                },
            }
        },
        iotJobConfiguration={
            "jobExecutionsRolloutConfig": {
                "exponentialRate": {
                    "baseRatePerMinute": 5,
                    "incrementFactor": 2.0,
                    "rateIncreaseCriteria": {
                        "numberOfNotifiedThings": 2,
                        "numberOfSucceededThings": 1,
                    },
                },
                "maximumPerMinute": 50,
            },
            "abortConfig": {
                "criteriaList": [
                    {
                        "failureType": "FAILED",
                        "action": "CANCEL",
                        "thresholdPercentage": 10.0,
                        "minNumberOfExecutedThings": 1,
                    }
                ]
            },
            "timeoutConfig": {"inProgressTimeoutInMinutes": 10},
        },
        deploymentPolicies={
            "failureHandlingPolicy": "ROLLBACK",
            "componentUpdatePolicy": {"timeoutInSeconds": 30, "action": "SKIP_NOTIFY_COMPONENTS"},
            "configurationValidationPolicy": {"timeoutInSeconds": 20},
        },
        parentTargetArn=PARENT,
        tags={"run": "shapes"},
    )
    to_cancel = gg.create_deployment(
        targetArn=f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/{THING}",
        components={"com.example.Shape": {"componentVersion": "1.0.0"}},
    )
    _device(
        server,
        "POST",
        f"/_edgekit/devices/{THING}/status",
        {
            "coreVersion": "2.12.0",
            "platform": "linux",
            "architecture": "amd64",
            "runtime": "aws_nucleus_classic",
            "status": "HEALTHY",
            "thingGroups": ["line-1"],
            "components": [
                {
                    "componentName": "com.example.Shape",
                    "componentVersion": "1.0.0",
                    "lifecycleState": "RUNNING",
                    "lifecycleStateDetails": "running since start",
                    "isRoot": True,
                    "lastStatusChangeTimestamp": time.time() - 1,
                    "lastInstallationSource": GROUP,
                    "lifecycleStatusCodes": ["RUN_OK"],
                },
                {
                    "componentName": "com.example.Zlib",
                    "componentVersion": "0.1.0",
                    "lifecycleState": "FINISHED",
                    "isRoot": False,
                },
            ],
        },
    )
    _device(
        server,
        "POST",
        f"/_edgekit/devices/{THING}-2/status",
        {"status": "HEALTHY", "thingGroups": ["line-1"], "components": []},
    )
    _device(
        server,
        "PUT",
        f"/_edgekit/devices/{THING}/deployments/{to_cancel['deploymentId']}",
        {"executionStatus": "IN_PROGRESS"},
    )
    _device(
        server,
        "PUT",
        f"/_edgekit/devices/{THING}/deployments/{deployment['deploymentId']}",
        {
            "executionStatus": "FAILED",
            "reason": "component errored",
            "errorStack": ["DEPLOYMENT_FAILURE"],
            "errorTypes": ["COMPONENT_ERROR"],
        },
    )
    gg.tag_resource(
        resourceArn=f"arn:aws:greengrass:{REGION}:{ACCOUNT}:coreDevices:{THING}",
        tags={"site": "lab"},
    )
    return {
        "version_arn": created["arn"],
        "component_arn": created["arn"].rsplit(":versions:", 1)[0],
        "deployment_id": deployment["deploymentId"],
        "cancel_id": to_cancel["deploymentId"],
    }


def _calls(ids: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    deployment_arn = f"arn:aws:greengrass:{REGION}:{ACCOUNT}:deployments:{ids['deployment_id']}"
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.example.Shape",
        "ComponentVersion": "1.0.1",
        "ComponentDescription": "next version",
        "ComponentPublisher": "edgekit",
        "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": {"Run": "true"}}],
    }
    return [
        ("CreateComponentVersion", {"inlineRecipe": json.dumps(recipe).encode()}),
        ("DescribeComponent", {"arn": ids["version_arn"]}),
        ("GetComponent", {"arn": ids["version_arn"], "recipeOutputFormat": "YAML"}),
        ("GetComponentVersionArtifact", {"arn": ids["version_arn"], "artifactName": "run.py"}),
        ("ListComponents", {"scope": "PRIVATE", "maxResults": 1}),
        ("ListComponentVersions", {"arn": ids["component_arn"], "maxResults": 1}),
        (
            "ResolveComponentCandidates",
            {
                "platform": {"name": "linux", "attributes": {"os": "linux"}},
                "componentCandidates": [
                    {
                        "componentName": "com.example.Shape",
                        "componentVersion": "1.0.0",
                        "versionRequirements": {"com.example.App": ">=1.0.0"},
                    }
                ],
            },
        ),
        ("CreateDeployment", {"targetArn": GROUP, "components": {}}),
        ("GetDeployment", {"deploymentId": ids["deployment_id"]}),
        ("ListDeployments", {"historyFilter": "ALL", "maxResults": 1}),
        (
            "ListDeployments",
            {"parentTargetArn": PARENT, "historyFilter": "ALL"},
        ),
        ("CancelDeployment", {"deploymentId": ids["cancel_id"]}),
        ("ListEffectiveDeployments", {"coreDeviceThingName": THING, "maxResults": 1}),
        (
            "ListInstalledComponents",
            {"coreDeviceThingName": THING, "topologyFilter": "ALL", "maxResults": 1},
        ),
        ("GetCoreDevice", {"coreDeviceThingName": THING}),
        ("ListCoreDevices", {"status": "HEALTHY", "maxResults": 1}),
        ("TagResource", {"resourceArn": deployment_arn, "tags": {"more": "tags"}}),
        ("ListTagsForResource", {"resourceArn": deployment_arn}),
        ("UntagResource", {"resourceArn": deployment_arn, "tagKeys": ["more"]}),
        ("DeleteDeployment", {"deploymentId": ids["cancel_id"]}),
        ("DeleteCoreDevice", {"coreDeviceThingName": THING}),
        ("DeleteComponent", {"arn": ids["version_arn"]}),
    ]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_every_operation_matches_the_service_model(stack: tuple[GreengrassServer, Any]) -> None:
    server, gg = stack
    model = gg.meta.service_model
    ids = _populate(server, gg)
    calls = _calls(ids)

    implemented = set(GreengrassResponses(server.backend)._public)
    assert {op for op, _ in calls} == implemented, "walk every implemented operation"

    problems: list[str] = []
    seen: set[str] = set()
    for op_name, params in calls:
        op = model.operation_model(op_name)
        response = getattr(gg, _snake(op_name))(**params)
        expected_status = int(op.http.get("responseCode", 200))
        assert response["ResponseMetadata"]["HTTPStatusCode"] == expected_status, op_name
        if op.output_shape is None:
            assert set(response) == {"ResponseMetadata"}, op_name
            continue
        check_shape(op.output_shape, response, op_name, problems, seen)
    assert problems == []

    # Every output member of every operation shows up at least once.
    missing = set()
    for op_name in implemented:
        op = model.operation_model(op_name)
        if op.output_shape is not None:
            missing |= all_paths(op.output_shape, op_name) - seen
    missing -= NEVER_FILLED
    # Members of empty results and nested members of absent optional parents are fine.
    missing = {p for p in missing if not any(p.startswith(n + ".") for n in NEVER_FILLED)}
    assert sorted(missing) == [], "\n".join(sorted(missing))


def test_errors_match_their_modeled_shapes(stack: tuple[GreengrassServer, Any]) -> None:
    server, gg = stack
    model = gg.meta.service_model
    bad_version = (
        f"arn:aws:greengrass:{REGION}:{ACCOUNT}:components:com.example.None:versions:1.0.0"
    )
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.example.Conflict",
        "ComponentVersion": "1.0.0",
        "Manifests": [{"Lifecycle": {"Run": "true"}}],
    }
    gg.create_component_version(inlineRecipe=json.dumps(recipe).encode())
    cases = [
        ("ValidationException", lambda: gg.create_component_version(inlineRecipe=b"{}")),
        ("ValidationException", lambda: gg.list_deployments(targetArn="arn:bad")),
        ("ResourceNotFoundException", lambda: gg.describe_component(arn=bad_version)),
        ("ResourceNotFoundException", lambda: gg.get_core_device(coreDeviceThingName="ghost")),
        (
            "ConflictException",
            lambda: gg.create_component_version(inlineRecipe=json.dumps(recipe).encode()),
        ),
    ]
    problems: list[str] = []
    for code, call in cases:
        with pytest.raises(gg.exceptions.ClientError) as info:
            call()
        error = info.value
        assert error.response["Error"]["Code"] == code
        shape = model.shape_for(code)
        assert (
            error.response["ResponseMetadata"]["HTTPStatusCode"]
            == shape.metadata["error"]["httpStatusCode"]
        )
        assert isinstance(error, getattr(gg.exceptions, code))
        modeled = {k: v for k, v in error.response.items() if k not in ("Error",)}
        check_shape(shape, modeled, code, problems, set())
    assert problems == []


def test_shape_checker_catches_mismatches(stack: tuple[GreengrassServer, Any]) -> None:
    """The checker itself must fail on wrong data, or the walk above proves nothing."""
    _, gg = stack
    shape = gg.meta.service_model.operation_model("GetDeployment").output_shape
    problems: list[str] = []
    check_shape(
        shape,
        {
            "deploymentStatus": "SLEEPING",
            "creationTimestamp": "yesterday",
            "isLatestForTarget": "yes",
            "components": {"x": {}},
            "unknownMember": 1,
            "targetArn": "arn:aws:s3:::bucket",
        },
        "GetDeployment",
        problems,
        set(),
    )
    joined = "\n".join(problems)
    for needle in (
        "deploymentStatus: 'SLEEPING' is not in enum",
        "creationTimestamp: expected an aware datetime",
        "isLatestForTarget: expected a boolean",
        "components{}.componentVersion: required member missing",
        "unknownMember: not a member",
        "targetArn: 'arn:aws:s3:::bucket' does not match",
    ):
        assert needle in joined, joined
