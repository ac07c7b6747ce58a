"""Proof of inspection from synthetic health and result messages (ProofCollector.feed), and
wait_for_deployment's verdicts with a fake Greengrass: proven, failed, silent, dying app."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from edgekit.deploy import (
    DeploymentResult,
    DeviceProof,
    ProofCollector,
    ProofCriteria,
    proof_table,
    wait_for_deployment,
)
from edgekit.errors import ConfigurationError, DeploymentError, DeviceDeploymentError
from edgekit.schemas import utc_timestamp
from edgekit.settings import Settings

SETTINGS = Settings(backend="local")
MODEL, AGENT, APP = SETTINGS.model_component, SETTINGS.agent_component, SETTINGS.inference_component
SHA = "a" * 64
OTHER_SHA = "b" * 64
KEY = "0123456789abcdef"
SINCE = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)
_ids = itertools.count()


def criteria(**changes: Any) -> ProofCriteria:
    values: dict[str, Any] = dict(
        package_sha256=SHA,
        model_name="tag-scratch-detector",
        model_version="1.0.0",
        key_fingerprint=KEY,
        min_results=3,
        since=SINCE,
    )
    values.update(changes)
    return ProofCriteria(**values)


def counts(results: int = 5) -> dict[str, Any]:
    return {
        "images": results,
        "results_published": results,
        "errors": 0,
        "latency_ms": {"p50": 4.0, "p95": 9.0},
        "defect_rate": 0.2,
    }


def health(
    thing: str,
    *,
    sha: str | None = SHA,
    key: str | None = KEY,
    at: datetime | None = None,
    state: str = "running",
    models: bool = True,
) -> dict[str, Any]:
    when = at or SINCE + timedelta(seconds=5)
    msg: dict[str, Any] = {
        "timestamp": utc_timestamp(when),
        "thing_name": thing,
        "images_processed": 5,
        "images_skipped": 0,
        "skipped": [],
        "spool": {"pending": 0, "dropped": 0},
        "model": {"name": "tag-scratch-detector", "version": "1.0.0"},
        "state": state,
        "message_id": f"h-{next(_ids)}",
    }
    if models:
        msg["started_at"] = utc_timestamp(when - timedelta(seconds=3))
        msg["models"] = [
            {
                "role": "current",
                "name": "tag-scratch-detector",
                "version": "1.0.0",
                "package_sha256": sha,
                "key_fingerprint": key,
                "since_start": counts(),
                "window": {**counts(), "seconds": 30.0},
            }
        ]
    return msg


def result(
    thing: str, *, sha: str | None = SHA, at: datetime | None = None, total: float = 7.0
) -> dict[str, Any]:
    model: dict[str, Any] = {"name": "tag-scratch-detector", "version": "1.0.0"}
    if sha is not None:
        model["package_sha256"] = sha
    return {
        "timestamp": utc_timestamp(at or SINCE + timedelta(seconds=2)),
        "thing_name": thing,
        "image_name": "tag-001.jpg",
        "model": model,
        "detections": [],
        "defect": False,
        "latency_ms": {"preprocess": 1.0, "inference": total - 1.0, "total": total},
        "message_id": f"r-{next(_ids)}",
    }


def proven_collector(things: list[str], **changes: Any) -> ProofCollector:
    collector = ProofCollector(SETTINGS, criteria(**changes), things)
    for thing in things:
        collector.feed(health(thing))
        for _ in range(3):
            collector.feed(result(thing))
    return collector


# --- ProofCollector: what the messages prove ------------------------------------------


def test_health_and_enough_results_after_success_prove_the_device() -> None:
    collector = proven_collector(["core-1"])
    assert collector.proof("core-1").state == "PENDING"  # Greengrass has not said SUCCEEDED
    collector.set_status("core-1", "SUCCEEDED")
    proof = collector.proof("core-1")
    assert proof.state == "PROVEN" and proof.problem is None
    assert (proof.package_sha256, proof.key_fingerprint, proof.results) == (SHA, KEY, 3)
    assert proof.p95_ms == pytest.approx(7.0) and proof.health_state == "running"
    assert len(collector.results("core-1")) == 3 and collector.health("core-1") is not None


@pytest.mark.parametrize(
    ("messages", "problem"),
    [
        pytest.param([], "no health message", id="silent"),
        pytest.param(
            [health("core-1", sha=OTHER_SHA)] + [result("core-1", sha=None)] * 3,
            "not the deployed",
            id="health-reports-another-package",
        ),
        pytest.param(
            [health("core-1", key="ffffffffffffffff")] + [result("core-1")] * 3,
            "key ffffffffffffffff, not the deployed key",
            id="agent-kept-the-old-key",
        ),
        pytest.param(
            [health("core-1"), result("core-1"), result("core-1")],
            "2 of 3 results",
            id="too-few-results",
        ),
        pytest.param(
            [health("core-1")] + [result("core-1", sha=OTHER_SHA) for _ in range(3)],
            "0 of 3 results",
            id="results-of-another-package",
        ),
        pytest.param(
            [health("core-1")]
            + [result("core-1", at=SINCE - timedelta(seconds=10)) for _ in range(3)],
            "0 of 3 results",
            id="results-from-before-the-deployment",
        ),
        pytest.param(
            [health("core-1", at=SINCE - timedelta(seconds=30))] + [result("core-1")] * 3,
            "no health message",
            id="health-from-before-the-deployment",
        ),
        pytest.param(
            [health("core-1", models=False)] + [result("core-1")] * 3,
            "no current model",
            id="health-v1-without-models",
        ),
    ],
)
def test_missing_evidence_keeps_the_device_pending_with_a_named_problem(
    messages: list[dict[str, Any]], problem: str
) -> None:
    collector = ProofCollector(SETTINGS, criteria(), ["core-1"])
    for msg in messages:
        collector.feed(dict(msg, message_id=f"x-{next(_ids)}"))
    collector.set_status("core-1", "SUCCEEDED")
    proof = collector.proof("core-1")
    assert proof.state == "PENDING"
    assert problem in (proof.problem or "")


def run_health(thing: str, started: float, at: float, published: int) -> dict[str, Any]:
    """A health message of the app run that started ``started`` s after SINCE."""
    msg = health(thing, at=SINCE + timedelta(seconds=at))
    msg["started_at"] = utc_timestamp(SINCE + timedelta(seconds=started))
    for key in ("since_start", "window"):
        msg["models"][0][key]["results_published"] = published
    return msg


@pytest.mark.parametrize(
    ("messages", "proven", "problem"),
    [
        pytest.param(
            # Run 1 (started at 0 s) published 2 results and died; Greengrass restarted the
            # app at 3 s; run 2 published 1 and its health says so.
            [result("core-1", at=SINCE + timedelta(seconds=s)) for s in (1, 2, 4)]
            + [run_health("core-1", started=3, at=4.1, published=1)],
            False,
            "current run (started 2026-12-05T12:00:03.000Z) has 1 of 3 results",
            id="results-of-a-crash-looping-app-do-not-add-up",
        ),
        pytest.param(
            # The third result arrived before run 2's health: the latest health (run 1's)
            # counts only 2 of them.
            [run_health("core-1", started=0, at=1.1, published=2)]
            + [result("core-1", at=SINCE + timedelta(seconds=s)) for s in (1, 2, 4)],
            False,
            "its health counts 2 published, 3 received",
            id="health-has-not-counted-them",
        ),
        pytest.param(
            [result("core-1", at=SINCE + timedelta(seconds=s)) for s in (1, 2, 3)]
            + [run_health("core-1", started=0.5, at=3.5, published=3)],
            True,
            None,
            id="one-run-with-three-results",
        ),
    ],
)
def test_the_results_must_come_from_one_run_of_the_app(
    messages: list[dict[str, Any]], proven: bool, problem: str | None
) -> None:
    """Issue 11: an app that dies a few seconds after it starts publishes a result or two
    per run; Greengrass restarts it; the runs' results together must not prove it."""
    collector = ProofCollector(SETTINGS, criteria(), ["core-1"])
    for msg in messages:
        collector.feed(msg)
    collector.set_status("core-1", "SUCCEEDED")
    proof = collector.proof("core-1")
    assert proof.proven is proven, proof
    assert proof.results == 3  # every result of the package since the deployment is shown
    if problem is not None:
        assert problem in (proof.problem or "")


