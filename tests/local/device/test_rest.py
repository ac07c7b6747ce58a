"""edgekit.local.device.rest: the device runtime's AWS calls as plain HTTP, without boto3.

The same operations boto3 made, answered by the local emulators (the Greengrass control
plane and moto's IoT): responses read alike, errors carry the AWS code, and the runtime's
process imports neither boto3 nor the MQTT broker's server.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from edgekit.awsapi import error_code
from edgekit.local import endpoints
from edgekit.local.device import control, rest
from edgekit.local.device.control import ControlPlane

REGION = "eu-west-1"  # not moto's default: the region must reach moto


@dataclass
class Cloud:
    greengrass_url: str
    moto_url: str
    gg: object
    iot: object


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, moto_url: str) -> Iterator[Cloud]:
    from edgekit.local.greengrass.server import GreengrassServer

    server = GreengrassServer(tmp_path_factory.mktemp("gg"), moto_url, REGION).start()
    keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    try:
        yield Cloud(
            server.url,
            moto_url,
            boto3.client("greengrassv2", endpoint_url=server.url, region_name=REGION, **keys),
            boto3.client("iot", endpoint_url=moto_url, region_name=REGION, **keys),
        )
    finally:
        server.stop()


def test_the_local_constants_are_the_local_backends() -> None:
    assert control.DEFAULT_ACCOUNT == endpoints.ACCOUNT_ID
    assert rest.LOCAL_ACCESS_KEY_ID == endpoints.DUMMY_ACCESS_KEY_ID


def test_thing_groups_come_from_moto_in_the_devices_region(cloud: Cloud) -> None:
    thing, group = f"t-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    cloud.iot.create_thing(thingName=thing)  # type: ignore[attr-defined]
    cloud.iot.create_thing_group(thingGroupName=group)  # type: ignore[attr-defined]
    cloud.iot.add_thing_to_thing_group(thingName=thing, thingGroupName=group)  # type: ignore[attr-defined]
    plane = ControlPlane(thing, cloud.greengrass_url, cloud.moto_url, REGION)
    assert plane.thing_groups() == [group]
    assert (
        ControlPlane("nobody", cloud.greengrass_url, cloud.moto_url, REGION).thing_groups() is None
    )


def test_recipe_versions_and_artifact_url_read_as_from_boto3(cloud: Cloud) -> None:
    name = f"com.example.Rest{uuid.uuid4().hex[:6]}"
    s3 = boto3.client(
        "s3",
        endpoint_url=cloud.moto_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket="bucket")
    s3.put_object(Bucket="bucket", Key="some/dir/file.zip", Body=b"zip")
    for version in ("1.0.0", "1.1.0"):
        recipe = {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": name,
            "ComponentVersion": version,
            "Manifests": [
                {
                    "Platform": {"os": "linux"},
                    "Lifecycle": {"Run": "echo hi"},
                    "Artifacts": [{"URI": "s3://bucket/some/dir/file.zip"}],
                }
            ],
        }
        cloud.gg.create_component_version(inlineRecipe=json.dumps(recipe).encode())  # type: ignore[attr-defined]
    plane = ControlPlane("thing-r", cloud.greengrass_url, cloud.moto_url, REGION)
    assert sorted(plane.versions(name)) == ["1.0.0", "1.1.0"]
    assert plane.recipe(name, "1.1.0")["ComponentVersion"] == "1.1.0"
    expected = cloud.gg.get_component_version_artifact(  # type: ignore[attr-defined]
        arn=plane.component_arn(name, "1.0.0"), artifactName="bucket/some/dir/file.zip"
    )["preSignedUrl"]
    got = plane.artifact_url(name, "1.0.0", "s3://bucket/some/dir/file.zip")
    assert got.split("?")[0] == expected.split("?")[0]
    assert plane.versions("com.example.NotPublished") == []


def test_an_error_answer_carries_the_aws_code(cloud: Cloud) -> None:
    client = rest.Greengrass(cloud.greengrass_url, REGION)
    with pytest.raises(rest.AwsCallError) as info:
        client.get_component(
            arn="arn:aws:greengrass:eu-west-1:123456789012:components:x:versions:9.9.9"
        )
    assert error_code(info.value) == "ResourceNotFoundException"
    assert info.value.status == 404


def test_no_answer_is_unreachable() -> None:
    with pytest.raises(rest.Unreachable, match="does not answer"):
        rest.Iot("http://127.0.0.1:9", REGION).list_thing_groups_for_thing(thingName="t")


def test_the_device_runtime_imports_no_boto3_and_no_broker() -> None:
    """Fails on a runtime that makes its calls with boto3 (tens of MB for the device's life)."""
    code = (
        "import json, sys; import edgekit.local.device.__main__, edgekit.local.device.runtime;"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    modules = json.loads(out.stdout.strip().splitlines()[-1])
    heavy = [
        m
        for m in modules
        if m.split(".")[0] in ("boto3", "awscrt", "s3transfer")
        or m in ("botocore.session", "botocore.client", "edgekit.local.mqtt.server")
    ]
    assert heavy == []


def test_a_fake_client_error_still_maps_as_before(tmp_path: Path) -> None:
    """control reads any AWS-shaped error answer (botocore's ClientError too)."""
    from botocore.exceptions import ClientError

    plane = ControlPlane("t", "http://127.0.0.1:9", "http://127.0.0.1:9", REGION)

    def throttled(**kwargs: object) -> dict:
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "X")

    with pytest.raises(control.ControlPlaneUnavailable, match="slow"):
        plane._call("X", throttled)

    def bug(**kwargs: object) -> dict:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        plane._call("X", bug)
