"""A deployment result with one device done and one failed, for the deploy unit tests."""

from __future__ import annotations

import pytest

from edgekit.deploy import DeploymentResult, DeviceStatus
from edgekit.settings import Settings

SETTINGS = Settings(backend="local")
MODEL, AGENT = SETTINGS.model_component, SETTINGS.agent_component


@pytest.fixture
def deployment_result() -> DeploymentResult:
    result = DeploymentResult("dep-1", "arn:aws:iot:r:1:thinggroup/g", {MODEL: "1.0.2"})
    result.devices = [
        DeviceStatus(
            "core-1",
            "SUCCEEDED",
            components={MODEL: ("1.0.2", "FINISHED"), AGENT: ("1.0.2", "RUNNING")},
        ),
        DeviceStatus("core-2", "FAILED", reason="agent broke"),
    ]
    return result