def test_repeated_results_count_once_and_clock_skew_is_tolerated() -> None:
    collector = ProofCollector(SETTINGS, criteria(), ["core-1"])
    collector.feed(health("core-1"))
    again = result("core-1")
    for _ in range(3):
        collector.feed(again)  # the device's spool re-sent it
    assert collector.proof("core-1").results == 1
    collector.feed(result("core-1", at=SINCE - timedelta(seconds=1)))  # within the skew
    assert collector.proof("core-1").results == 2


def test_results_without_package_field_count_by_name_and_version() -> None:
    collector = ProofCollector(SETTINGS, criteria(key_fingerprint=None), ["core-1"])
    collector.feed(health("core-1", key=None))
    for _ in range(3):
        collector.feed(result("core-1", sha=None))
    collector.set_status("core-1", "SUCCEEDED")
    assert collector.proof("core-1").proven


def test_latest_health_wins_and_invalid_messages_are_named() -> None:
    collector = proven_collector(["core-1"])
    collector.feed(health("core-1", sha=OTHER_SHA, at=SINCE + timedelta(seconds=1)))  # older
    collector.set_status("core-1", "SUCCEEDED")
    assert collector.proof("core-1").proven
    collector.feed(health("core-1", sha=OTHER_SHA, at=SINCE + timedelta(seconds=9)))
    assert "not the deployed" in (collector.proof("core-1").problem or "")
    collector.feed(b'{"thing_name": "core-1", "images_processed": "many"}')
    assert "invalid health message" in (collector.proof("core-1").problem or "")


