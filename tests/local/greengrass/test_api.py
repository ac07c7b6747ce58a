"""The local Greengrass v2 control plane, driven by boto3's real greengrassv2 client.

A moto server provides S3 for artifacts; the emulator runs on loopback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")

from edgekit.local.greengrass.server import GreengrassServer  # noqa: E402

pytestmark = pytest.mark.integration

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "edgekit-test-artifacts"
CREDS = {
    "region_name": REGION,
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
}
THING_GROUP = f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/inspectors"


def thing_arn(name: str) -> str:
    return f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/{name}"


@pytest.fixture(scope="module")
def moto_url(moto_url: str) -> str:
    """conftest's moto server, with the artifacts the test recipes point at."""
    s3 = boto3.client("s3", endpoint_url=moto_url, **CREDS)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="hello/hello.py", Body=b"print('hello')\n")
    s3.put_object(Bucket=BUCKET, Key="hello/model.zip", Body=b"PK\x05\x06" + b"\0" * 18)
    return moto_url


@pytest.fixture
def server(tmp_path: Path, moto_url: str) -> Iterator[GreengrassServer]:
    srv = GreengrassServer(tmp_path / "greengrass", moto_url, REGION).start()
    yield srv
    srv.stop()


@pytest.fixture
def gg(server: GreengrassServer) -> Any:
    return boto3.client("greengrassv2", endpoint_url=server.url, **CREDS)


def recipe(version: str = "1.0.0", name: str = "com.example.Hello", **extra: Any) -> dict:
    doc = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": version,
        "ComponentDescription": "Says hello",
        "ComponentPublisher": "edgekit tests",
        "ComponentConfiguration": {"DefaultConfiguration": {"Message": "world"}},
        "Manifests": [
            {
                "Platform": {"os": "linux"},
                "Lifecycle": {"Run": "python3 -u {artifacts:path}/hello.py"},
                "Artifacts": [
                    {"URI": f"s3://{BUCKET}/hello/hello.py"},
                    {"URI": f"s3://{BUCKET}/hello/model.zip", "Unarchive": "ZIP"},
                ],
            }
        ],
    }
    doc.update(extra)
    return doc


YAML_RECIPE = f"""\
RecipeFormatVersion: '2020-01-25'
ComponentName: com.example.Yaml
ComponentVersion: '2.1.0'
ComponentPublisher: edgekit tests
Manifests:
  - Platform:
      os: linux
      architecture: amd64
    Lifecycle:
      Run: echo hi
    Artifacts:
      - URI: s3://{BUCKET}/hello/hello.py
"""


def create(gg: Any, doc: dict | str, **kwargs: Any) -> dict:
    body = doc.encode() if isinstance(doc, str) else json.dumps(doc).encode()
    return gg.create_component_version(inlineRecipe=body, **kwargs)


