"""The deployment's componentUpdatePolicy with IPC SubscribeToComponentUpdates and
DeferComponentUpdate, on a real local device, deployed with plain boto3.

``components/com.example.DeferUpdates`` was written from the AWS documentation only (the
"Defer component updates" tutorial): it subscribes to component updates, defers each
deployment a few times, then acknowledges it, and writes every event it sees to a file.
``components/com.example.UpdateMarker`` writes to the same file when a version of it
starts. The order of the lines is what a user observes: the update waited while the
component deferred, and the component heard about it before and after.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

PYTHON = {"python3": sys.executable}  # the recipe's python3: this test's interpreter
DEFER = "com.example.DeferUpdates"
MARKER = "com.example.UpdateMarker"


def _lines(path: Path, until: str, timeout: float = 30.0) -> list[str]:
    """The file's lines once ``until`` is one of them."""
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if until in lines:
            return lines
        if time.monotonic() > deadline:
            raise AssertionError(f"{until!r} not in {path} after {timeout} s: {lines}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def setup(
    gg_local: Any,
    tmp_path_factory: pytest.TempPathFactory,
    deploy_and_wait: Callable[..., dict[str, Any]],
) -> dict[str, Any]:
    """A device running DeferUpdates and UpdateMarker 1.0.0; the file they write to."""
    events = tmp_path_factory.mktemp("updates") / "events.txt"
    gg_local.publish(DEFER, replace=PYTHON)
    for version in ("1.0.0", "1.0.1", "1.0.2"):
        gg_local.publish(MARKER, replace={"1.0.0": version})
    device = gg_local.start_device()
    config = {"merge": json.dumps({"EventsFile": str(events)})}
    components = {
        DEFER: {"componentVersion": "1.0.0", "configurationUpdate": config},
        MARKER: {"componentVersion": "1.0.0", "configurationUpdate": config},
    }
    first = {"device": device, "events": events, "components": components}
    _deploy(gg_local, first, deploy_and_wait, "1.0.0")
    _lines(events, "subscribed")  # the component listens before the tests' deployments
    return first


def _deploy(
    gg_local: Any,
    setup: dict[str, Any],
    deploy_and_wait: Callable[..., dict[str, Any]],
    marker_version: str,
    **kwargs: Any,
) -> dict[str, Any]:
    components = dict(setup["components"])
    components[MARKER] = {**components[MARKER], "componentVersion": marker_version}
    row = deploy_and_wait(
        gg_local.gg, gg_local.thing_arn(setup["device"].thing_name), components, **kwargs
    )
    assert row["coreDeviceExecutionStatus"] == "SUCCEEDED", row
    return row


def test_update_waits_while_a_component_defers(
    gg_local: Any, setup: dict[str, Any], deploy_and_wait: Callable[..., dict[str, Any]]
) -> None:
    events = setup["events"]
    before = _lines(events, "subscribed")
    row = _deploy(gg_local, setup, deploy_and_wait, "1.0.1")
    deployment = row["deploymentId"]
    lines = _lines(events, f"post {deployment}")
    assert lines[len(before) :] == [
        f"pre {deployment} deferred",
        f"pre {deployment} deferred",
        f"pre {deployment} acknowledged",
        "marker 1.0.1 started",
        f"post {deployment}",
    ], lines
    runtime_log = setup["device"].layout.runtime_log.read_text()
    assert f"deployment {deployment} deferred by {DEFER} for 200 ms: busy" in runtime_log


def test_skip_notify_components_updates_without_asking(
    gg_local: Any, setup: dict[str, Any], deploy_and_wait: Callable[..., dict[str, Any]]
) -> None:
    events = setup["events"]
    before = _lines(events, "subscribed")
    row = _deploy(
        gg_local,
        setup,
        deploy_and_wait,
        "1.0.2",
        deploymentPolicies={
            "componentUpdatePolicy": {"action": "SKIP_NOTIFY_COMPONENTS", "timeoutInSeconds": 60}
        },
    )
    lines = _lines(events, "marker 1.0.2 started")
    new = lines[len(before) :]
    assert not [line for line in new if row["deploymentId"] in line], lines
    assert new == ["marker 1.0.2 started"], lines