def test_a_failed_device_stays_failed_and_the_table_shows_every_device() -> None:
    collector = proven_collector(["core-1", "core-2"])
    collector.set_status("core-1", "SUCCEEDED")
    collector.set_status("core-2", "SUCCEEDED")
    collector.fail("core-2", "component com.qualityinspection 1.0.1 is BROKEN")
    proofs = collector.proofs()
    assert [p.state for p in proofs.values()] == ["PROVEN", "FAILED"]
    assert "BROKEN" in (proofs["core-2"].reason or "")
    table = proof_table(proofs.values())
    assert "core-1" in table and "PROVEN" in table and SHA[:12] in table
    assert proofs["core-1"].as_dict()["package_sha256"] == SHA


def test_criteria_refuse_no_results_and_naive_times() -> None:
    with pytest.raises(ConfigurationError, match="min_results=0"):
        criteria(min_results=0)
    with pytest.raises(ConfigurationError, match="timezone"):
        criteria(since=datetime(2026, 1, 1))


# --- wait_for_deployment with a fake Greengrass ----------------------------------------

VERSIONS = {MODEL: "1.0.1", AGENT: "1.0.1", APP: "1.0.1"}


class FakeGreengrass:
    """ListCoreDevices / ListEffectiveDeployments / ListInstalledComponents from a script:
    ``script[thing]`` is a list of (status, {component: lifecycle state}) per poll; the last
    entry repeats."""

    def __init__(self, script: dict[str, list[tuple[str, dict[str, str]]]]) -> None:
        self.script = script
        self.polls: dict[str, int] = {}
        self.on_poll: Any = None

    def _now(self, thing: str) -> tuple[str, dict[str, str]]:
        steps = self.script[thing]
        return steps[min(self.polls.get(thing, 0), len(steps) - 1)]

    def get_paginator(self, name: str) -> Any:
        raise AttributeError(name)  # edgekit.awsapi.paginate falls back to the plain call

    def can_paginate(self, name: str) -> bool:
        return False

    def list_core_devices(self, **kwargs: Any) -> dict[str, Any]:
        return {"coreDevices": [{"coreDeviceThingName": t} for t in sorted(self.script)]}

    def get_core_device(self, coreDeviceThingName: str) -> dict[str, Any]:
        return {"coreDeviceThingName": coreDeviceThingName, "status": "HEALTHY"}

    def list_effective_deployments(self, coreDeviceThingName: str, **kw: Any) -> dict[str, Any]:
        status, _ = self._now(coreDeviceThingName)
        row = {"deploymentId": "dep-1", "coreDeviceExecutionStatus": status}
        if status == "FAILED":
            row["reason"] = f"{AGENT}: Install failed with exit code 1; rolled back"
        return {"effectiveDeployments": [row]}

    def list_installed_components(self, coreDeviceThingName: str, **kw: Any) -> dict[str, Any]:
        _, states = self._now(coreDeviceThingName)
        self.polls[coreDeviceThingName] = self.polls.get(coreDeviceThingName, 0) + 1
        if self.on_poll is not None:
            self.on_poll(coreDeviceThingName, self.polls[coreDeviceThingName])
        return {
            "installedComponents": [
                {"componentName": n, "componentVersion": VERSIONS[n], "lifecycleState": s}
                for n, s in states.items()
            ]
        }


