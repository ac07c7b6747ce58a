"""Stage deployments' component specs: candidate, rollback, shadow; the IoT job config."""

from __future__ import annotations

import json

import pytest

from edgekit.deploy import MODEL_RESET
from edgekit.rollout.observe import FleetObserver
from edgekit.rollout.shadow import shadow_component, shadow_specs
from edgekit.rollout.stages import (
    AGENT_RESET,
    SHADOW_RESET,
    candidate_specs,
    job_configuration,
    rollback_specs,
)
from edgekit.settings import Settings

S = Settings(backend="local")
MODEL, AGENT, APP = S.model_component, S.agent_component, S.inference_component
PREVIOUS = {
    MODEL: {"componentVersion": "1.0.0", "configurationUpdate": {"reset": list(MODEL_RESET)}},
    AGENT: {"componentVersion": "1.0.0"},
    APP: {
        "componentVersion": "1.0.0",
        "configurationUpdate": {"merge": json.dumps({"InferenceInterval": 0.2})},
    },
}


def test_candidate_keeps_the_apps_configuration_and_resets_generated_keys() -> None:
    specs = candidate_specs(S, {MODEL: "1.0.1", AGENT: "1.0.1", APP: "1.0.1"}, PREVIOUS)
    assert {n: s["componentVersion"] for n, s in specs.items()} == dict.fromkeys(
        (MODEL, AGENT, APP), "1.0.1"
    )
    assert specs[MODEL]["configurationUpdate"] == {"reset": MODEL_RESET}
    assert specs[AGENT]["configurationUpdate"] == {"reset": AGENT_RESET}
    assert json.loads(specs[APP]["configurationUpdate"]["merge"]) == {"InferenceInterval": 0.2}
    assert specs[APP]["configurationUpdate"]["reset"] == SHADOW_RESET


def test_rollback_is_the_previous_deployment_with_resets() -> None:
    specs = rollback_specs(S, PREVIOUS)
    assert {n: s["componentVersion"] for n, s in specs.items()} == dict.fromkeys(
        (MODEL, AGENT, APP), "1.0.0"
    )
    assert specs[AGENT]["configurationUpdate"]["reset"] == AGENT_RESET
    assert sorted(specs[MODEL]["configurationUpdate"]["reset"]) == sorted(MODEL_RESET)
    assert (
        specs[APP]["configurationUpdate"]["merge"] == PREVIOUS[APP]["configurationUpdate"]["merge"]
    )
    assert PREVIOUS[AGENT] == {"componentVersion": "1.0.0"}, "the input is not changed"


def test_shadow_adds_the_candidate_component_and_turns_shadow_on() -> None:
    specs = shadow_specs(S, PREVIOUS, "2.0.0")
    name = shadow_component(S)
    assert name == f"{MODEL}.shadow" and specs[name] == {"componentVersion": "2.0.0"}
    assert specs[MODEL]["componentVersion"] == "1.0.0"
    app = specs[APP]["configurationUpdate"]
    assert json.loads(app["merge"]) == {
        "InferenceInterval": 0.2,
        "ShadowPackagePath": f"{name}/package",
        "ShadowModelName": "",
    }
    assert not set(app.get("reset") or []) & set(SHADOW_RESET)


@pytest.mark.parametrize(("devices", "threshold"), [(1, 100.0), (2, 50.0), (8, 12.5), (500, 1.0)])
def test_job_configuration_aborts_at_the_first_failed_device(
    devices: int, threshold: float
) -> None:
    config = job_configuration(devices)
    (criteria,) = config["abortConfig"]["criteriaList"]
    assert criteria["failureType"] == "FAILED" and criteria["action"] == "CANCEL"
    assert criteria["thresholdPercentage"] == threshold
    assert config["jobExecutionsRolloutConfig"]["maximumPerMinute"] >= 1


def test_observer_windows_by_arrival_time_and_package() -> None:
    obs = FleetObserver(S)
    sha_new, sha_old = "n" * 64, "o" * 64

    def res(thing: str, sha: str, mid: str, defect: bool = False) -> dict:
        return {
            "thing_name": thing,
            "message_id": mid,
            "defect": defect,
            "latency_ms": {"total": 5.0},
            "model": {"version": "2", "package_sha256": sha},
        }

    obs.feed_result(res("c1", sha_old, "a"), at=10.0)  # before the window
    obs.feed_result(res("c1", sha_new, "b", True), at=20.0)
    obs.feed_result(res("c1", sha_new, "b", True), at=21.0)  # a re-send: dropped
    obs.feed_result(res("c1", sha_old, "c"), at=22.0)  # the old package: not the candidate's
    obs.feed_result(res("c1", sha_new, "d"), at=40.0)  # after the window
    obs.feed_health({"thing_name": "c1", "images_skipped": 1}, at=15.0)
    obs.feed_health({"thing_name": "c1", "images_skipped": 3}, at=25.0)
    obs._on_result(type("M", (), {"payload": b"not json", "received_at": 1.0})())  # type: ignore[arg-type]
    window = obs.window("c1", 18.0, 30.0, sha_new, "2")
    assert (window.results, window.defects, window.errors) == (1, 1, 2)
    assert obs.invalid == 1 and obs.latest_health("c1") == {"thing_name": "c1", "images_skipped": 3}
