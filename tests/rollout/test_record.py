"""The rollout record: atomic JSON under the home, status, resume, finished re-runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.compile.testing import build_tiny_model
from edgekit.components.build import signing_keys
from edgekit.errors import ConfigurationError, DeploymentError
from edgekit.files import sha256_file
from edgekit.package import build_package
from edgekit.rollout import record as rec
from edgekit.rollout import workflow
from edgekit.rollout.gates import Gates
from edgekit.rollout.record import (
    CANARY,
    FAILED,
    PROMOTED,
    RolloutRecord,
    Stage,
    find_record,
    list_records,
    load_record,
)
from edgekit.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(backend="local", local_home=tmp_path / "home", thing_group="line1")


@pytest.fixture
def package(settings: Settings, tmp_path: Path) -> Path:
    private, _ = signing_keys(None, settings)
    model = build_tiny_model(tmp_path / "tiny.onnx")
    return build_package(
        model, name=settings.model_name, version="2.0.0", key=private, out=tmp_path / "m.tar.gz"
    ).path


def make(settings: Settings, rid: str = "line1-abc", **kw: object) -> RolloutRecord:
    record = RolloutRecord(
        id=rid,
        thing_group="line1",
        canary_group="line1-canary",
        model_package="/p.tar.gz",
        package_sha256="b" * 64,
        model_name="m",
        model_version="2.0.0",
        options={"canary": 1},
        **kw,  # type: ignore[arg-type]
    )
    record.save(settings)
    return record


def test_saved_record_reads_back_the_same(settings: Settings) -> None:
    record = make(settings, canary_things=["c1"], fleet_things=["f1", "f2"])
    record.stages.append(Stage("canary", things=["c1"], gates=[{"name": "proof"}]))
    path = record.save(settings)
    assert path == settings.home / "rollouts" / "line1-abc.json"
    assert not list(path.parent.glob("*.tmp*")), "atomic write leaves no temporary file"
    again = load_record(settings, "line1-abc")
    assert again.to_json() == record.to_json()
    assert again.stage("canary") is not None and again.stage("canary").things == ["c1"]
    assert load_record(settings, str(path)).id == "line1-abc"


def test_status_without_id_is_the_latest(settings: Settings) -> None:
    make(settings, "r-old", created_at="2026-01-01T00:00:00.000+00:00")
    make(settings, "r-new", created_at="2026-02-01T00:00:00.000+00:00")
    assert [r.id for r in list_records(settings)] == ["r-old", "r-new"]
    assert load_record(settings).id == "r-new"


def test_status_errors_name_the_folder(settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match="no rollout recorded under .*rollouts"):
        load_record(settings)
    make(settings, "r1")
    with pytest.raises(ConfigurationError, match="no rollout nope .*latest: r1"):
        load_record(settings, "nope")
    (settings.home / "rollouts" / "bad.json").write_text("{")
    with pytest.raises(ConfigurationError, match="bad.json: not a rollout record"):
        load_record(settings, "bad")


def test_report_has_the_issue_shape(settings: Settings) -> None:
    record = make(settings, status="ROLLED_BACK", gate="p95_latency")
    record.devices["c1"] = {
        "package_sha256": "a" * 64,
        "results": 5,
        "errors": 0,
        "p95_ms": 12.0,
        "state": "PROVEN",
    }
    report = record.report()
    assert report["status"] == "ROLLED_BACK" and report["gate"] == "p95_latency"
    assert isinstance(report["stages"], list)
    assert set(report["devices"]["c1"]) >= {
        "package_sha256",
        "results",
        "errors",
        "p95_ms",
        "state",
    }
    json.dumps(report)  # serialisable


def test_same_package_group_and_options_is_the_same_rollout() -> None:
    a = rec.rollout_id("g", "c" * 64, {"canary": 1, "soak": 5})
    assert a == rec.rollout_id("g", "c" * 64, {"soak": 5, "canary": 1})
    assert a != rec.rollout_id("g", "c" * 64, {"canary": 2, "soak": 5})
    assert a.startswith("g-cccccccccccc-")


def test_finished_rollout_is_reported_not_redone(
    settings: Settings, package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: workflow.Runner) -> None:
        raise AssertionError("a finished rollout must not run again")

    calls: list[str] = []

    def first_run(self: workflow.Runner) -> None:
        calls.append(self.record.id)
        self.record.status = PROMOTED
        self.save()

    monkeypatch.setattr(workflow.Runner, "run", first_run)
    monkeypatch.setattr(rec, "render_rollout_report", lambda report, out, figures: out)
    done = workflow.rollout(settings, package, soak=1, report=tmp_path / "r.json")
    assert calls == [done.id] and done.status == PROMOTED
    monkeypatch.setattr(workflow.Runner, "run", boom)
    again = workflow.rollout(settings, package, soak=1, report=tmp_path / "r2.json")
    assert again.id == done.id and again.status == PROMOTED
    assert json.loads((tmp_path / "r2.json").read_text())["status"] == PROMOTED
    assert again.package_sha256 == sha256_file(package)
    assert (again.model_name, again.model_version) == (settings.model_name, "2.0.0")


def test_a_dead_run_resumes_from_its_record(
    settings: Settings, package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first run dies in the canary stage (like a dead kernel); the second one resumes
    from the saved record: nothing published again, the passed shadow stage skipped."""
    seen: dict[str, object] = {}

    def dies(self: workflow.Runner) -> None:
        self.record.previous = {"components": {"x": "1.0.0"}, "specs": {}, "model": {}}
        self.record.candidate = {"components": {"x": "1.0.1"}, "model": {}}
        self.record.stages.append(Stage("shadow", status="PASSED"))
        self.record.stages.append(Stage("canary"))
        self.record.status = CANARY
        self.save()
        raise KeyboardInterrupt

    monkeypatch.setattr(workflow.Runner, "run", dies)
    with pytest.raises(KeyboardInterrupt):
        workflow.rollout(settings, package, soak=1, shadow=True, gates=Gates(min_results=2))

    def resumes(self: workflow.Runner) -> None:
        seen["status"] = self.record.status
        seen["candidate"] = dict(self.record.candidate)
        seen["shadow_passed"] = self._passed("shadow")
        seen["canary_passed"] = self._passed("canary")
        self.record.status = PROMOTED
        self.save()

    monkeypatch.setattr(workflow.Runner, "run", resumes)
    record = workflow.rollout(settings, package, soak=1, shadow=True, gates=Gates(min_results=2))
    assert seen == {
        "status": CANARY,
        "candidate": {"components": {"x": "1.0.1"}, "model": {}},
        "shadow_passed": True,
        "canary_passed": False,
    }
    assert record.status == PROMOTED and len(list_records(settings)) == 1


