"""``edgekit rollout``: exit 0 promoted, 3 rolled back by a gate, 1 any other error; status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit import rollout as rollout_pkg
from edgekit.cli import main
from edgekit.errors import DeploymentError
from edgekit.rollout.record import RolloutRecord, Stage
from edgekit.settings import Settings


def record(status: str, gate: str | None = None) -> RolloutRecord:
    r = RolloutRecord(
        id="line1-x",
        thing_group="line1",
        canary_group="line1-canary",
        model_package="p",
        package_sha256="a" * 64,
        model_name="m",
        model_version="1.0.0",
        options={},
        status=status,
        gate=gate,
        gate_detail="candidate p95 80.0 ms > 20.0 ms" if gate else None,
    )
    r.stages.append(
        Stage(
            "canary",
            status="FAILED" if gate else "PASSED",
            things=["c1"],
            gates=[
                {"name": "p95_latency", "verdict": "FAIL" if gate else "PASS", "detail": "numbers"}
            ],
        )
    )
    r.devices["c1"] = {
        "state": "PROVEN",
        "results": 4,
        "errors": 0,
        "p95_ms": 80.0,
        "package_sha256": "a" * 64,
    }
    return r


@pytest.mark.parametrize(
    ("status", "gate", "code"), [("PROMOTED", None, 0), ("ROLLED_BACK", "p95_latency", 3)]
)
def test_exit_codes_and_arguments(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    status: str,
    gate: str | None,
    code: int,
) -> None:
    seen: dict = {}

    def fake(settings: Settings, package: str, **kwargs: object) -> RolloutRecord:
        seen.update(kwargs, package=package)
        return record(status, gate)

    monkeypatch.setattr(rollout_pkg, "rollout", fake)
    argv = [
        "rollout",
        "--model-package",
        "m.tar.gz",
        "--thing-group",
        "line1",
        "--canary",
        "2",
        "--soak",
        "30",
        "--shadow",
        "--max-error-rate",
        "0.1",
        "--max-p95-ms",
        "20",
        "--max-defect-rate-delta",
        "0.05",
        "--min-agreement",
        "0.9",
        "--report",
        str(tmp_path / "r.json"),
    ]
    assert main(argv) == code
    gates = seen["gates"]
    assert (gates.max_error_rate, gates.max_p95_ms, gates.max_defect_rate_delta) == (
        0.1,
        20.0,
        0.05,
    )
    assert gates.min_agreement == 0.9
    assert (seen["canary"], seen["soak"], seen["shadow"], seen["thing_group"]) == (
        2,
        30.0,
        True,
        "line1",
    )
    out = capsys.readouterr().out
    assert f"rollout line1-x: {status}" in out
    if gate:
        assert "gate p95_latency: candidate p95 80.0 ms > 20.0 ms" in out


def test_other_errors_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fails(settings: Settings, package: str, **kwargs: object) -> RolloutRecord:
        raise DeploymentError("thing group line1 has no core devices")

    monkeypatch.setattr(rollout_pkg, "rollout", fails)
    assert main(["rollout", "--model-package", "m.tar.gz"]) == 1
    assert "edgekit rollout: error: thing group line1 has no core devices" in (
        capsys.readouterr().err
    )
    assert main(["rollout"]) == 1
    assert "--model-package" in capsys.readouterr().err


def test_status_prints_the_latest_record(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("EDGEKIT_LOCAL_HOME", str(tmp_path))
    monkeypatch.setenv("EDGEKIT_BACKEND", "local")
    record("ROLLED_BACK", "p95_latency").save(Settings.from_env())
    assert main(["rollout", "status"]) == 0
    out = capsys.readouterr().out
    assert "rollout line1-x: ROLLED_BACK" in out and "p95_latency" in out and "c1" in out
    assert main(["rollout", "status", "line1-x", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "ROLLED_BACK" and data["devices"]["c1"]["p95_ms"] == 80.0
    assert main(["rollout", "status", "nope"]) == 1