RUNNING = {MODEL: "FINISHED", AGENT: "RUNNING", APP: "RUNNING"}


@pytest.fixture(autouse=True)
def _no_device_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake devices have no logs on this machine; say so without a local home."""

    class Backend:
        running_hint = " (`edgekit local device list`)"
        provision_hint = "`edgekit provision --devices N`"

        def log_location(self, thing: str, component: str | None) -> str:
            return f"`edgekit local device logs {thing} {component}`"

        def log_tail(self, thing: str, component: str | None, lines: int = 20) -> str:
            return f"{component}: last words of {thing}"

        def deploy_failed_hint(self, thing: str) -> str:
            return f"; see `edgekit local device logs {thing}`"

    monkeypatch.setattr("edgekit.deploy.wait.device_backend", lambda s: Backend())
    monkeypatch.setattr("edgekit.deploy.diagnose.device_backend", lambda s: Backend())


class _FakeIot:
    """IoT ListThingsInThingGroup answering the script's things (one page)."""

    def __init__(self, members: list[str]) -> None:
        self.members = members

    def can_paginate(self, name: str) -> bool:
        return False

    def list_things_in_thing_group(self, **kwargs: Any) -> dict[str, Any]:
        return {"things": list(self.members)}


def run_wait(
    greengrass: FakeGreengrass, collector: ProofCollector | None, timeout: float = 3.0
) -> DeploymentResult:
    result = DeploymentResult("dep-1", "arn:aws:iot:r:1:thinggroup/g", dict(VERSIONS))
    return wait_for_deployment(
        SETTINGS,
        result,
        timeout=timeout,
        greengrass=greengrass,
        iot=_FakeIot(sorted(greengrass.script)),
        poll=0.01,
        collector=collector,
    )


def test_every_device_proven_returns_the_proofs() -> None:
    gg = FakeGreengrass({"core-1": [("SUCCEEDED", RUNNING)], "core-2": [("SUCCEEDED", RUNNING)]})
    result = run_wait(gg, proven_collector(["core-1", "core-2"]))
    assert {t: p.state for t, p in result.proofs.items()} == {
        "core-1": "PROVEN",
        "core-2": "PROVEN",
    }
    assert [d.thing_name for d in result.devices] == ["core-1", "core-2"]
    assert result.criteria is not None and result.criteria.package_sha256 == SHA


def test_succeeded_but_silent_devices_fail_at_the_timeout_naming_each() -> None:
    """The issue's fleet: Greengrass says SUCCEEDED everywhere, one device proves itself."""
    gg = FakeGreengrass({t: [("SUCCEEDED", RUNNING)] for t in ("core-1", "core-2", "core-3")})
    collector = ProofCollector(SETTINGS, criteria(), ["core-1", "core-2", "core-3"])
    collector.feed(health("core-3"))
    for _ in range(3):
        collector.feed(result("core-3"))
    collector.feed(health("core-2", key="ffffffffffffffff"))
    with pytest.raises(DeviceDeploymentError) as info:
        run_wait(gg, collector, timeout=0.3)
    error = info.value
    assert sorted(error.devices) == ["core-1", "core-2"]
    message = str(error)
    assert "2 of 3 device(s)" in message and "core-1, core-2" in message
    assert "no health message" in error.devices["core-1"].reason
    assert "not the deployed key" in error.devices["core-2"].reason
    assert f"{APP}: last words of core-1" in message  # the app's last log lines
    assert error.result.proofs["core-3"].state == "PROVEN"


