"""`edgekit deploy`: the flags reach edgekit.deploy.deploy; a fleet that does not prove itself
exits 1 naming every failed device, after the table of every device."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from edgekit.cli import main
from edgekit.deploy import DeploymentResult, DeviceProof, ProofCriteria
from edgekit.errors import DeviceDeploymentError

SHA = "c" * 64


def result_with(proofs: dict[str, DeviceProof]) -> DeploymentResult:
    result = DeploymentResult("dep-9", "arn:aws:iot:r:1:thinggroup/g", {"m": "1.0.0"})
    result.proofs = proofs
    result.criteria = ProofCriteria(SHA, "tag-scratch-detector", "1.0.0", since=datetime.now(UTC))
    return result


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def fake_deploy(settings: Any, **kwargs: Any) -> DeploymentResult:
        seen.append(kwargs)
        return result_with(
            {"core-1": DeviceProof("core-1", "SUCCEEDED", SHA, results=4, state="PROVEN")}
        )

    monkeypatch.setattr("edgekit.deploy.deploy", fake_deploy)
    return seen


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--wait"], {"wait": True, "min_results": 3, "prove": True}),
        (["--wait", "--min-results", "5"], {"wait": True, "min_results": 5, "prove": True}),
        (["--wait", "--no-proof"], {"wait": True, "prove": False}),
        ([], {"wait": False}),
    ],
)
def test_flags_reach_deploy(
    calls: list[dict[str, Any]], capsys: pytest.CaptureFixture[str], argv: list[str], expected: dict
) -> None:
    assert main(["deploy", "--backend", "local", *argv]) == 0
    assert expected.items() <= calls[0].items()
    out = capsys.readouterr().out
    if argv[:1] == ["--wait"]:
        assert f"package sha256 {SHA}" in out and "PROVEN" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--wait", "--min-results", "0"], "--min-results 0: must be 1 or more"),
        (["--min-results", "2"], "--min-results needs --wait"),
        (["--wait", "--no-proof", "--min-results", "2"], "--min-results needs --wait"),
    ],
)
def test_bad_min_results_are_refused(
    calls: list[dict[str, Any]], capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["deploy", "--backend", "local", *argv]) == 1
    assert message in capsys.readouterr().err and not calls


def test_failed_devices_exit_1_naming_each(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    proofs = {
        "core-1": DeviceProof("core-1", "SUCCEEDED", SHA, results=3, state="PROVEN"),
        "core-2": DeviceProof("core-2", "SUCCEEDED", state="FAILED", reason="no health message"),
        "core-3": DeviceProof("core-3", "FAILED", state="FAILED", reason="agent BROKEN"),
    }
    failed = {t: p for t, p in proofs.items() if p.failed}

    def fake_deploy(settings: Any, **kwargs: Any) -> DeploymentResult:
        raise DeviceDeploymentError(
            "deployment dep-9: 2 of 3 device(s) did not prove inspection: core-2, core-3",
            device="core-2",
            reason="no health message",
            result=result_with(proofs),
            devices=failed,
        )

    monkeypatch.setattr("edgekit.deploy.deploy", fake_deploy)
    assert main(["deploy", "--backend", "local", "--wait"]) == 1
    captured = capsys.readouterr()
    assert "core-2, core-3" in captured.err
    rows = {line.split()[0]: line for line in captured.out.splitlines()[2:]}
    assert "PROVEN" in rows["core-1"] and "FAILED" in rows["core-2"] and "FAILED" in rows["core-3"]
