"""Notebook 05 rolls out a real candidate: a new version of the model the fleet runs.

Issue 11's workshop notebook defaulted to the package already deployed, so it "promoted" a
no-op. Run as papermill runs it (its default parameters, a throwaway home): the candidate
is the current model packaged again as the next patch version (a new sha256), it goes
through canary and fleet with their gates, and the report says what the devices ran
before and after.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("papermill")
pytest.importorskip("awsiot.greengrasscoreipc")

import papermill  # noqa: E402

from edgekit.local import endpoints  # noqa: E402
from edgekit.package import verify_package  # noqa: E402
from edgekit.resources import notebooks_dir  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    monkeypatch.setenv("EDGEKIT_LOCAL_HOME", str(home))  # the kernel inherits it
    monkeypatch.setenv("EDGEKIT_QUIET", "1")
    monkeypatch.delenv("EDGEKIT_THING_GROUP", raising=False)
    try:
        yield home
    finally:
        endpoints.down(home)


def test_the_notebook_rolls_out_a_new_version_through_canary_and_fleet(
    home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    executed = tmp_path / "05.ipynb"
    papermill.execute_notebook(
        str(notebooks_dir() / "05_rollout.ipynb"),
        str(executed),
        parameters={"output_dir": str(out), "soak": 4},
        cwd=str(tmp_path),
        progress_bar=False,
        kernel_name="python3",
    )
    report = json.loads((out / "rollout.json").read_text())
    assert report["status"] == "PROMOTED", report
    assert [(s["name"], s["status"]) for s in report["stages"]] == [
        ("canary", "PASSED"),
        ("fleet", "PASSED"),
    ]
    new, old = report["model"], report["previous"]["model"]
    assert new["package_sha256"] != old["package_sha256"], "the candidate is what ran already"
    assert (new["name"], new["version"]) == (old["name"], "1.0.1") and old["version"] == "1.0.0"
    candidate = out / "candidate" / f"{new['name']}-1.0.1.tar.gz"
    assert verify_package(candidate, home / "keys" / "public_key.pem").version == "1.0.1"
    assert report["devices"] and all(
        row["state"] == "PROVEN" and row["package_sha256"] == new["package_sha256"]
        for row in report["devices"].values()
    ), report["devices"]
    text = executed.read_text()
    assert "candidate:     tag-scratch-detector 1.0.1" in text
    # The candidate is a registry version, and it carries the outcome.
    assert re.search(r"registry: tag-scratch-detector version \d+: rollout PROMOTED", text), text