def test_greengrass_failure_names_the_component_and_keeps_waiting_for_the_others() -> None:
    gg = FakeGreengrass(
        {
            "core-1": [("IN_PROGRESS", {}), ("FAILED", {AGENT: "BROKEN"})],
            "core-2": [("IN_PROGRESS", {})] * 3 + [("SUCCEEDED", RUNNING)],
        }
    )
    with pytest.raises(DeviceDeploymentError) as info:
        run_wait(gg, proven_collector(["core-1", "core-2"]))
    error = info.value
    assert list(error.devices) == ["core-1"] and error.device == "core-1"
    assert "Greengrass reports the deployment FAILED" in error.reason
    assert f"{AGENT}: Install failed" in error.reason and f"logs core-1 {AGENT}" in error.reason
    assert error.result.proofs["core-2"].state == "PROVEN"


def test_an_app_that_dies_after_its_first_results_is_caught() -> None:
    """Proven on one poll, BROKEN on a later one while another device is still pending."""
    broken = dict(RUNNING, **{APP: "BROKEN"})
    gg = FakeGreengrass(
        {
            "core-1": [("SUCCEEDED", RUNNING)] * 3 + [("SUCCEEDED", broken)],
            "core-2": [("IN_PROGRESS", {})] * 6 + [("SUCCEEDED", RUNNING)],
        }
    )
    with pytest.raises(DeviceDeploymentError) as info:
        run_wait(gg, proven_collector(["core-1", "core-2"]))
    reason = info.value.devices["core-1"].reason
    assert f"component {APP} 1.0.1 is BROKEN" in reason and "health state running" in reason


def test_an_errored_component_fails_only_when_it_stays_errored() -> None:
    errored = dict(RUNNING, **{APP: "ERRORED"})
    recovers = FakeGreengrass({"core-1": [("SUCCEEDED", errored), ("SUCCEEDED", RUNNING)]})
    assert run_wait(recovers, proven_collector(["core-1"])).proofs["core-1"].proven
    stuck = FakeGreengrass({"core-1": [("SUCCEEDED", errored)]})
    with pytest.raises(DeviceDeploymentError, match="is ERRORED"):
        run_wait(stuck, proven_collector(["core-1"]))


def test_while_the_deployment_runs_a_broken_component_is_greengrass_to_judge() -> None:
    """Greengrass fails the deployment and rolls back; the reason is then its own."""
    broken = dict(RUNNING, **{AGENT: "BROKEN"})
    gg = FakeGreengrass({"core-1": [("IN_PROGRESS", broken)] * 5 + [("FAILED", RUNNING)]})
    with pytest.raises(DeviceDeploymentError) as info:
        run_wait(gg, proven_collector(["core-1"]))
    assert "Greengrass reports the deployment FAILED" in info.value.reason
    stuck = FakeGreengrass({"core-1": [("IN_PROGRESS", broken)]})
    with pytest.raises(DeviceDeploymentError) as info:
        run_wait(stuck, proven_collector(["core-1"]), timeout=0.3)
    assert f"IN_PROGRESS; component {AGENT} 1.0.1 BROKEN" in info.value.reason


def test_proof_arriving_while_waiting_proves_the_device() -> None:
    gg = FakeGreengrass({"core-1": [("SUCCEEDED", RUNNING)]})
    collector = ProofCollector(SETTINGS, criteria(), ["core-1"])

    def publish(thing: str, poll: int) -> None:
        if poll == 3:
            collector.feed(health(thing))
        if poll >= 3:
            collector.feed(result(thing))

    gg.on_poll = publish
    assert run_wait(gg, collector).proofs["core-1"].results >= 3


def test_without_proof_greengrass_success_alone_counts() -> None:
    gg = FakeGreengrass({"core-1": [("SUCCEEDED", RUNNING)]})
    result = run_wait(gg, None)
    assert result.proofs["core-1"].state == "PROVEN" and result.criteria is None


def test_no_core_device_is_a_deployment_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("edgekit.deploy.wait.NO_DEVICE_GRACE", 0.05)
    with pytest.raises(DeploymentError, match="no core devices") as info:
        run_wait(FakeGreengrass({}), ProofCollector(SETTINGS, criteria()))
    assert "provision them first: `edgekit provision --devices N`" in str(info.value)
    assert "local device add" not in str(info.value)


def test_device_proof_row_for_an_empty_device() -> None:
    assert DeviceProof("core-9").row()["package"] == "-"
