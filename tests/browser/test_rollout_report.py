"""The HTML report `edgekit rollout --report FILE.json` writes beside it, as Chromium shows it.

tests/reports render hand-made report dicts. Here the record is made the way
`edgekit.rollout.workflow` makes it (the previous deployment and the candidate as
`_baseline`/`_publish` store them, proofs from `DeviceProof`, gates from
`edgekit.rollout.gates.evaluate` over soak windows, the rollback stage) and
`edgekit.rollout.record.write_report` writes FILE.json and FILE.html: what a user opens
after a rollout. The page must say which model version was tried, each device's proof row,
each gate with its numbers and verdict, and show nothing that is not in the record.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from edgekit.deploy.proof import DeviceProof
from edgekit.rollout.gates import DeviceWindow, Gates, evaluate, first_failure, proof_gate
from edgekit.rollout.record import RolloutRecord, Stage, now_iso, write_report

pytestmark = pytest.mark.integration

NEW_SHA = "9e46858bb47cc891adaaf149cfae2218f481df663daea5ff4bed1ddc0653d795"
OLD_SHA = "17840f0c" + "0" * 56
MODEL = "com.qualityinspection.model"
CANARY, FLEET = "ek-core-1", "ek-core-2"


def proof(thing: str, sha: str, results: int, p95: float) -> DeviceProof:
    return DeviceProof(
        thing,
        greengrass_status="SUCCEEDED",
        package_sha256=sha,
        key_fingerprint="954b00",
        results=results,
        p95_ms=p95,
        health_state="RUNNING",
        state="PROVEN",
    )


def proven(record: RolloutRecord, stage: Stage, proofs: dict[str, DeviceProof]) -> None:
    """What RolloutRun.deploy_and_prove keeps of each device's proof."""
    for thing, p in proofs.items():
        record.devices.setdefault(thing, {}).update(
            {
                "package_sha256": p.package_sha256,
                "results": p.results,
                "errors": p.errors,
                "p95_ms": p.p95_ms,
                "state": p.state,
                "reason": p.reason,
                "stage": stage.name,
                "greengrass_status": p.greengrass_status,
            }
        )


def rolled_back_record(tmp_path: Path) -> RolloutRecord:
    """A canary whose p95 gate failed, rolled back, as the workflow records it."""
    record = RolloutRecord(
        id="edgekit-devices-9e46858bb47c-1a2b3c4d",
        thing_group="edgekit-devices",
        canary_group="edgekit-devices-canary",
        model_package=str(tmp_path / "tag-scratch-detector-1.1.0.tar.gz"),
        package_sha256=NEW_SHA,
        model_name="tag-scratch-detector",
        model_version="1.1.0",
        options={"canary": 1, "soak": 30, "gates": Gates(max_p95_ms=20.0).to_json()},
        canary_things=[CANARY],
        fleet_things=[FLEET],
    )
    components = {
        MODEL: {"componentVersion": "1.0.0"},
        "com.qualityinspection": {"componentVersion": "1.0.0"},
    }
    record.previous = {  # RolloutRun._baseline
        "deployment_id": "d-previous",
        "components": {name: spec["componentVersion"] for name, spec in components.items()},
        "specs": components,
        "model": {"name": "tag-scratch-detector", "version": "1.0.0", "package_sha256": OLD_SHA},
    }
    record.candidate = {  # RolloutRun._publish
        "components": {MODEL: "1.1.0", "com.qualityinspection": "1.0.1"},
        "model": {"name": "tag-scratch-detector", "version": "1.1.0", "package_sha256": NEW_SHA},
    }
    canary = Stage("canary", target="arn:aws:iot:us-east-1:123456789012:thinggroup/c")
    canary.things = [CANARY]
    canary.deployment_id = "d-canary"
    record.stages.append(canary)
    proofs = {CANARY: proof(CANARY, NEW_SHA, 14, 84.1)}
    proven(record, canary, proofs)
    windows = {
        CANARY: DeviceWindow(
            CANARY,
            results=12,
            defects=5,
            latencies_ms=[70.0 + i for i in range(12)],
            package_sha256=NEW_SHA,
            health_state="RUNNING",
        )
    }
    base = {
        FLEET: DeviceWindow(
            FLEET,
            results=11,
            defects=4,
            latencies_ms=[15.0 + i / 2 for i in range(11)],
            package_sha256=OLD_SHA,
            health_state="RUNNING",
        )
    }
    results = evaluate(Gates(max_p95_ms=20.0), proofs=proofs, candidate=windows, baseline=base)
    for thing, window in {**base, **windows}.items():  # RolloutRun._record_windows
        row = record.devices.setdefault(thing, {"state": "CURRENT"})
        row["soak"] = window.summary()
        if thing in base and thing not in windows:
            row.setdefault("package_sha256", window.package_sha256)
            row.setdefault("results", window.results)
            row.setdefault("errors", window.errors)
            row.setdefault("p95_ms", window.p95_ms)
    failed = first_failure(results)  # RolloutRun.verdict
    assert failed is not None and failed.name == "p95_latency"
    canary.gates = [r.to_json() for r in results]
    canary.status = "FAILED"
    canary.detail = failed.describe()
    canary.finished_at = now_iso()
    record.gate, record.gate_detail = failed.name, failed.detail  # RolloutRun._rollback
    rollback = Stage("rollback", target=record.canary_group, things=[CANARY])
    back = {CANARY: proof(CANARY, OLD_SHA, 4, 16.0)}
    proven(record, rollback, back)
    rollback.gates = [proof_gate(back).to_json()]
    rollback.status = "PASSED"
    rollback.finished_at = now_iso()
    record.stages.append(rollback)
    record.status = "ROLLED_BACK"
    record.finished_at = now_iso()
    return record


