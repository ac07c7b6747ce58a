"""A rollout report page as Chromium shows it: verdict, candidate, device proofs, gates, stages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgekit.errors import DataError
from edgekit.reports import render_rollout_report


def test_a_rolled_back_rollout_names_the_gate_and_its_numbers(
    tmp_path: Path, samples: Any, report_browser: Any
) -> None:
    report = samples.rollout_report(rolled_back=True)
    out = render_rollout_report(
        report,
        tmp_path / "rollout.html",
        figures={"latency": samples.png(tmp_path / "latency.png", 800, 500, (10, 10, 10))},
    )
    assert out == tmp_path / "rollout.html"
    shown = report_browser.open(out)
    shown.assert_reads_well()

    assert shown.text(".banner .verdict") == "ROLLED_BACK"
    assert shown.text(".banner .verdict-title") == (
        "tag-scratch-detector 1.1.0 was rolled back: gate p95_latency failed: "
        "candidate p95 84.1 ms > 20.0 ms"
    )
    assert (
        shown.page.evaluate("getComputedStyle(document.querySelector('.banner')).backgroundColor")
        == "rgb(198, 40, 40)"
    )
    candidate = shown.text("dl.facts")
    for fact in ("tag-scratch-detector", "1.1.0", samples.SHA, "com.qualityinspection.model 1.0.0"):
        assert fact in candidate

    gates = {r.split("\t")[0]: r.split("\t") for r in shown.texts("table.gates tbody tr")}
    assert list(gates) == ["proof", "error_rate", "p95_latency", "defect_rate_delta"]
    assert gates["p95_latency"][1:5] == ["canary", "84.1", "≤ 20", "FAIL"]
    assert "edgekit-core-1: p95_ms 84.1, results 9" in gates["p95_latency"][5]
    assert gates["error_rate"][2:5] == ["0", "≤ 0.05", "PASS"]
    assert gates["defect_rate_delta"][4] == "SKIPPED"
    assert shown.page.locator("table.gates tr.failed").count() == 1

    stages = shown.texts("table.stages tbody tr")
    assert stages[0].split("\t")[:5] == [
        "canary",
        "ROLLED_BACK",
        "edgekit-core-1",
        "2026-12-05T20:20:00+00:00",
        "1 min 5 s",
    ]
    devices = [r.split("\t") for r in shown.texts("table.proofs tbody tr.device")]
    assert [d[:3] for d in devices] == [
        ["edgekit-core-1", "PROVEN", "canary"],
        ["edgekit-core-2", "CURRENT", "–"],
    ]
    assert devices[0][-1] == "defect rate 44.4 %, error rate 0.0 %"
    assert devices[1][-1] == "defect rate 36.4 %, error rate 0.0 %"
    assert "≠ expected" not in devices[1][4]  # it kept the current model on purpose
    assert "1 of 1 device(s) proved inspection; 1 kept the current model" in shown.text("body")
    assert shown.page.locator("figure img").count() == 1


def test_a_promoted_rollout_is_green_and_lists_every_device(
    tmp_path: Path, samples: Any, report_browser: Any
) -> None:
    out = render_rollout_report(samples.rollout_report(rolled_back=False), tmp_path / "r.html")
    shown = report_browser.open(out)
    shown.assert_reads_well()
    assert shown.text(".banner .verdict") == "PROMOTED"
    assert "promoted to thing group edgekit-devices" in shown.text(".banner")
    assert [r.split("\t")[0] for r in shown.texts("table.proofs tbody tr.device")] == [
        "edgekit-core-1",
        "edgekit-core-2",
        "edgekit-core-3",
    ]
    assert [r.split("\t")[:2] for r in shown.texts("table.stages tbody tr")] == [
        ["canary", "PASSED"],
        ["fleet", "PASSED"],
    ]
    assert shown.page.locator("figure").count() == 0


@pytest.mark.parametrize(
    ("report", "verdict", "gate_text"),
    [
        # the minimal shape: no gate numbers, only the failing gate's name
        (
            {"status": "ROLLED_BACK", "gate": "error_rate", "stages": [], "devices": {}},
            "ROLLED_BACK",
            "the failing gate is error_rate",
        ),
        # gates as a {name: bool} map at the top level, stages as names
        (
            {
                "status": "PROMOTED",
                "gate": None,
                "gates": {"proof": True, "error_rate": True},
                "stages": ["canary", "fleet"],
                "devices": {"a": {"state": "PROVEN", "results": 3}},
            },
            "PROMOTED",
            "PASS",
        ),
        # an unfinished rollout
        ({"status": "RUNNING", "stages": [], "devices": {}}, "RUNNING", "no gates"),
    ],
)
def test_other_report_shapes_render(
    tmp_path: Path, report: dict[str, Any], verdict: str, gate_text: str
) -> None:
    text = render_rollout_report(report, tmp_path / "r.html").read_text()
    assert f'<p class="verdict">{verdict}</p>' in text
    assert gate_text in text


def test_device_text_is_escaped(tmp_path: Path, samples: Any) -> None:
    report = samples.rollout_report(rolled_back=True)
    report["devices"]["edgekit-core-1"]["reason"] = samples.HOSTILE_REASON
    report["gate_detail"] = "<img src=x onerror=alert(1)>"
    text = render_rollout_report(report, tmp_path / "r.html").read_text()
    assert "<script" not in text and "<img src=x" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text


def test_a_report_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="rollout report: expected a JSON object"):
        render_rollout_report(["PROMOTED"], tmp_path / "r.html")  # type: ignore[arg-type]
