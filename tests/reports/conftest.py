"""A real headless browser for the report tests: Debian's Chromium driven by Playwright.

Playwright's own browser download does not work everywhere, so the tests drive the
Chromium of the OS packages (``/usr/bin/chromium``, or ``$EDGEKIT_CHROMIUM``) with a new,
empty profile. Without the playwright package or Chromium the browser tests skip.
``$EDGEKIT_REPORT_SCREENSHOTS=DIR`` keeps a full-page screenshot of every page opened.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

VIEWPORT_WIDTH = 1280  # tests/conftest.py VIEWPORT


@dataclass
class Shown:
    """A report opened in the browser, with what the page logged and fetched."""

    page: Any
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def text(self, selector: str) -> str:
        return str(self.page.locator(selector).first.inner_text()).strip()

    def texts(self, selector: str) -> list[str]:
        return [str(t).strip() for t in self.page.locator(selector).all_inner_texts()]

    def assert_reads_well(self) -> None:
        """Self-contained, loads cleanly, every figure decoded, nothing wider than 1280 px."""
        page = self.page
        assert self.console_errors == [], self.console_errors
        fetched = [u for u in self.requests if not u.startswith(("file:", "data:"))]
        assert fetched == [], f"the report fetched external resources: {fetched}"
        assert page.evaluate("document.scripts.length") == 0
        broken = page.evaluate(
            "[...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt)"
        )
        assert broken == [], f"images that did not decode: {broken}"
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= VIEWPORT_WIDTH, f"the page is {width} px wide at 1280 px"
        scrolled = page.evaluate(
            "[...document.querySelectorAll('.table-wrap')]"
            ".filter(d => d.scrollWidth > d.clientWidth + 1).map(d => d.innerText.slice(0, 60))"
        )
        assert scrolled == [], f"tables wider than the page: {scrolled}"
        assert page.evaluate("getComputedStyle(document.body).fontFamily")


class ReportBrowser:
    def __init__(self, context: Any) -> None:
        self._context = context
        self._shots = os.environ.get("EDGEKIT_REPORT_SCREENSHOTS")
        self._opened = 0

    def open(self, path: Path) -> Shown:
        page = self._context.new_page()
        shown = Shown(page)
        page.on(
            "console", lambda m: shown.console_errors.append(m.text) if m.type == "error" else None
        )
        page.on("pageerror", lambda e: shown.console_errors.append(str(e)))
        page.on("request", lambda r: shown.requests.append(r.url))
        page.goto(path.resolve().as_uri(), wait_until="load")
        self._opened += 1
        if self._shots:
            folder = Path(self._shots)
            folder.mkdir(parents=True, exist_ok=True)
            page.screenshot(
                path=str(folder / f"{os.getpid()}-{self._opened:02d}-{path.stem}.png"),
                full_page=True,
            )
        return shown


@pytest.fixture(scope="module")
def report_browser(chromium_context: Any) -> ReportBrowser:
    """Chromium at 1280x900 with a fresh profile, or a skip naming what is missing."""
    return ReportBrowser(chromium_context)


# ---------------------------------------------------------------- a run folder to report on

SHA = "9e46858bb47cc891adaaf149cfae2218f481df663daea5ff4bed1ddc0653d795"
OLD_SHA = "1784" + "0" * 60
HOSTILE_REASON = (
    "com.qualityinspection.agent: install failed: <script>alert('x')</script>\n"
    "last log lines:\n  refused package: signed with key 954b…, not with 1784… & <b>bold</b>"
)


def png(path: Path, width: int, height: int, colour: tuple[int, int, int]) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), colour).save(path)
    return path


def proofs(*, all_proven: bool) -> dict[str, dict[str, Any]]:
    rows = {
        "edgekit-core-1": {
            "thing": "edgekit-core-1",
            "greengrass_status": "SUCCEEDED",
            "package_sha256": SHA,
            "key_fingerprint": "954b00",
            "results": 12,
            "errors": 0,
            "p95_ms": 21.37,
            "health_state": "RUNNING",
            "problem": None,
            "state": "PROVEN",
            "reason": None,
        },
        "edgekit-core-2": {
            "thing": "edgekit-core-2",
            "greengrass_status": "SUCCEEDED",
            "package_sha256": OLD_SHA,
            "results": 0,
            "errors": 4,
            "p95_ms": None,
            "health_state": "BROKEN",
            "state": "FAILED",
            "reason": HOSTILE_REASON,
        },
        "edgekit-core-3": {
            "thing": "edgekit-core-3",
            "greengrass_status": None,
            "state": "FAILED",
            "reason": "silent: no health and no result before the timeout (300 s)",
        },
    }
    if all_proven:
        for row in rows.values():
            row.update(rows["edgekit-core-1"] | {"thing": row["thing"]})
    return rows


def make_run(root: Path, *, ok: bool = True, with_proofs: bool = True) -> Path:
    """A run folder like `edgekit pipeline run` leaves (hand-over files, results, figures)."""
    import json

    run = root / "20261205T201218Z"
    run.mkdir(parents=True)
    (run / "parameters.json").write_text(
        json.dumps({"backend": "local", "interactive": False, "output_dir": str(run)})
    )
    package = run / "model" / "tag-scratch-detector-1.0.0.tar.gz"
    package.parent.mkdir()
    package.write_bytes(b"not really a package")
    (run / "model_package.json").write_text(
        json.dumps(
            {
                "model_name": "tag-scratch-detector",
                "model_version": "1.0.0",
                "target": "onnxruntime-int8",
                "package": str(package),
                "ap50": 0.8537,
                "compiled_ap50": 0.8541,
            }
        )
    )
    devices = proofs(all_proven=ok)
    (run / "deployment.json").write_text(
        json.dumps(
            {
                "backend": "local",
                "thing_group": "edgekit-devices",
                "deployment_id": "24b2eee3-5857-40a8-ba9b-e1dded320551",
                "status": "SUCCEEDED",
                "components": {"com.qualityinspection": "1.0.0"},
                "model": {
                    "group": "tag-scratch-detector",
                    "version": 1,
                    "approval_status": "Approved",
                    "semver": "1.0.0",
                    "name": "tag-scratch-detector",
                    "sha256": SHA,
                    "runtime": "onnxruntime-int8",
                },
                "devices": [
                    {
                        "thing": thing,
                        "status": "SUCCEEDED",
                        "reason": "",
                        "components": {
                            "com.qualityinspection": {"version": "1.0.0", "state": "RUNNING"}
                        },
                        **({"proof": proof} if with_proofs else {}),
                    }
                    for thing, proof in devices.items()
                ],
                "failure": None,
            }
        )
    )
    lines = []
    for i in range(10):
        lines.append(
            json.dumps(
                {
                    "timestamp": f"2026-12-05T20:13:{30 + i:02d}.000Z",
                    "thing_name": "edgekit-core-1" if i % 2 else "edgekit-core-2",
                    "image_name": f"tag-{i:03d}.jpg",
                    "model": {"name": "tag-scratch-detector", "version": "1.0.0"},
                    "detections": [],
                    "defect": i % 3 == 0,
                    "latency_ms": {"preprocess": 5.0, "inference": 10.0, "total": 15.0 + i},
                }
            )
        )
    lines.append("{not json")
    (run / "results.jsonl").write_text("\n".join(lines) + "\n")
    png(run / "figures" / "pr_curve.png", 640, 480, (30, 120, 200))
    png(run / "figures" / "detections.png", 1600, 500, (200, 80, 30))
    return run


def rollout_report(*, rolled_back: bool) -> dict[str, Any]:
    """A report in the shape of `edgekit rollout --report` (edgekit.rollout.record)."""
    p95 = {
        "name": "p95_latency",
        "verdict": "FAIL" if rolled_back else "PASS",
        "value": 84.1 if rolled_back else 18.2,
        "threshold": 20.0,
        "detail": "candidate p95 84.1 ms > 20.0 ms" if rolled_back else "p95 18.2 ms <= 20.0 ms",
        "devices": {"edgekit-core-1": {"p95_ms": 84.1 if rolled_back else 18.2, "results": 9}},
    }
    canary_gates = [
        {
            "name": "proof",
            "verdict": "PASS",
            "value": 1.0,
            "threshold": 1.0,
            "detail": "all 1 device(s) proved",
            "devices": {"edgekit-core-1": {"state": "PROVEN"}},
        },
        {"name": "error_rate", "verdict": "PASS", "value": 0.0, "threshold": 0.05, "detail": ""},
        p95,
        {
            "name": "defect_rate_delta",
            "verdict": "SKIPPED",
            "value": None,
            "threshold": None,
            "detail": "no baseline devices",
        },
    ]
    stages = [
        {
            "name": "canary",
            "status": "ROLLED_BACK" if rolled_back else "PASSED",
            "target": "arn:aws:iot:us-east-1:123456789012:thinggroup/edgekit-devices-canary",
            "things": ["edgekit-core-1"],
            "deployment_id": "d-canary-1",
            "started_at": "2026-12-05T20:20:00+00:00",
            "finished_at": "2026-12-05T20:21:05+00:00",
            "gates": canary_gates,
            "detail": "rolled back to com.qualityinspection.model 1.0.0" if rolled_back else None,
        },
    ]
    if not rolled_back:
        stages.append(
            {
                "name": "fleet",
                "status": "PASSED",
                "things": ["edgekit-core-2", "edgekit-core-3"],
                "deployment_id": "d-fleet-1",
                "started_at": "2026-12-05T20:21:06+00:00",
                "finished_at": "2026-12-05T20:22:10+00:00",
                "gates": [{"name": "proof", "verdict": "PASS", "value": 1.0, "threshold": 1.0}],
            }
        )
    devices = {
        thing: {**row, "stage": "canary" if thing == "edgekit-core-1" else "fleet"}
        for thing, row in proofs(all_proven=True).items()
        if not rolled_back or thing == "edgekit-core-1"
    }
    if rolled_back:
        devices["edgekit-core-1"]["p95_ms"] = 84.1
        devices["edgekit-core-1"]["soak"] = {
            "results": 9,
            "errors": 0,
            "defect_rate": 0.4444,
            "error_rate": 0.0,
            "p95_ms": 84.1,
            "package_sha256": SHA,
            "health_state": "RUNNING",
            "defect_agreement": None,
            "detection_agreement": None,
        }
        # the rest of the fleet keeps the current model: the baseline of the gates
        devices["edgekit-core-2"] = {
            "state": "CURRENT",
            "package_sha256": OLD_SHA,
            "results": 11,
            "errors": 0,
            "p95_ms": 19.5,
            "soak": {"defect_rate": 0.3636, "error_rate": 0.0, "health_state": "RUNNING"},
        }
    return {
        "id": "edgekit-devices-9e46858bb47c-1a2b3c4d",
        "status": "ROLLED_BACK" if rolled_back else "PROMOTED",
        "gate": "p95_latency" if rolled_back else None,
        "gate_detail": p95["detail"] if rolled_back else None,
        "thing_group": "edgekit-devices",
        "canary_group": "edgekit-devices-canary",
        "model": {
            "name": "tag-scratch-detector",
            "version": "1.1.0",
            "package_sha256": SHA,
            "package": "/tmp/build/tag-scratch-detector-1.1.0.tar.gz",
        },
        "previous": {"com.qualityinspection.model": "1.0.0"},
        "stages": stages,
        "devices": devices,
        "created_at": "2026-12-05T20:19:58+00:00",
        "finished_at": "2026-12-05T20:21:06+00:00",
        "error": None,
    }


@pytest.fixture
def samples() -> Any:
    """The sample data above, for the test modules (conftest is not importable under importlib)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        SHA=SHA,
        OLD_SHA=OLD_SHA,
        HOSTILE_REASON=HOSTILE_REASON,
        png=png,
        proofs=proofs,
        make_run=make_run,
        rollout_report=rollout_report,
    )
