"""Provision, find, re-provision and deprovision two local devices on real local endpoints."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekit import clients
from edgekit.local import endpoints, process
from edgekit.local.device import list_devices, remove_device
from edgekit.provision import (
    cancel_deployments,
    delete_components,
    deprovision,
    find_provisioned,
    provision,
)
from edgekit.settings import Settings

pytestmark = pytest.mark.integration

THINGS = ("edgekit-core-1", "edgekit-core-2")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("home")
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGEKIT_LOCAL_HOME", str(root))
    try:
        yield root
    finally:
        endpoints.down(root)
        mp.undo()
    assert process.running(root) == {}, "processes left running after the tests"


@pytest.fixture(scope="module")
def settings(home: Path) -> Settings:
    return Settings.from_env(backend="local")


def _pids(home: Path) -> dict[str, int | None]:
    return {d.thing: d.pid for d in list_devices(home)}


def test_provision_find_again_and_deprovision(home: Path, settings: Settings) -> None:
    started = time.monotonic()
    result = provision(settings, device_count=2, progress=False)
    took = time.monotonic() - started

    assert result.stack_name == "edgekit-device"
    assert result.things == THINGS
    assert result.thing_group == settings.thing_group
    assert result.healthy and [d.thing for d in result.devices] == list(THINGS)
    assert {d.status for d in result.devices} == {"HEALTHY"}
    assert result.outputs["ThingName"] == THINGS[0]
    # The core devices are members of the thing group (IoT), as deployments will target
    # them; ListCoreDevices by group lists none yet, as on AWS: none has deployed to it.
    greengrass = clients.client("greengrassv2", settings)
    iot = clients.client("iot", settings)
    members = iot.list_things_in_thing_group(thingGroupName=result.thing_group)["things"]
    assert sorted(members) == sorted(THINGS)
    assert all(
        greengrass.get_core_device(coreDeviceThingName=t)["status"] == "HEALTHY" for t in THINGS
    )
    listed = greengrass.list_core_devices(thingGroupArn=result.thing_group_arn)["coreDevices"]
    assert listed == []
    # The bucket is the stack's, and it exists.
    clients.client("s3", settings).head_bucket(Bucket=result.bucket)
    pids = _pids(home)
    assert set(pids) == set(THINGS) and all(pids.values())
    print(f"provisioned 2 local devices in {took:.1f} s")

    found = find_provisioned(settings)
    assert found is not None
    assert (found.stack_name, found.things, found.bucket) == (
        result.stack_name,
        result.things,
        result.bucket,
    )
    assert found.outputs == result.outputs and found.healthy

    # Again: the stack is unchanged and the running devices are kept.
    cfn = clients.client("cloudformation", settings)
    stack_id = cfn.describe_stacks(StackName=result.stack_name)["Stacks"][0]["StackId"]
    started = time.monotonic()
    again = provision(settings, device_count=2, progress=False)
    assert time.monotonic() - started < 5.0
    assert again.things == THINGS and again.bucket == result.bucket
    assert cfn.describe_stacks(StackName=result.stack_name)["Stacks"][0]["StackId"] == stack_id
    assert _pids(home) == pids

    # A device that stopped is started again; the other one is left alone.
    remove_device(THINGS[1], home)
    repaired = provision(settings, device_count=2, progress=False)
    assert repaired.healthy
    now = _pids(home)
    assert now[THINGS[0]] == pids[THINGS[0]]
    assert now[THINGS[1]] not in (None, pids[THINGS[1]])

    gone = deprovision(settings, progress=False)
    assert gone.stack_deleted and gone.removed_devices == THINGS
    assert find_provisioned(settings) is None
    assert list_devices(home) == []
    assert greengrass.list_core_devices()["coreDevices"] == []
    assert set(process.running(home)) == {"moto", "greengrass", "mqtt", "scheduler"}
    iot = clients.client("iot", settings)
    assert [t["thingName"] for t in iot.list_things()["things"]] == []

    # Nothing left: a second deprovision is a quiet no-op.
    twice = deprovision(settings, progress=False)
    assert not twice.stack_deleted and twice.removed_devices == ()


def _recipe(name: str, version: str) -> bytes:
    import json

    return json.dumps(
        {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": name,
            "ComponentVersion": version,
            "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": {"run": "sleep 1"}}],
        }
    ).encode()


def test_cleanup_cancels_group_deployments_and_deletes_every_version(
    home: Path, settings: Settings
) -> None:
    endpoints.up(home, region=settings.region)
    greengrass = clients.client("greengrassv2", settings)
    iot = clients.client("iot", settings)
    group = "cleanup-group"
    group_arn = iot.create_thing_group(thingGroupName=group)["thingGroupArn"]
    other_arn = iot.create_thing_group(thingGroupName="other-group")["thingGroupArn"]
    name = settings.inference_component
    for version in ("1.0.0", "1.0.1"):
        greengrass.create_component_version(inlineRecipe=_recipe(name, version))
    greengrass.create_component_version(inlineRecipe=_recipe("someone.else", "1.0.0"))
    spec = {name: {"componentVersion": "1.0.1"}}
    ours = greengrass.create_deployment(targetArn=group_arn, components=spec)["deploymentId"]
    theirs = greengrass.create_deployment(targetArn=other_arn, components=spec)["deploymentId"]

    assert cancel_deployments(settings, group) == [ours]
    assert greengrass.get_deployment(deploymentId=ours)["deploymentStatus"] == "CANCELED"
    assert greengrass.get_deployment(deploymentId=theirs)["deploymentStatus"] == "ACTIVE"
    assert cancel_deployments(settings, group) == []

    deleted = delete_components(settings)
    assert sorted(deleted) == [(name, "1.0.0"), (name, "1.0.1")]
    left: list[Any] = greengrass.list_components()["components"]
    assert [c["componentName"] for c in left] == ["someone.else"]
    assert delete_components(settings) == []


def test_deprovision_with_the_endpoints_down_removes_what_local_up_would_restore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto's state outlives `local down`, so deprovisioning while the endpoints are down
    starts them and deletes the stack and things; before, they came back at the next up."""
    root = tmp_path / "home"
    monkeypatch.setenv("EDGEKIT_LOCAL_HOME", str(root))
    settings = Settings.from_env(backend="local")
    try:
        made = provision(settings, device_count=1, progress=False)
        endpoints.down(root)
        gone = deprovision(settings, progress=False)
        assert gone.stack_deleted and gone.removed_devices == made.things
        endpoints.up(root)
        assert find_provisioned(settings) is None
        iot = clients.client("iot", settings)
        assert [t["thingName"] for t in iot.list_things()["things"]] == []
    finally:
        endpoints.down(root)
    assert process.running(root) == {}