def device_call(server: GreengrassServer, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def report_status(server: GreengrassServer, thing: str, **overrides: Any) -> None:
    body = {
        "coreVersion": "2.12.0",
        "platform": "linux",
        "architecture": "amd64",
        "status": "HEALTHY",
        "thingGroups": ["inspectors"],
        "components": [
            {
                "componentName": "com.example.Hello",
                "componentVersion": "1.0.0",
                "lifecycleState": "RUNNING",
                "isRoot": True,
                "lastStatusChangeTimestamp": time.time() - 5,
            },
            {
                "componentName": "com.example.Lib",
                "componentVersion": "0.3.0",
                "lifecycleState": "FINISHED",
                "lifecycleStateDetails": "exited 0",
                "isRoot": False,
                "lastStatusChangeTimestamp": time.time() - 7,
            },
        ],
    }
    body.update(overrides)
    device_call(server, "POST", f"/_edgekit/devices/{thing}/status", body)


# --- components ---------------------------------------------------------------------------


def test_component_lifecycle(gg: Any, moto_url: str) -> None:
    created = create(gg, recipe(), tags={"project": "edgekit"})
    arn = f"arn:aws:greengrass:{REGION}:{ACCOUNT}:components:com.example.Hello:versions:1.0.0"
    assert created["arn"] == arn
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["status"]["componentState"] == "DEPLOYABLE"

    described = gg.describe_component(arn=arn)
    assert described["componentName"] == "com.example.Hello"
    assert described["publisher"] == "edgekit tests"
    assert described["description"] == "Says hello"
    assert described["platforms"] == [{"name": "linux", "attributes": {"os": "linux"}}]
    assert described["tags"] == {"project": "edgekit"}

    # The stored recipe gains the SHA-256 digest of each S3 artifact, base64 as Greengrass does.
    stored = json.loads(gg.get_component(arn=arn, recipeOutputFormat="JSON")["recipe"])
    artifact = stored["Manifests"][0]["Artifacts"][0]
    assert artifact["Algorithm"] == "SHA-256"
    import base64
    import hashlib

    expected = base64.b64encode(hashlib.sha256(b"print('hello')\n").digest()).decode()
    assert artifact["Digest"] == expected
    yaml_out = gg.get_component(arn=arn, recipeOutputFormat="YAML")
    assert yaml_out["recipeOutputFormat"] == "YAML"
    import yaml

    assert yaml.safe_load(yaml_out["recipe"]) == stored

    url = gg.get_component_version_artifact(arn=arn, artifactName=f"{BUCKET}/hello/hello.py")
    with urllib.request.urlopen(url["preSignedUrl"], timeout=10) as response:
        assert response.read() == b"print('hello')\n"
    assert url["preSignedUrl"].startswith(moto_url)

    create(gg, recipe("1.1.0"))
    create(gg, recipe("1.10.0"))
    create(gg, YAML_RECIPE)
    listed = gg.list_components()["components"]
    assert [c["componentName"] for c in listed] == ["com.example.Hello", "com.example.Yaml"]
    assert listed[0]["latestVersion"]["componentVersion"] == "1.10.0"
    assert listed[1]["latestVersion"]["platforms"][0]["attributes"]["architecture"] == "amd64"
    # scope=PUBLIC lists the AWS-provided catalog, never the account's own components.
    public = {c["componentName"] for c in gg.list_components(scope="PUBLIC")["components"]}
    assert not public & {"com.example.Hello", "com.example.Yaml"}

    component_arn = arn.rsplit(":versions:", 1)[0]
    versions = gg.list_component_versions(arn=component_arn)["componentVersions"]
    assert [v["componentVersion"] for v in versions] == ["1.10.0", "1.1.0", "1.0.0"]

    with pytest.raises(gg.exceptions.ConflictException) as info:
        create(gg, recipe())
    assert info.value.response["resourceId"] == arn
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409

    deleted = gg.delete_component(arn=arn)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(gg.exceptions.ResourceNotFoundException) as info:
        gg.describe_component(arn=arn)
    assert info.value.response["resourceType"] == "COMPONENT_VERSION"
    versions = gg.list_component_versions(arn=component_arn)["componentVersions"]
    assert [v["componentVersion"] for v in versions] == ["1.10.0", "1.1.0"]


def test_yaml_recipe_and_default_output_format(gg: Any) -> None:
    arn = create(gg, YAML_RECIPE)["arn"]
    out = gg.get_component(arn=arn)
    assert out["recipeOutputFormat"] == "JSON"
    assert json.loads(out["recipe"])["ComponentVersion"] == "2.1.0"


def test_pagination(gg: Any) -> None:
    for i in range(7):
        create(gg, recipe(f"1.0.{i}", name=f"com.example.C{i}"))
    page = gg.list_components(maxResults=3)
    assert len(page["components"]) == 3 and "nextToken" in page
    names = [
        c["componentName"]
        for p in gg.get_paginator("list_components").paginate(PaginationConfig={"PageSize": 2})
        for c in p["components"]
    ]
    assert names == [f"com.example.C{i}" for i in range(7)]
    with pytest.raises(gg.exceptions.ValidationException):
        gg.list_components(nextToken="garbage")
    with pytest.raises(gg.exceptions.ValidationException) as info:
        gg.list_components(maxResults=1000)
    assert "maxResults" in info.value.response["fields"][0]["name"]


def test_invalid_recipe_names_the_field(gg: Any) -> None:
    bad = recipe()
    bad["Manifests"][0]["Artifacts"][1]["Unarchive"] = "TAR"
    with pytest.raises(gg.exceptions.ValidationException) as info:
        create(gg, bad)
    fields = info.value.response["fields"]
    assert fields[0]["name"] == "Manifests[0].Artifacts[1].Unarchive"
    assert "ZIP" in fields[0]["message"]
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert info.value.response["Error"]["Code"] == "ValidationException"

    with pytest.raises(gg.exceptions.ValidationException) as info:
        gg.create_component_version(inlineRecipe=b"ComponentName: [oops")
    assert "not valid YAML" in info.value.response["message"]


def test_missing_artifact_names_the_uri(gg: Any) -> None:
    bad = recipe()
    bad["Manifests"][0]["Artifacts"][1]["URI"] = f"s3://{BUCKET}/hello/missing.zip"
    with pytest.raises(gg.exceptions.ValidationException) as info:
        create(gg, bad)
    field = info.value.response["fields"][0]
    assert field["name"] == "Manifests[0].Artifacts[1].URI"
    assert f"s3://{BUCKET}/hello/missing.zip" in field["message"]
    # Nothing was stored.
    assert gg.list_components()["components"] == []


def test_lambda_components_are_refused_clearly(gg: Any) -> None:
    with pytest.raises(gg.exceptions.ValidationException) as info:
        gg.create_component_version(
            lambdaFunction={"lambdaArn": "arn:aws:lambda:us-east-1:123456789012:function:f:1"}
        )
    assert "inlineRecipe" in info.value.response["message"]


def test_unknown_component_is_not_found(gg: Any) -> None:
    arn = f"arn:aws:greengrass:{REGION}:{ACCOUNT}:components:com.example.Nope:versions:1.0.0"
    for call in (
        lambda: gg.describe_component(arn=arn),
        lambda: gg.get_component(arn=arn),
        lambda: gg.get_component_version_artifact(arn=arn, artifactName="x/y"),
        lambda: gg.delete_component(arn=arn),
    ):
        with pytest.raises(gg.exceptions.ResourceNotFoundException) as info:
            call()
        assert info.value.response["resourceId"]
        assert info.value.response["resourceType"]
    arn_created = create(gg, recipe())["arn"]
    with pytest.raises(gg.exceptions.ResourceNotFoundException) as info:
        gg.get_component_version_artifact(arn=arn_created, artifactName="other/file.py")
    assert "hello/hello.py" in info.value.response["message"]


def test_unknown_component_has_no_versions(gg: Any) -> None:
    """ListComponentVersions of a component never created: an empty list, as the service
    answers (GDK's NEXT_PATCH and its region check list a new component's versions)."""
    arn = f"arn:aws:greengrass:{REGION}:{ACCOUNT}:components:com.example.Nope"
    assert gg.list_component_versions(arn=arn)["componentVersions"] == []


def test_bad_arn_is_a_validation_error(gg: Any) -> None:
    with pytest.raises(gg.exceptions.ValidationException) as info:
        gg.describe_component(arn="not-an-arn")
    assert info.value.response["fields"][0]["name"] == "arn"


def test_idempotent_create_with_client_token(gg: Any) -> None:
    first = create(gg, recipe(), clientToken="token-1")
    again = create(gg, recipe(), clientToken="token-1")
    assert again["arn"] == first["arn"]
    with pytest.raises(gg.exceptions.ConflictException):
        create(gg, recipe("9.9.9"), clientToken="token-1")


def test_concurrent_creates_are_safe(server: GreengrassServer) -> None:
    results: list[str] = []
    lock = threading.Lock()

    def worker(version: str) -> None:
        client = boto3.client("greengrassv2", endpoint_url=server.url, **CREDS)
        try:
            create(client, recipe(version))
            outcome = "ok"
        except client.exceptions.ConflictException:
            outcome = "conflict"
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=worker, args=(f"1.0.{i % 4}",)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 4 and results.count("conflict") == 8
    gg = boto3.client("greengrassv2", endpoint_url=server.url, **CREDS)
    arn = f"arn:aws:greengrass:{REGION}:{ACCOUNT}:components:com.example.Hello"
    assert len(gg.list_component_versions(arn=arn)["componentVersions"]) == 4


# --- deployments ----------------------------------------------------------------------------


def test_deployments_supersede_list_and_cancel(gg: Any) -> None:
    create(gg, recipe())
    create(gg, recipe("1.1.0"))
    first = gg.create_deployment(
        targetArn=THING_GROUP,
        deploymentName="first",
        components={"com.example.Hello": {"componentVersion": "1.0.0"}},
    )
    assert first["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert first["iotJobArn"].startswith(f"arn:aws:iot:{REGION}:{ACCOUNT}:job/")
    second = gg.create_deployment(
        targetArn=THING_GROUP,
        deploymentName="second",
        components={
            "com.example.Hello": {
                "componentVersion": "1.1.0",
                "configurationUpdate": {"merge": json.dumps({"Message": "edge"}), "reset": ["/x"]},
                "runWith": {"posixUser": "ggc_user", "systemResourceLimits": {"memory": 102400}},
            },
            "aws.greengrass.Nucleus": {"componentVersion": "2.12.0"},
        },
        deploymentPolicies={"failureHandlingPolicy": "DO_NOTHING"},
        tags={"stage": "test"},
    )
    thing = gg.create_deployment(
        targetArn=thing_arn("dev-1"),
        components={"com.example.Hello": {"componentVersion": "1.0.0"}},
    )

    old = gg.get_deployment(deploymentId=first["deploymentId"])
    assert old["deploymentStatus"] == "INACTIVE" and old["isLatestForTarget"] is False
    new = gg.get_deployment(deploymentId=second["deploymentId"])
    assert new["deploymentStatus"] == "ACTIVE" and new["isLatestForTarget"] is True
    assert new["revisionId"] == "2" and old["revisionId"] == "1"
    assert new["deploymentName"] == "second"
    assert new["tags"] == {"stage": "test"}
    policies = new["deploymentPolicies"]
    assert policies["failureHandlingPolicy"] == "DO_NOTHING"
    assert policies["componentUpdatePolicy"] == {
        "timeoutInSeconds": 60,
        "action": "NOTIFY_COMPONENTS",
    }
    spec = new["components"]["com.example.Hello"]
    assert json.loads(spec["configurationUpdate"]["merge"]) == {"Message": "edge"}
    assert spec["runWith"]["systemResourceLimits"]["memory"] == 102400

    latest = gg.list_deployments()["deployments"]
    assert {d["deploymentId"] for d in latest} == {second["deploymentId"], thing["deploymentId"]}
    everything = gg.list_deployments(historyFilter="ALL")["deployments"]
    assert [d["deploymentId"] for d in everything] == [
        thing["deploymentId"],
        second["deploymentId"],
        first["deploymentId"],
    ]
    by_target = gg.list_deployments(targetArn=THING_GROUP, historyFilter="ALL")["deployments"]
    assert [d["deploymentName"] for d in by_target] == ["second", "first"]
    assert gg.list_deployments(parentTargetArn=THING_GROUP)["deployments"] == []

    with pytest.raises(gg.exceptions.ConflictException):
        gg.delete_deployment(deploymentId=second["deploymentId"])
    canceled = gg.cancel_deployment(deploymentId=second["deploymentId"])
    assert canceled["message"]
    assert gg.get_deployment(deploymentId=second["deploymentId"])["deploymentStatus"] == "CANCELED"
    with pytest.raises(gg.exceptions.ConflictException):
        gg.cancel_deployment(deploymentId=second["deploymentId"])
    gg.delete_deployment(deploymentId=first["deploymentId"])
    with pytest.raises(gg.exceptions.ResourceNotFoundException):
        gg.get_deployment(deploymentId=first["deploymentId"])


def test_deployment_errors(gg: Any) -> None:
    create(gg, recipe())
    with pytest.raises(gg.exceptions.ResourceNotFoundException) as info:
        gg.create_deployment(
            targetArn=THING_GROUP, components={"com.example.Hello": {"componentVersion": "3.0.0"}}
        )
    assert info.value.response["resourceId"].endswith("com.example.Hello:versions:3.0.0")
    with pytest.raises(gg.exceptions.ValidationException) as info:
        gg.create_deployment(targetArn="arn:aws:iot:us-east-1:123456789012:policy/p")
    assert info.value.response["fields"][0]["name"] == "targetArn"
    with pytest.raises(gg.exceptions.ValidationException) as info:
        gg.create_deployment(
            targetArn=THING_GROUP,
            components={
                "com.example.Hello": {
                    "componentVersion": "1.0.0",
                    "configurationUpdate": {"merge": "{not json"},
                }
            },
        )
    assert info.value.response["fields"][0]["name"] == (
        "components.com.example.Hello.configurationUpdate.merge"
    )
    with pytest.raises(gg.exceptions.ValidationException) as info:
        gg.create_deployment(
            targetArn=THING_GROUP, deploymentPolicies={"failureHandlingPolicy": "PANIC"}
        )
    assert "ROLLBACK" in info.value.response["message"]
    for call in (
        lambda: gg.get_deployment(deploymentId="nope"),
        lambda: gg.cancel_deployment(deploymentId="nope"),
        lambda: gg.delete_deployment(deploymentId="nope"),
    ):
        with pytest.raises(gg.exceptions.ResourceNotFoundException):
            call()


# --- the private device API and core devices ----------------------------------------------


def test_device_api_drives_core_device_operations(gg: Any, server: GreengrassServer) -> None:
    create(gg, recipe())
    group_dep = gg.create_deployment(
        targetArn=THING_GROUP, components={"com.example.Hello": {"componentVersion": "1.0.0"}}
    )
    thing_dep = gg.create_deployment(
        targetArn=thing_arn("dev-1"),
        components={
            "com.example.Hello": {
                "componentVersion": "1.0.0",
                "configurationUpdate": {"merge": '{"Message": "thing"}'},
            }
        },
    )
    other_group = gg.create_deployment(
        targetArn=f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/others", components={}
    )

    docs = device_call(server, "GET", "/_edgekit/devices/dev-1/deployments?groups=inspectors")
    by_target = {d["targetArn"]: d for d in docs["deployments"]}
    assert set(by_target) == {thing_arn("dev-1"), THING_GROUP}
    thing_doc = by_target[thing_arn("dev-1")]
    assert thing_doc["deploymentId"] == thing_dep["deploymentId"]
    assert thing_doc["components"]["com.example.Hello"]["configurationUpdate"] == {
        "merge": '{"Message": "thing"}'
    }
    assert thing_doc["deploymentPolicies"]["failureHandlingPolicy"] == "ROLLBACK"
    assert isinstance(thing_doc["creationTimestamp"], float)
    assert other_group["deploymentId"] not in {d["deploymentId"] for d in docs["deployments"]}

    with pytest.raises(gg.exceptions.ResourceNotFoundException):
        gg.get_core_device(coreDeviceThingName="dev-1")

    report_status(server, "dev-1")
    report_status(server, "dev-2", status="UNHEALTHY", thingGroups=[])
    for dep, status in ((group_dep, "IN_PROGRESS"), (group_dep, "SUCCEEDED")):
        device_call(
            server,
            "PUT",
            f"/_edgekit/devices/dev-1/deployments/{dep['deploymentId']}",
            {"executionStatus": status},
        )
    device_call(
        server,
        "PUT",
        f"/_edgekit/devices/dev-1/deployments/{thing_dep['deploymentId']}",
        {
            "executionStatus": "FAILED",
            "reason": "com.example.Hello errored",
            "errorStack": ["DEPLOYMENT_FAILURE", "COMPONENT_ERRORED"],
            "errorTypes": ["COMPONENT_ERROR"],
        },
    )

    core = gg.get_core_device(coreDeviceThingName="dev-1")
    assert core["status"] == "HEALTHY" and core["coreVersion"] == "2.12.0"
    assert core["platform"] == "linux" and core["architecture"] == "amd64"
    assert core["lastStatusUpdateTimestamp"].timestamp() == pytest.approx(time.time(), abs=30)

    effective = gg.list_effective_deployments(coreDeviceThingName="dev-1")["effectiveDeployments"]
    rows = {r["deploymentId"]: r for r in effective}
    assert rows[group_dep["deploymentId"]]["coreDeviceExecutionStatus"] == "SUCCEEDED"
    failed = rows[thing_dep["deploymentId"]]
    assert failed["coreDeviceExecutionStatus"] == "FAILED"
    assert failed["reason"] == "com.example.Hello errored"
    assert failed["statusDetails"]["errorTypes"] == ["COMPONENT_ERROR"]
    # A deployment to a single thing ends with that thing's result.
    assert gg.get_deployment(deploymentId=thing_dep["deploymentId"])["deploymentStatus"] == "FAILED"
    assert gg.get_deployment(deploymentId=group_dep["deploymentId"])["deploymentStatus"] == "ACTIVE"

    roots = gg.list_installed_components(coreDeviceThingName="dev-1")["installedComponents"]
    assert [c["componentName"] for c in roots] == ["com.example.Hello"]
    everything = gg.list_installed_components(coreDeviceThingName="dev-1", topologyFilter="ALL")
    lib = {c["componentName"]: c for c in everything["installedComponents"]}["com.example.Lib"]
    assert lib["lifecycleState"] == "FINISHED" and lib["isRoot"] is False
    assert lib["lifecycleStateDetails"] == "exited 0"
    assert "lastReportedTimestamp" in lib

    names = lambda resp: [d["coreDeviceThingName"] for d in resp["coreDevices"]]  # noqa: E731
    assert names(gg.list_core_devices()) == ["dev-1", "dev-2"]
    assert names(gg.list_core_devices(status="UNHEALTHY")) == ["dev-2"]
    assert names(gg.list_core_devices(thingGroupArn=THING_GROUP)) == ["dev-1"]
    assert names(gg.list_core_devices(maxResults=1)) == ["dev-1"]

    # A canceled deployment is no longer handed to devices.
    gg.cancel_deployment(deploymentId=group_dep["deploymentId"])
    docs = device_call(server, "GET", "/_edgekit/devices/dev-1/deployments?groups=inspectors")
    assert [d["targetArn"] for d in docs["deployments"]] == [thing_arn("dev-1")]

    gg.delete_core_device(coreDeviceThingName="dev-2")
    assert names(gg.list_core_devices()) == ["dev-1"]
    for call in (
        lambda: gg.get_core_device(coreDeviceThingName="dev-2"),
        lambda: gg.list_effective_deployments(coreDeviceThingName="dev-2"),
        lambda: gg.list_installed_components(coreDeviceThingName="dev-2"),
        lambda: gg.delete_core_device(coreDeviceThingName="dev-2"),
    ):
        with pytest.raises(gg.exceptions.ResourceNotFoundException):
            call()


def test_device_api_rejects_bad_reports(server: GreengrassServer) -> None:
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as info:
        report_status(server, "dev-1", status="SLEEPY")
    assert info.value.code == 400
    assert info.value.headers["x-amzn-ErrorType"] == "ValidationException"
    assert json.loads(info.value.read())["fields"][0]["name"] == "status"
    with pytest.raises(urllib.error.HTTPError) as info:
        device_call(
            server,
            "PUT",
            "/_edgekit/devices/dev-1/deployments/nope",
            {"executionStatus": "SUCCEEDED"},
        )
    assert info.value.code == 404


def test_tags(gg: Any, server: GreengrassServer) -> None:
    arn = create(gg, recipe())["arn"]
    gg.tag_resource(resourceArn=arn, tags={"a": "1", "b": "2"})
    gg.untag_resource(resourceArn=arn, tagKeys=["a"])
    assert gg.list_tags_for_resource(resourceArn=arn)["tags"] == {"b": "2"}
    report_status(server, "dev-1")
    device_arn = f"arn:aws:greengrass:{REGION}:{ACCOUNT}:coreDevices:dev-1"
    gg.tag_resource(resourceArn=device_arn, tags={"site": "lab"})
    assert gg.get_core_device(coreDeviceThingName="dev-1")["tags"] == {"site": "lab"}
    with pytest.raises(gg.exceptions.ResourceNotFoundException):
        gg.list_tags_for_resource(
            resourceArn=f"arn:aws:greengrass:{REGION}:{ACCOUNT}:deployments:nope"
        )


def test_unimplemented_operation_is_a_clear_error(gg: Any) -> None:
    with pytest.raises(gg.exceptions.ValidationException) as info:
        gg.get_connectivity_info(thingName="dev-1")
    assert "not implemented" in info.value.response["message"]


# --- persistence and the process entry point ----------------------------------------------


def test_state_survives_restart(tmp_path: Path, moto_url: str) -> None:
    state = tmp_path / "state"
    first = GreengrassServer(state, moto_url, REGION).start()
    try:
        gg = boto3.client("greengrassv2", endpoint_url=first.url, **CREDS)
        arn = create(gg, recipe(), tags={"keep": "me"})["arn"]
        dep = gg.create_deployment(
            targetArn=THING_GROUP, components={"com.example.Hello": {"componentVersion": "1.0.0"}}
        )
        report_status(first, "dev-1")
        device_call(
            first,
            "PUT",
            f"/_edgekit/devices/dev-1/deployments/{dep['deploymentId']}",
            {"executionStatus": "SUCCEEDED"},
        )
    finally:
        first.stop()
    assert sorted(p.name for p in state.iterdir()) == [
        "components",  # one file per component version (issue 12, item 5)
        "deployments.json",
        "devices.json",
        "tags.json",
    ]

    second = GreengrassServer(state, moto_url, REGION).start()
    try:
        gg = boto3.client("greengrassv2", endpoint_url=second.url, **CREDS)
        assert gg.describe_component(arn=arn)["tags"] == {"keep": "me"}
        assert (
            "Digest"
            in json.loads(gg.get_component(arn=arn)["recipe"])["Manifests"][0]["Artifacts"][0]
        )
        assert gg.get_deployment(deploymentId=dep["deploymentId"])["deploymentStatus"] == "ACTIVE"
        assert gg.get_core_device(coreDeviceThingName="dev-1")["status"] == "HEALTHY"
        rows = gg.list_effective_deployments(coreDeviceThingName="dev-1")["effectiveDeployments"]
        assert rows[0]["coreDeviceExecutionStatus"] == "SUCCEEDED"
        with pytest.raises(gg.exceptions.ConflictException):
            create(gg, recipe())
    finally:
        second.stop()


def test_corrupt_state_is_reported(tmp_path: Path) -> None:
    from edgekit.errors import EdgekitError

    (tmp_path / "components.json").write_text("{ not json")
    with pytest.raises(EdgekitError, match="components.json"):
        GreengrassServer(tmp_path, None, REGION)
    (tmp_path / "components.json").unlink()
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "0123.json").write_text("{ not json")
    with pytest.raises(EdgekitError, match=r"components/0123\.json"):
        GreengrassServer(tmp_path, None, REGION)


def test_module_entry_point(tmp_path: Path, moto_url: str) -> None:
    port_file = tmp_path / "run" / "greengrass.port"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgekit.local.greengrass",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--state-dir",
            str(tmp_path / "state"),
            "--aws-endpoint",
            moto_url,
            "--region",
            REGION,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "port file never appeared"
            time.sleep(0.05)
        port = int(port_file.read_text())
        gg = boto3.client("greengrassv2", endpoint_url=f"http://127.0.0.1:{port}", **CREDS)
        create(gg, recipe())
        assert len(gg.list_components()["components"]) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()
    assert len(list((tmp_path / "state" / "components").glob("*.json"))) == 1


def test_resolve_component_candidates(gg: Any) -> None:
    create(gg, recipe("1.0.0", name="com.example.Lib"))
    create(gg, recipe("1.4.0", name="com.example.Lib"))
    create(gg, recipe("2.0.0", name="com.example.Lib"))
    windows_only = recipe("1.5.0", name="com.example.Lib")
    windows_only["Manifests"][0]["Platform"] = {"os": "windows"}
    create(gg, windows_only)
    linux = {"name": "linux", "attributes": {"os": "linux", "architecture": "amd64"}}

    resolved = gg.resolve_component_candidates(
        platform=linux,
        componentCandidates=[
            {
                "componentName": "com.example.Lib",
                "componentVersion": "1.0.0",
                "versionRequirements": {"com.example.App": "^1.0.0", "com.example.B": ">=1.2.0"},
            }
        ],
    )["resolvedComponentVersions"]
    assert [r["componentVersion"] for r in resolved] == ["1.4.0"]  # 1.5.0 is Windows-only
    assert json.loads(resolved[0]["recipe"])["ComponentVersion"] == "1.4.0"

    with pytest.raises(gg.exceptions.ConflictException):
        gg.resolve_component_candidates(
            platform=linux,
            componentCandidates=[
                {
                    "componentName": "com.example.Lib",
                    "componentVersion": "1.0.0",
                    "versionRequirements": {"a": ">=2.0.0", "b": "<2.0.0"},
                }
            ],
        )
    with pytest.raises(gg.exceptions.ResourceNotFoundException) as info:
        gg.resolve_component_candidates(
            platform=linux,
            componentCandidates=[
                {
                    "componentName": "com.example.Lib",
                    "componentVersion": "3.0.0",
                    "versionRequirements": {"a": "^3.0.0"},
                }
            ],
        )
    assert "^3.0.0" in info.value.response["message"]


def test_public_components_deploy_at_public_versions_only(gg: Any) -> None:
    """AWS-provided names need no publishing, but only versions AWS published (issue 13)."""
    ok = gg.create_deployment(
        targetArn=thing_arn("dev-1"),
        components={
            "aws.greengrass.Nucleus": {"componentVersion": "2.12.0"},
            "aws.greengrass.LogManager": {"componentVersion": "2.3.99"},  # a patch of 2.3.x
        },
    )
    assert ok["deploymentId"]
    with pytest.raises(gg.exceptions.ResourceNotFoundException, match="no public version 9.9.9"):
        gg.create_deployment(
            targetArn=thing_arn("dev-1"),
            components={"aws.greengrass.Nucleus": {"componentVersion": "9.9.9"}},
        )


@pytest.mark.parametrize("name", ["aws.greengrass.labs.Example", "aws.greengrass.NotAwsOne"])
def test_other_aws_greengrass_names_must_be_published(gg: Any, name: str) -> None:
    with pytest.raises(gg.exceptions.ResourceNotFoundException, match="CreateComponentVersion"):
        gg.create_deployment(
            targetArn=thing_arn("dev-1"), components={name: {"componentVersion": "1.0.0"}}
        )
    create(gg, recipe("1.0.0", name=name))
    assert gg.create_deployment(
        targetArn=thing_arn("dev-1"), components={name: {"componentVersion": "1.0.0"}}
    )["deploymentId"]


def test_list_components_public_scope_lists_the_aws_provided_catalog(gg: Any) -> None:
    rows = gg.list_components(scope="PUBLIC")["components"]
    by_name = {r["componentName"]: r for r in rows}
    nucleus = by_name["aws.greengrass.Nucleus"]
    assert nucleus["arn"] == f"arn:aws:greengrass:{REGION}:aws:components:aws.greengrass.Nucleus"
    assert nucleus["latestVersion"]["publisher"] == "AWS"
    assert "aws.greengrass.StreamManager" in by_name
    assert not any(name.startswith("aws.greengrass.labs.") for name in by_name)