def test_the_rollout_report_html_shows_model_devices_and_every_gate(
    tmp_path: Path, browser: Any, screenshot_on_failure: list[Any]
) -> None:
    record = rolled_back_record(tmp_path)
    written = write_report(record, tmp_path / "rollout.json")
    assert written == tmp_path / "rollout.json"
    html = tmp_path / "rollout.html"
    assert html.is_file(), "edgekit rollout --report FILE.json writes FILE.html beside it"
    assert json.loads(written.read_text())["status"] == "ROLLED_BACK"

    page = browser.new_page()
    screenshot_on_failure.append(page)
    page.goto(html.resolve().as_uri(), wait_until="load")
    assert browser.outside == [] and page.errors == []

    def text(selector: str) -> str:
        return str(page.locator(selector).first.inner_text()).strip()

    def rows(selector: str) -> list[list[str]]:
        return [r.split("\t") for r in page.locator(selector).all_inner_texts()]

    # the verdict names the model version tried and the failing gate with its numbers
    assert text(".banner .verdict") == "ROLLED_BACK"
    title = text(".banner .verdict-title")
    assert title.startswith("tag-scratch-detector 1.1.0 was rolled back: gate p95_latency failed: ")
    assert re.search(r"\b8\d\.\d+ ?ms\b.*\b20(\.0)? ?ms", title), title

    # the candidate: name, version, the package's sha256, and what it replaces
    facts = _facts(page)
    assert facts["version"] == "1.1.0"
    assert facts["package sha256"] == NEW_SHA
    replaces = facts["replaces"]
    assert f"{MODEL} 1.0.0" in replaces, replaces
    # the previous deployment's bookkeeping is not a component: no "specs", no "deployment_id"
    assert "specs" not in replaces and "deployment_id" not in replaces, replaces

    # each device's proof row: the canary device's last proof is the rollback's (the
    # previous package, as it should be: not flagged as unexpected), the rest of the fleet
    # kept the current model
    devices = {r[0]: r for r in rows("table.proofs tbody tr.device")}
    assert list(devices) == [CANARY, FLEET]
    assert devices[CANARY][1:4] == ["PROVEN", "rollback", "SUCCEEDED"]
    assert devices[CANARY][4].startswith(OLD_SHA[:8]), devices[CANARY]
    assert devices[FLEET][1] == "CURRENT"
    assert "≠ expected" not in text("table.proofs")
    assert "defect rate 41.7 %" in devices[CANARY][-1]
    assert "defect rate 36.4 %" in devices[FLEET][-1]

    # every gate of every stage, with its value, threshold and verdict
    gates = rows("table.gates tbody tr")
    by_stage = {(g[1], g[0]): g for g in gates}
    expected = {
        ("canary", "proof"): "PASS",
        ("canary", "error_rate"): "PASS",
        ("canary", "p95_latency"): "FAIL",
        ("canary", "defect_rate_delta"): "PASS",
        ("canary", "shadow_agreement"): "SKIPPED",
        ("rollback", "proof"): "PASS",
    }
    assert {k: v[4] for k, v in by_stage.items()} == expected, gates
    p95 = by_stage[("canary", "p95_latency")]
    assert p95[2].startswith("8") and p95[3] == "≤ 20", p95
    assert by_stage[("canary", "error_rate")][2:4] == ["0", "≤ 0.05"]
    assert page.locator("table.gates tr.failed").count() == 1
    # a gate without per-device numbers shows none (not an empty "devices =")
    shadow = by_stage[("canary", "shadow_agreement")]
    assert shadow[5].strip() == "no shadow stage in this rollout", shadow

    stages = rows("table.stages tbody tr")
    assert [s[:2] for s in stages] == [["canary", "FAILED"], ["rollback", "PASSED"]]
    # The figures are inline (data: URIs, the page is one file), each loaded and captioned.
    captions = page.locator("figure figcaption").all_inner_texts()
    assert captions == ["devices", "gates"], captions
    sources = page.evaluate("[...document.querySelectorAll('figure img')].map(i => i.src)")
    assert all(src.startswith("data:image/png;base64,") for src in sources), sources
    broken = page.evaluate("[...document.images].filter(i => i.naturalWidth === 0).length")
    assert broken == 0


def _facts(page: Any) -> dict[str, str]:
    """The candidate's facts as {label: value} from the definition list."""
    return page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('dl.facts dt')].map("
        "dt => [dt.innerText.trim(), dt.nextElementSibling.innerText.trim()]))"
    )
