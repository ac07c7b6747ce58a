"""Recipes as real components write them, deployed with plain boto3 to a real local device.

Components under ``components/`` were written from the AWS developer guide only:
platform wildcards (``os: all`` / ``any``), lifecycle keys the device does not run
(``Upgrade``, ``Uninstall``), ``{artifacts:decompressedPath}`` without a ZIP, and an
``aws.greengrass.labs.*`` component (an ordinary component, not an AWS-provided one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def device(gg_local: Any) -> Any:
    return gg_local.start_device()


def test_os_all_and_any_are_wildcards(
    gg_local: Any, device: Any, deploy_and_wait: Callable[..., dict[str, Any]]
) -> None:
    gg_local.publish("com.example.PlatformAll")
    gg_local.publish("com.example.PlatformAny")
    row = deploy_and_wait(
        gg_local.gg,
        gg_local.thing_arn(device.thing_name),
        {"com.example.PlatformAll": "1.0.0", "com.example.PlatformAny": "1.0.0"},
    )
    assert row["coreDeviceExecutionStatus"] == "SUCCEEDED", row
    gg_local.component_log(device, "com.example.PlatformAll", contains="manifest=all hello")
    log = gg_local.component_log(device, "com.example.PlatformAny", contains="manifest=any")
    assert "manifest=windows" not in log and "manifest=darwin" not in log


def test_upgrade_and_uninstall_are_accepted_and_ignored_with_a_warning(
    gg_local: Any, device: Any, deploy_and_wait: Callable[..., dict[str, Any]]
) -> None:
    gg_local.publish("com.example.LifecycleExtras")  # CreateComponentVersion accepts them
    row = deploy_and_wait(
        gg_local.gg,
        gg_local.thing_arn(device.thing_name),
        {"com.example.LifecycleExtras": "1.0.0"},
    )
    assert row["coreDeviceExecutionStatus"] == "SUCCEEDED", row
    log = gg_local.component_log(device, "com.example.LifecycleExtras", contains="run-ran")
    assert "bootstrap-ran" in log and "install-ran" in log
    assert log.index("bootstrap-ran") < log.index("install-ran") < log.index("run-ran")
    assert "upgrade-ran" not in log and "uninstall-ran" not in log
    for step in ("Upgrade", "Uninstall"):
        assert f"lifecycle step {step} is not one Greengrass runs" in log
        assert "ignored" in log


def test_decompressed_path_exists_without_a_zip(
    gg_local: Any, device: Any, deploy_and_wait: Callable[..., dict[str, Any]]
) -> None:
    gg_local.publish("com.example.DecompressedPath")
    row = deploy_and_wait(
        gg_local.gg,
        gg_local.thing_arn(device.thing_name),
        {"com.example.DecompressedPath": "1.0.0"},
    )
    assert row["coreDeviceExecutionStatus"] == "SUCCEEDED", row
    gg_local.component_log(
        device, "com.example.DecompressedPath", contains="decompressed folder is there"
    )


def test_a_labs_component_is_downloaded_and_run(
    gg_local: Any, device: Any, deploy_and_wait: Callable[..., dict[str, Any]]
) -> None:
    """aws.greengrass.labs.* is not AWS-provided: it must be published, then it runs."""
    gg = gg_local.gg
    arn = gg_local.thing_arn(device.thing_name)
    with pytest.raises(gg.exceptions.ResourceNotFoundException):
        deploy_and_wait(gg, arn, {"aws.greengrass.labs.HelloLabs": "1.0.0"})
    gg_local.publish("aws.greengrass.labs.HelloLabs")
    row = deploy_and_wait(
        gg,
        arn,
        {"aws.greengrass.labs.HelloLabs": "1.0.0", "aws.greengrass.Nucleus": "2.12.0"},
    )
    assert row["coreDeviceExecutionStatus"] == "SUCCEEDED", row
    gg_local.component_log(
        device, "aws.greengrass.labs.HelloLabs", contains=f"Hello from labs, {device.thing_name}!"
    )

    def labs_state() -> str:
        rows = gg.list_installed_components(coreDeviceThingName=device.thing_name)
        states = {c["componentName"]: c["lifecycleState"] for c in rows["installedComponents"]}
        return states.get("aws.greengrass.labs.HelloLabs", "")

    deadline = time.monotonic() + 30
    while labs_state() != "FINISHED" and time.monotonic() < deadline:
        time.sleep(0.1)  # the device reports the state change on its own
    assert labs_state() == "FINISHED"


def test_a_public_version_aws_never_published_is_refused(gg_local: Any, device: Any) -> None:
    with pytest.raises(gg_local.gg.exceptions.ResourceNotFoundException, match="public version"):
        gg_local.gg.create_deployment(
            targetArn=gg_local.thing_arn(device.thing_name),
            components={"aws.greengrass.Nucleus": {"componentVersion": "3.0.0"}},
        )
