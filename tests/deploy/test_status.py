"""edgekit.deploy.status: what each device reports, read through every page.

The regression tests page the Greengrass answers with botocore's Stubber: a device on a
fleet lists many deployments and components, and the deployment (or component) wanted
may be on any page. The first-page-only reader this replaced reported such a device as
PENDING forever.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from edgekit.deploy import (
    DeploymentResult,
    deployment_columns,
    deployment_rows,
    device_status,
    execution_status,
    installed_components,
    installed_rows,
    target_devices,
    wait_for_deployment,
)
from edgekit.deploy import status as status_module
from edgekit.settings import Settings

SETTINGS = Settings(backend="local")
MODEL, AGENT, APP = SETTINGS.model_component, SETTINGS.agent_component, SETTINGS.inference_component
THING = "core-1"
GROUP_ARN = "arn:aws:iot:eu-west-1:123456789012:thinggroup/g"
WANT = {MODEL: "1.0.2", AGENT: "1.0.2", APP: "1.0.2"}


def test_deployment_rows_show_version_and_state_per_component(
    deployment_result: DeploymentResult,
) -> None:
    rows = deployment_rows(SETTINGS, deployment_result)
    assert rows[0] == {
        "thing": "core-1",
        "status": "SUCCEEDED",
        MODEL: "1.0.2 FINISHED",
        AGENT: "1.0.2 RUNNING",
        APP: "- MISSING",
    }
    assert rows[1]["status"] == "FAILED"
    headers = [h for _, h in deployment_columns(SETTINGS)]
    assert headers[:2] == ["thing", "deployment"] and f"agent ({AGENT})" in headers


# --------------------------------------------------------------------------------------
# Two pages of everything


@pytest.fixture
def greengrass() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "greengrassv2",
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def deployment_row(deployment_id: str, status: str) -> dict[str, Any]:
    return {
        "deploymentId": deployment_id,
        "deploymentName": deployment_id,
        "targetArn": GROUP_ARN,
        "coreDeviceExecutionStatus": status,
        "reason": f"{deployment_id} {status.lower()}",
        "creationTimestamp": 0,
        "modifiedTimestamp": 0,
    }


def component_row(name: str, version: str, state: str) -> dict[str, Any]:
    return {"componentName": name, "componentVersion": version, "lifecycleState": state}


def stub_effective_deployments(stubber: Stubber, thing: str = THING) -> None:
    """Page 1: older deployments only; page 2: ``dep-new`` SUCCEEDED."""
    stubber.add_response(
        "list_effective_deployments",
        {
            "effectiveDeployments": [deployment_row(f"dep-old-{i}", "SUCCEEDED") for i in range(3)],
            "nextToken": "page-2",
        },
        {"coreDeviceThingName": thing},
    )
    stubber.add_response(
        "list_effective_deployments",
        {"effectiveDeployments": [deployment_row("dep-new", "SUCCEEDED")]},
        {"coreDeviceThingName": thing, "nextToken": "page-2"},
    )


def stub_installed_components(stubber: Stubber, thing: str = THING) -> None:
    """Page 1: the model and another component; page 2: the agent and the app."""
    wanted = {"coreDeviceThingName": thing, "topologyFilter": "ALL"}
    stubber.add_response(
        "list_installed_components",
        {
            "installedComponents": [
                component_row(MODEL, "1.0.2", "FINISHED"),
                component_row("aws.greengrass.Nucleus", "2.12.0", "FINISHED"),
            ],
            "nextToken": "page-2",
        },
        wanted,
    )
    stubber.add_response(
        "list_installed_components",
        {
            "installedComponents": [
                component_row(AGENT, "1.0.2", "RUNNING"),
                component_row(APP, "1.0.2", "RUNNING"),
            ]
        },
        {**wanted, "nextToken": "page-2"},
    )


def test_device_status_reads_every_page(greengrass: tuple[Any, Stubber]) -> None:
    client, stubber = greengrass
    stub_effective_deployments(stubber)
    stub_installed_components(stubber)
    status = device_status(client, THING, "dep-new", WANT)
    assert (status.execution_status, status.reason) == ("SUCCEEDED", "dep-new succeeded")
    assert status.components == {
        MODEL: ("1.0.2", "FINISHED"),
        AGENT: ("1.0.2", "RUNNING"),
        APP: ("1.0.2", "RUNNING"),
    }
    assert status.ready


def test_wait_for_deployment_sees_a_report_on_the_second_page(
    greengrass: tuple[Any, Stubber], fake_iot: Any
) -> None:
    client, stubber = greengrass
    stubber.add_response(
        "get_core_device",
        {"coreDeviceThingName": THING, "status": "HEALTHY"},
        {"coreDeviceThingName": THING},
    )
    stub_effective_deployments(stubber)
    stub_installed_components(stubber)
    result = DeploymentResult("dep-new", GROUP_ARN, dict(WANT))
    iot = fake_iot([THING])
    done = wait_for_deployment(SETTINGS, result, timeout=5, greengrass=client, iot=iot, poll=0.01)
    assert iot.calls[0] == {"thingGroupName": GROUP_ARN.rsplit("/", 1)[1], "recursive": True}
    assert [(d.thing_name, d.execution_status) for d in done.devices] == [(THING, "SUCCEEDED")]


def test_settings_level_queries_read_every_page(
    greengrass: tuple[Any, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, stubber = greengrass
    monkeypatch.setattr(status_module.clients, "client", lambda service, settings: client)
    stub_installed_components(stubber)
    assert installed_components(SETTINGS, THING)[APP] == ("1.0.2", "RUNNING")
    stub_effective_deployments(stubber)
    assert execution_status(SETTINGS, THING, "dep-new") == "SUCCEEDED"
    stub_installed_components(stubber)
    stub_effective_deployments(stubber)
    (row,) = installed_rows(SETTINGS, [THING], deployment_id="dep-new")
    assert row == {
        "thing": THING,
        "status": "SUCCEEDED",
        MODEL: "1.0.2 FINISHED",
        AGENT: "1.0.2 RUNNING",
        APP: "1.0.2 RUNNING",
    }


def test_a_deployment_the_device_has_not_reported_is_pending(
    greengrass: tuple[Any, Stubber],
) -> None:
    client, stubber = greengrass
    stub_effective_deployments(stubber)
    stub_installed_components(stubber)
    status = device_status(client, THING, "dep-unknown", WANT)
    assert status.execution_status == "PENDING" and not status.ready and not status.failed


def test_target_devices_are_the_groups_core_device_members(
    greengrass: tuple[Any, Stubber], fake_iot: Any
) -> None:
    """A group targets its member things that are core devices, not ListCoreDevices' answer.

    On AWS, ListCoreDevices(thingGroupArn) names only devices that already deployed to the
    group (and keeps devices that left), so a fresh group would look empty.
    """
    client, stubber = greengrass
    stubber.add_response(
        "get_core_device", {"coreDeviceThingName": "core-a"}, {"coreDeviceThingName": "core-a"}
    )
    stubber.add_client_error(
        "get_core_device",
        service_error_code="ResourceNotFoundException",
        http_status_code=404,
        expected_params={"coreDeviceThingName": "sensor-b"},
    )
    assert target_devices(client, fake_iot(["sensor-b", "core-a"]), GROUP_ARN) == ["core-a"]
    assert target_devices(client, fake_iot([]), "arn:aws:iot:us-east-1:1:thing/solo") == ["solo"]
    # known core devices are not asked again
    assert target_devices(client, fake_iot(["core-a"]), GROUP_ARN, known=["core-a"]) == ["core-a"]
