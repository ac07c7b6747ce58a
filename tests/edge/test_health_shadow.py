"""The health shadow: the flat summary of a health message the app writes to a named shadow."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from edgekit.edge.config import parse_config
from edgekit.edge.health import CURRENT, SHADOW, Health, model_entry
from edgekit.edge.health_shadow import (
    EARLY_RESULTS,
    HealthShadowReporter,
    publish_health_shadow,
    shadow_update,
)
from edgekit.edge.stats import ModelStats
from edgekit.errors import ConfigurationError
from edgekit.local.ipc.authorization import MQTTPROXY_SERVICE, is_authorized
from edgekit.resources import components_dir
from edgekit.schemas import validate_health
from edgekit.schemas.health_shadow import (
    HEALTH_SHADOW,
    MAX_STATE_BYTES,
    REPORTED_KEYS,
    reported_state,
    update_topic,
)

SHA = "a" * 64
ENV = {"EDGEKIT_MODEL_PACKAGE": "/pkg", "EDGEKIT_MODEL_NAME": "m", "EDGEKIT_AGENT_SOCKET": "/s"}
ENV["EDGEKIT_SAMPLE_IMAGES"] = "/samples"


def _stats(published: int) -> dict[str, Any]:
    stats = ModelStats(60.0)
    for _ in range(published):
        stats.record_inference(4.0, False)
        stats.record_published()
    return stats.snapshot()


def _entry(role: str, published: int = 0, **identity: Any) -> dict[str, Any]:
    return model_entry(
        role,
        name="detector" if role == CURRENT else "candidate",
        version="1.4.0" if role == CURRENT else "1.5.0",
        identity={"package_sha256": SHA, "key_fingerprint": "SHA256:key", **identity},
        stats=_stats(published),
        state="running",
    )


def _health(models: list[dict[str, Any]] | None, problem: str | None = None) -> dict[str, Any]:
    health = Health()
    health.set_state("running" if problem is None else "degraded", problem)
    message = health.message(
        timestamp="2026-12-06T05:30:00.123Z",
        thing_name="line-1",
        spool_pending=0,
        spool_dropped=0,
        model={"name": "detector", "version": "1.4.0"} if models else None,
        started_at="2026-12-06T05:29:00.000Z",
        models=models,
        other_model_results=0,
    )
    validate_health(message)  # a real health message, as the app builds it
    return message


def test_the_reported_state_carries_the_current_model_proof() -> None:
    reported = reported_state(_health([_entry(CURRENT, 3), _entry(SHADOW, 7)]))
    assert list(reported) == list(REPORTED_KEYS)
    assert reported == {
        "thing_name": "line-1",
        "timestamp": "2026-12-06T05:30:00.123Z",
        "started_at": "2026-12-06T05:29:00.000Z",
        "health_state": "running",
        "problem": None,
        "model_name": "detector",
        "model_version": "1.4.0",
        "package_sha256": SHA,
        "key_fingerprint": "SHA256:key",
        "results_published": 3,  # the current model's, never the shadow candidate's
        "model_state": "running",
    }


def test_without_a_current_model_every_key_is_there_and_null() -> None:
    for models in (None, [], [_entry(SHADOW, 5)]):
        reported = reported_state(_health(models, problem="no model yet"))
        assert list(reported) == list(REPORTED_KEYS)
        assert reported["results_published"] == 0
        assert reported["health_state"] == "degraded" and reported["problem"] == "no model yet"
        for key in ("model_name", "model_version", "package_sha256", "key_fingerprint"):
            assert reported[key] is None, key
    unverified = reported_state(_health([_entry(CURRENT, 1, key_fingerprint=None)]))
    assert unverified["key_fingerprint"] is None and unverified["package_sha256"] == SHA


def test_the_update_document_stays_well_under_the_shadow_limit() -> None:
    message = _health([_entry(CURRENT, 2)], problem="x" * 5000)
    message["thing_name"] = "t" * 128
    topic, payload = shadow_update("line-1", HEALTH_SHADOW, message)
    assert topic == "$aws/things/line-1/shadow/name/edgekit-health/update"
    assert topic == update_topic("line-1")
    document = json.loads(payload)
    assert set(document) == {"state"} and set(document["state"]) == {"reported"}
    assert len(json.dumps(document["state"]).encode()) < MAX_STATE_BYTES // 2
    assert document["state"]["reported"]["problem"].startswith("xxx")
    message["sequence"] = 12
    assert json.loads(shadow_update("line-1", "s", message)[1])["clientToken"] == "health-12"


class _Ipc:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.published: list[tuple[str, bytes, int]] = []

    def publish_to_iot_core(self, topic: str, payload: bytes, qos: int = 1) -> None:
        if self.error is not None:
            raise self.error
        self.published.append((topic, payload, qos))


def test_a_failed_shadow_update_is_counted_and_never_raised() -> None:
    health, message = Health(), _health([_entry(CURRENT, 1)])
    ipc = _Ipc()
    assert publish_health_shadow(ipc, health, "line-1", HEALTH_SHADOW, message)
    ((topic, payload, qos),) = ipc.published
    assert qos == 1 and topic.endswith("/shadow/name/edgekit-health/update")
    assert json.loads(payload)["state"]["reported"]["package_sha256"] == SHA
    failing = _Ipc(RuntimeError("UnauthorizedError: not allowed"))
    assert not publish_health_shadow(failing, health, "line-1", HEALTH_SHADOW, message)
    assert health.health_publish_errors == 1  # reported in the next health message


def test_health_shadow_configuration() -> None:
    assert parse_config({}, ENV).health_shadow == HEALTH_SHADOW
    assert parse_config({"HealthShadow": ""}, ENV).health_shadow == ""  # off
    assert parse_config({"HealthShadow": "ops:health_2"}, ENV).health_shadow == "ops:health_2"
    with pytest.raises(ConfigurationError, match="HealthShadow='a/b'"):
        parse_config({"HealthShadow": "a/b"}, ENV)
    with pytest.raises(ConfigurationError, match="device shadow name"):
        parse_config({"HealthShadow": "x" * 65}, ENV)


def test_the_recipe_names_the_shadow_and_authorizes_its_update_topic() -> None:
    path = components_dir() / "com.qualityinspection" / "recipe.yaml"
    recipe = yaml.safe_load(path.read_text())
    defaults = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    assert defaults["HealthShadow"] == HEALTH_SHADOW
    access = defaults["accessControl"]
    allowed = "aws.greengrass#PublishToIoTCore"

    def allows(topic: str) -> bool:
        return is_authorized(access, MQTTPROXY_SERVICE, allowed, topic, thing_name="line-1")

    assert allows(update_topic("line-1"))
    assert not allows("$aws/things/line-1/shadow/name/edgekit-health/delete")
    assert not allows("$aws/things/line-1/shadow/update")  # the classic shadow: not ours


def _message(published: int, *, sha: str = SHA, problem: str | None = None) -> dict[str, Any]:
    return _health([_entry(CURRENT, published, package_sha256=sha)], problem)


# (seconds since the last update, the next message) -> an update is due
DUE_CASES: list[tuple[str, float, dict[str, Any], bool]] = [
    ("same summary, within the interval", 10.0, _message(200), False),
    ("only the timestamp and a large count changed", 10.0, _message(250), False),
    ("an early results count changed", 10.0, _message(3), True),
    ("a new package", 10.0, _message(200, sha="b" * 64), True),
    ("a problem appeared", 10.0, _message(200, problem="agent refused the package"), True),
    ("the interval passed", 300.0, _message(200), True),
]


@pytest.mark.parametrize(
    ("case", "after", "message", "due"), DUE_CASES, ids=[c[0] for c in DUE_CASES]
)
def test_the_shadow_is_updated_when_a_reader_would_see_a_difference(
    case: str, after: float, message: dict[str, Any], due: bool
) -> None:
    """IoT Core bills each shadow operation: a steady device updates once per
    HealthShadowInterval, but a new package, a problem and early results go out at once."""
    now = [1000.0]
    reporter = HealthShadowReporter(clock=lambda: now[0])
    ipc, health = _Ipc(), Health()
    first = _message(2 if "early" in case else 200)
    assert reporter.report(ipc, health, "line-1", HEALTH_SHADOW, 300.0, first) is True
    now[0] += after
    outcome = reporter.report(ipc, health, "line-1", HEALTH_SHADOW, 300.0, message)
    assert outcome is (True if due else None), case
    assert len(ipc.published) == (2 if due else 1)
    assert reporter.skipped == (0 if due else 1)
    assert EARLY_RESULTS >= 3


def test_an_interval_of_zero_updates_with_every_message_and_a_failure_is_retried() -> None:
    reporter, health = HealthShadowReporter(clock=lambda: 5.0), Health()
    ipc = _Ipc()
    for _ in range(3):
        assert reporter.report(ipc, health, "line-1", HEALTH_SHADOW, 0.0, _message(200))
    assert len(ipc.published) == 3
    steady = HealthShadowReporter(clock=lambda: 5.0)
    failing = _Ipc(RuntimeError("connection lost"))
    assert steady.report(failing, health, "line-1", HEALTH_SHADOW, 300.0, _message(200)) is False
    # Not accepted: the next message is due again, whatever the interval.
    assert steady.report(ipc, health, "line-1", HEALTH_SHADOW, 300.0, _message(200)) is True
    assert parse_config({}, ENV).health_shadow_interval == 300.0
    assert parse_config({"HealthShadowInterval": 0}, ENV).health_shadow_interval == 0.0
    with pytest.raises(ConfigurationError, match="HealthShadowInterval"):
        parse_config({"HealthShadowInterval": -1}, ENV)


def test_no_shadow_name_means_no_update() -> None:
    ipc = _Ipc()
    assert HealthShadowReporter().report(ipc, Health(), "line-1", "", 0.0, _message(1)) is None
    assert ipc.published == []
