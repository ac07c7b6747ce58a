"""A deployment result with one device done and one failed, for the deploy unit tests."""

from __future__ import annotations

from typing import Any

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


class FakeIot:
    """IoT ListThingsInThingGroup: the group's member things (one page, no paginator)."""

    def __init__(self, members: list[str]) -> None:
        self.members = members
        self.calls: list[dict[str, Any]] = []

    def can_paginate(self, name: str) -> bool:
        return False

    def list_things_in_thing_group(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return {"things": list(self.members)}


@pytest.fixture
def fake_iot() -> type[FakeIot]:
    """The `FakeIot` class (conftest modules are not importable under importlib mode)."""
    return FakeIot
