"""report.html of a pipeline run, checked as rendered by Chromium: what a reader SEES."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edgekit.errors import DataError
from edgekit.pipeline import StageResult
from edgekit.reports import render_pipeline_report


def _stages(run: Path, *, ok: bool) -> list[StageResult]:
    (run / "01_provision_device.html").write_text("<p>executed</p>")
    return [
        StageResult(
            "01_provision_device", run / "x.ipynb", run / "01_provision_device.html", 7.74, True
        ),
        StageResult("02_compile_and_package", run / "y.ipynb", None, 53.6, True),
        StageResult(
            "03_deploy_components",
            run / "z.ipynb",
            None,
            312.0,
            ok,
            None if ok else "DeviceDeploymentError: 2 device(s) failed: <edgekit-core-2>",
        ),
    ]


def test_a_failed_run_shows_the_verdict_every_device_and_why(
    tmp_path: Path, samples: Any, report_browser: Any
) -> None:
    run = samples.make_run(tmp_path, ok=False)
    report = render_pipeline_report(run, stages=_stages(run, ok=False))
    shown = report_browser.open(report)
    shown.assert_reads_well()

    assert shown.text(".banner .verdict") == "FAILED"
    banner = shown.text(".banner")
    assert "2 of 3 notebook(s) ran" in banner
    assert "1 of 3 device(s) proved inspection" in banner
    assert "edgekit-core-2" in banner and "edgekit-core-3" in banner
    assert "notebook 03_deploy_components failed" in banner

    model = shown.text("dl.facts")
    assert "tag-scratch-detector" in model and "1.0.0" in model and samples.SHA in model
    assert "tag-scratch-detector #1 (Approved)" in model

    rows = shown.texts("table.proofs tbody tr.device")
    assert len(rows) == 3
    assert rows[0].split("\t")[:3] == ["edgekit-core-1", "PROVEN", "SUCCEEDED"]
    assert "9e46858bb47c…" in rows[0] and "= expected" in rows[0]
    assert "12" in rows[0].split("\t") and "21.4" in rows[0].split("\t")
    assert rows[1].split("\t")[:2] == ["edgekit-core-2", "FAILED"]
    assert "≠ expected" in rows[1] and "BROKEN" in rows[1]
    reasons = shown.texts("table.proofs tr.reason")
    # the device's text is shown as text: the markup in it neither runs nor renders
    assert "<script>alert('x')</script>" in reasons[0]
    assert "& <b>bold</b>" in reasons[0]
    assert "silent: no health and no result" in reasons[1]
    assert shown.page.locator("table.proofs b").count() == 0

    notebooks = shown.texts("table.notebooks tbody tr")
    assert notebooks[0].split("\t")[:3] == ["01_provision_device", "OK", "7.7 s"]
    assert notebooks[2].split("\t")[:3] == ["03_deploy_components", "FAILED", "5 min 12 s"]
    assert "<edgekit-core-2>" in notebooks[2]
    assert (
        shown.page.locator("table.notebooks a").get_attribute("href") == "01_provision_device.html"
    )

    results = shown.texts("table.results tbody tr")
    assert [r.split("\t")[:2] for r in results] == [
        ["edgekit-core-1", "5"],
        ["edgekit-core-2", "5"],
    ]
    assert "1 line(s) of results.jsonl were not JSON objects" in shown.text("body")

    assert shown.page.locator("figure img").count() == 2
    assert shown.texts("figcaption") == ["pr_curve", "detections"]
    # a wide figure gets the whole row, not half of it
    widths = shown.page.evaluate("[...document.images].map(i => i.getBoundingClientRect().width)")
    assert widths[1] > 1000 > widths[0]


def test_a_good_run_is_green_and_says_every_device_proved(
    tmp_path: Path, samples: Any, report_browser: Any
) -> None:
    run = samples.make_run(tmp_path, ok=True)
    shown = report_browser.open(render_pipeline_report(run, stages=_stages(run, ok=True)))
    shown.assert_reads_well()
    assert shown.text(".banner .verdict") == "SUCCESS"
    assert "3 of 3 device(s) proved inspection" in shown.text(".banner")
    assert (
        shown.page.evaluate("getComputedStyle(document.querySelector('.banner')).backgroundColor")
        == "rgb(26, 127, 55)"
    )
    assert shown.texts("table.proofs tbody tr.device td:nth-child(2)") == ["PROVEN"] * 3


def test_a_pipeline_with_a_rollout_shows_its_gates(
    tmp_path: Path, samples: Any, report_browser: Any
) -> None:
    run = samples.make_run(tmp_path, ok=True)
    (run / "rollout.json").write_text(json.dumps(samples.rollout_report(rolled_back=True)))
    shown = report_browser.open(render_pipeline_report(run, stages=_stages(run, ok=True)))
    shown.assert_reads_well()
    assert shown.text(".banner .verdict") == "FAILED"
    assert "rolled back: gate p95_latency failed" in shown.text(".banner")
    gate = [r for r in shown.texts("table.gates tbody tr") if r.startswith("p95_latency")]
    assert gate and "84.1" in gate[0] and "≤ 20" in gate[0] and "FAIL" in gate[0]


def test_an_old_run_folder_renders_from_its_files_alone(tmp_path: Path, samples: Any) -> None:
    """No stages passed: papermill's record in each executed notebook gives status and time."""
    run = samples.make_run(tmp_path, ok=True, with_proofs=False)
    for name, exception in (("01_provision_device", None), ("02_compile_and_package", True)):
        (run / f"{name}.ipynb").write_text(
            json.dumps(
                {"cells": [], "metadata": {"papermill": {"duration": 3.25, "exception": exception}}}
            )
        )
    text = render_pipeline_report(run).read_text()
    assert "01_provision_device" in text and "3.2 s" in text
    assert "02_compile_and_package" in text and "FAILED" in text
    # a deployment record from before proofs: the Greengrass status, and it says so
    assert "carries no proof of inspection" in text
    assert "no proof of inspection" in text.split('class="verdict-title"')[1].split("</p>")[0]