def test_a_stage_a_dead_run_left_running_is_marked_interrupted(
    settings: Settings, package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = workflow.RolloutRecord(
        id="r",
        thing_group="line1",
        canary_group="c",
        model_package=str(package),
        package_sha256="d" * 64,
        model_name="m",
        model_version="1",
        options={"soak": 0},
        status=FAILED,
    )
    record.stages.append(Stage("canary"))
    monkeypatch.setattr(workflow.Runner, "_prepare", lambda self: None)

    def publish(self: workflow.Runner) -> None:
        raise DeploymentError("stop here")

    monkeypatch.setattr(workflow.Runner, "_publish", publish)
    runner = workflow.Runner(settings, record, Gates(), 10.0, None, None)
    with pytest.raises(DeploymentError):
        runner.run()
    assert record.stages[0].status == "INTERRUPTED" and record.stages[0].finished_at


def test_an_error_is_kept_in_the_record_and_raised(
    settings: Settings, package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def prepare(self: workflow.Runner) -> None:
        raise DeploymentError("thing group line1: no core devices")

    monkeypatch.setattr(workflow.Runner, "_prepare", prepare)
    with pytest.raises(DeploymentError, match="no core devices"):
        workflow.rollout(settings, package, soak=1)
    (record,) = list_records(settings)
    assert record.status == FAILED
    assert record.error == "DeploymentError: thing group line1: no core devices"
    assert find_record(settings, record.id) is not None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"canary": 0}, "canary=0"),
        ({"soak": -1}, "soak=-1"),
        ({"timeout": 0}, "timeout=0"),
    ],
)
def test_rollout_refuses_bad_arguments(
    settings: Settings, package: Path, kwargs: dict, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        workflow.rollout(settings, package, **kwargs)


def test_rollout_refuses_a_missing_package(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="model package not found"):
        workflow.rollout(settings, tmp_path / "nope.tar.gz")
