"""Unit tests of edgekit.provision: names, result tables, the backend strategies' rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from edgekit.cli import build_parser
from edgekit.errors import ConfigurationError
from edgekit.provision import (
    NOT_REGISTERED,
    CoreDevice,
    Ec2Device,
    LocalDevices,
    Provisioned,
    default_stack_name,
    default_thing_prefix,
    device_backend,
    edgekit_component_names,
    order_things,
    provision,
    thing_names,
)
from edgekit.settings import Settings


def test_default_names_follow_the_project() -> None:
    settings = Settings(project_name="line-a")
    assert default_stack_name(settings) == "line-a-device"
    assert default_thing_prefix(settings) == "line-a-core"
    # The template's own ThingName default is the first thing of the default project.
    assert thing_names(default_thing_prefix(Settings()), 1) == ["edgekit-core-1"]


def test_thing_names_keep_the_stack_thing_first() -> None:
    assert thing_names("cam", 3) == ["cam-1", "cam-2", "cam-3"]
    assert thing_names("cam", 2, first="gateway") == ["gateway", "cam-2"]


def test_thing_names_refuse_what_the_template_refuses() -> None:
    with pytest.raises(ConfigurationError, match="thing_prefix"):
        thing_names("bad prefix", 1)
    with pytest.raises(ConfigurationError, match="at most 64"):
        thing_names("x" * 63, 2)


def test_things_are_ordered_naturally_after_the_stack_thing() -> None:
    others = ["d-10", "d-2", "d-1", "d-3"]
    assert order_things("d-1", others) == ("d-1", "d-2", "d-3", "d-10")


def test_aws_refuses_more_than_one_device_before_any_call() -> None:
    settings = Settings(backend="aws", region="eu-west-1")
    with pytest.raises(ConfigurationError, match="exactly one EC2 core device"):
        provision(settings, device_count=3, progress=False)
    Ec2Device(settings).check_count(1)  # one is fine


def test_local_needs_at_least_one_device() -> None:
    with pytest.raises(ConfigurationError, match="at least one"):
        LocalDevices(Settings()).check_count(0)


def test_one_strategy_per_backend() -> None:
    assert isinstance(device_backend(Settings(backend="local")), LocalDevices)
    assert isinstance(device_backend(Settings(backend="aws")), Ec2Device)
    assert Ec2Device(Settings(backend="aws")).remove_devices(["x"]) == []


def test_local_devices_follow_the_one_home_rule(tmp_path, monkeypatch) -> None:
    """Settings.local_home, else EDGEKIT_LOCAL_HOME: the rule of settings.resolve_local_home."""
    assert LocalDevices(Settings(local_home=tmp_path)).home == tmp_path.absolute()
    monkeypatch.setenv("EDGEKIT_LOCAL_HOME", str(tmp_path / "env"))
    assert LocalDevices(Settings()).home == (tmp_path / "env").absolute()
    assert LocalDevices(Settings(local_home=tmp_path / "mine")).home == tmp_path / "mine"


def _provisioned() -> Provisioned:
    stamp = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
    device = CoreDevice.from_api(
        {
            "coreDeviceThingName": "edgekit-core-1",
            "coreVersion": "2.12.0",
            "platform": "linux",
            "architecture": "amd64",
            "status": "HEALTHY",
            "lastStatusUpdateTimestamp": stamp,
        }
    )
    return Provisioned(
        stack_name="edgekit-device",
        outputs={"ThingName": "edgekit-core-1", "ArtifactBucket": "b"},
        thing_group="g",
        thing_group_arn="arn:aws:iot:us-east-1:123456789012:thinggroup/g",
        things=("edgekit-core-1", "edgekit-core-2"),
        bucket="b",
        devices=(device,),
    )


def test_rows_show_every_thing_even_unregistered_ones() -> None:
    result = _provisioned()
    rows = result.to_rows()
    assert [r["thing"] for r in rows] == ["edgekit-core-1", "edgekit-core-2"]
    assert rows[0] == {
        "thing": "edgekit-core-1",
        "status": "HEALTHY",
        "core_version": "2.12.0",
        "platform": "linux",
        "architecture": "amd64",
        "last_status_update": "2026-11-23T10:00:00+00:00",
    }
    assert rows[1]["status"] == NOT_REGISTERED
    assert not result.healthy
    assert result.output_rows() == [
        {"output": "ThingName", "value": "edgekit-core-1"},
        {"output": "ArtifactBucket", "value": "b"},
    ]


def test_json_holds_what_later_notebooks_need() -> None:
    data = _provisioned().to_json()
    assert data["things"] == ["edgekit-core-1", "edgekit-core-2"]
    assert {"stack_name", "thing_group", "thing_group_arn", "bucket", "backend", "region"} <= set(
        data
    )


def test_component_names_come_from_settings() -> None:
    settings = Settings(inference_component="a.app", agent_component="a.agent")
    assert edgekit_component_names(settings) == ["a.app", "a.agent", settings.model_component]


def test_cli_has_provision_and_deprovision() -> None:
    parser = build_parser()
    args = parser.parse_args(["provision", "--devices", "3", "--thing-group", "g"])
    assert (args.device_count, args.thing_group, args.stack_name) == (3, "g", None)
    args = parser.parse_args(["deprovision", "--components", "--stack-name", "s"])
    assert args.components and args.stack_name == "s" and not args.keep_devices