def test_the_page_is_self_contained_and_escapes_what_devices_send(
    tmp_path: Path, samples: Any
) -> None:
    run = samples.make_run(tmp_path, ok=False)
    text = render_pipeline_report(run, stages=_stages(run, ok=False)).read_text()
    assert "<script" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert 'src="data:image/png;base64,' in text
    for external in ('src="http', "<link", "@import", "url("):
        assert external not in text


def test_broken_inputs_are_errors_naming_the_file(tmp_path: Path, samples: Any) -> None:
    with pytest.raises(DataError, match="no such run folder"):
        render_pipeline_report(tmp_path / "missing")
    run = samples.make_run(tmp_path, ok=True)
    (run / "rollout.json").write_text("{half")
    with pytest.raises(DataError, match="rollout.json: not valid JSON"):
        render_pipeline_report(run, stages=[])
    (run / "rollout.json").unlink()
    (run / "figures" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="notes.txt: only"):
        render_pipeline_report(run, stages=[], figures={"notes": run / "figures" / "notes.txt"})


def test_the_deployment_record_of_edgekit_deploy_is_read_as_it_is_written(
    tmp_path: Path, samples: Any, report_browser: Any
) -> None:
    """deployment.json as edgekit.deploy.record writes it: each device's ``proof``, and the
    criteria under ``proof`` whose ``failed`` list may name a device with no entry."""
    run = samples.make_run(tmp_path, ok=False)
    record = json.loads((run / "deployment.json").read_text())
    record["proof"] = {
        "package_sha256": samples.SHA,
        "model_name": "tag-scratch-detector",
        "model_version": "1.0.0",
        "key_fingerprint": "954b00",
        "min_results": 3,
        "since": "2026-12-05T20:13:20.000+00:00",
        "failed": ["edgekit-core-2", "edgekit-core-3", "edgekit-core-9"],
    }
    record["status"] = "FAILED"
    record["failure"] = {"thing": "edgekit-core-2", "reason": "agent refused the package"}
    (run / "deployment.json").write_text(json.dumps(record))
    shown = report_browser.open(render_pipeline_report(run, stages=_stages(run, ok=True)))
    shown.assert_reads_well()
    assert shown.text(".banner .verdict") == "FAILED"
    banner = shown.text(".banner")
    assert "failed on edgekit-core-2: agent refused the package" in banner
    assert "device edgekit-core-9 FAILED" in banner
    assert "at least 3 result(s) of tag-scratch-detector 1.0.0 (package sha256 9e46858bb47c…)" in (
        shown.text("body")
    )
    rows = shown.texts("table.proofs tbody tr.device")
    assert [r.split("\t")[:2] for r in rows][-1] == ["edgekit-core-9", "FAILED"]
