"""Recipes as real components write them, deployed with plain boto3 to a real local device.

Components under ``components/`` were written from the AWS developer guide only:
platform wildcards (``os: all`` / ``any``), lifecycle keys the device does not run
(``Upgrade``, ``Uninstall``), ``{artifacts:decompressedPath}`` without a ZIP, and an
``aws.greengrass.labs.*`` component (an ordinary component, not an AWS-provided one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def device(gg_local: Any) -> Any:
    return gg_local.start_device()


def component_log(device: Any, name: str) -> str:
    path = device.layout.component_log(name)
    return path.read_text() if path.exists() else ""


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
    assert "manifest=all hello" in component_log(device, "com.example.PlatformAll")
    log = component_log(device, "com.example.PlatformAny")
    assert "manifest=any" in log
    assert "manifest=windows" not in log and "manifest=darwin" not in log
