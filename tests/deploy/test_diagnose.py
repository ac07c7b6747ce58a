"""edgekit.deploy.diagnose: which component failed, where its log is, the short reason."""

from __future__ import annotations

import pytest

from edgekit.deploy import Failure, device_log_tail, failing_component, log_location
from edgekit.settings import Settings

SETTINGS = Settings(backend="local")
AWS = Settings(backend="aws", region="eu-west-1")
MODEL, AGENT, APP = SETTINGS.model_component, SETTINGS.agent_component, SETTINGS.inference_component


@pytest.mark.parametrize(
    ("reason", "component"),
    [
        (f"component {AGENT} 1.0.1 is BROKEN: run script exited", AGENT),
        (f"component {APP} 1.0.1 is BROKEN", APP),
        (f"{MODEL}: artifact digest mismatch", MODEL),
        (f"last lines of /root/logs/{APP}.log:", APP),
        (f"last lines of /root/logs/{AGENT}.log:", AGENT),
        (f"{APP}.", APP),
        ("the device ran out of disk", None),
    ],
)
def test_failing_component_is_the_longest_name_in_the_reason(reason: str, component: str) -> None:
    assert failing_component(SETTINGS, reason) == component


def test_log_location_per_backend() -> None:
    local = log_location(SETTINGS, "core-1", AGENT)
    assert f"`edgekit local device logs core-1 {AGENT}`" in local
    assert log_location(SETTINGS, "core-1", None).startswith("`edgekit local device logs core-1`")
    aws = log_location(AWS, "core-1", AGENT)
    assert f"/greengrass/v2/logs/{AGENT}.log" in aws
    assert f"/aws/greengrass/UserComponent/eu-west-1/{AGENT}" in aws
    assert "/thing/core-1" in aws
    assert device_log_tail(AWS, "core-1", AGENT) == ""


def test_failure_summary_drops_embedded_log_lines_and_keeps_the_rollback() -> None:
    reason = (
        f"component {AGENT} 1.0.1 is BROKEN: exited 1 (3 errors); last lines of /x/{AGENT}.log:\n"
        "line one\nline two\n... state BROKEN (3 errors); rolled back to the previous components"
    )
    failure = Failure("core-1", "FAILED", reason, AGENT, "", "")
    assert failure.summary == (
        f"component {AGENT} 1.0.1 is BROKEN: exited 1 (3 errors); "
        "rolled back to the previous components"
    )
    assert Failure("t", "FAILED", "", None, "", "").summary == "no reason given"
