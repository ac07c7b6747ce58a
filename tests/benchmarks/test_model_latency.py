"""benchmarks/model_latency.py runs end to end (``--quick``) and prints its tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

pytestmark = [pytest.mark.slow, pytest.mark.train]

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "model_latency.py"
README = SCRIPT.parents[1] / "README.md"
ROWS = ("PyTorch eager fp32", "ONNX Runtime fp32", "ONNX Runtime int8")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for both runs, so the models are compiled once."""
    return tmp_path_factory.mktemp("model-latency-work")


def _run(tmp_path: Path, work: Path, data: Path) -> tuple[str, dict]:
    out = tmp_path / "result.json"
    readme = tmp_path / "README.md"
    readme.write_text(README.read_text())
    command = [
        sys.executable,
        str(SCRIPT),
        "--quick",
        "--iterations",
        "3",
        "--skip-train",
        "--data",
        str(data),
        "--work",
        str(work),
        "--json",
        str(out),
        "--readme",
        str(readme),
    ]
    env = {**os.environ, "EDGEKIT_QUIET": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    # The README copy's model_latency section now holds what the script printed.
    text = readme.read_text()
    start = text.index("<!-- bench:model_latency -->\n")
    section = text[start : text.index("<!-- /bench -->", start)]
    assert "**Speed-up, measured in this run" in section
    assert "| model | p50 ms (1 thr) |" in section and "_Machine: " in section
    return done.stdout, json.loads(out.read_text())


def _table_rows(stdout: str) -> dict[str, list[str]]:
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] in ROWS:
            rows.setdefault(cells[0], cells)  # the first table's row of that name
    return rows


def _check_latency_table(stdout: str, result: dict) -> dict[str, list[str]]:
    lines = stdout.splitlines()
    # Leads with the ratios of this run, then the table, each table followed by the machine.
    assert lines[0].startswith("**Speed-up, measured in this run (p50, batch 1, 1 thread):**")
    assert lines[1].startswith("| model | p50 ms (1 thr) |")
    assert stdout.count("_Machine: ") >= 2
    assert result["environment"]["cpu"] in stdout and "load average" in stdout
    rows = _table_rows(stdout)
    assert set(rows) == set(ROWS)
    for cells in rows.values():
        assert len(cells) == 9
        p50_1, p95_1, p50_2, p95_2 = (float(c) for c in cells[1:5])
        assert 0 < p50_1 <= p95_1 and 0 < p50_2 <= p95_2
        assert cells[6].endswith(" MB")
        assert 0.0 <= float(cells[8]) <= 1.0  # synthetic AP50
    sizes = {r["name"]: r["size_bytes"] for r in result["rows"]}
    assert sizes["ONNX Runtime int8"] < sizes["ONNX Runtime fp32"]
    for row in result["rows"]:
        assert row["latency"]["1"]["iterations"] == 3
    assert "same `predict` path in every row" in stdout
    assert "goal: int8 >= 3x faster than PyTorch eager fp32" in stdout
    assert "not run (--skip-train)" in stdout or "not run (no data set" in stdout
    return rows


def test_quick_without_real_data(tmp_path: Path, work: Path) -> None:
    stdout, result = _run(tmp_path, work, tmp_path / "no-such-dataset")
    rows = _check_latency_table(stdout, result)
    assert all(cells[7] == "n/a" for cells in rows.values())
    assert "not run (no data set" in stdout
    assert result["training"]["real"] is None
    assert "a 450x300 synthetic render" in result["settings"]["timed_image"]


def test_quick_with_real_validation_split(tmp_path: Path, work: Path, tag_scratches: Path) -> None:
    stdout, result = _run(tmp_path, work, tag_scratches)
    rows = _check_latency_table(stdout, result)
    for cells in rows.values():
        assert 0.0 <= float(cells[7]) <= 1.0
    assert result["settings"]["real_val_images"] > 0
    # Real photos present: the timed image is one of them, read in place.
    assert result["settings"]["timed_image"].startswith("the photo ")
    assert "Latency: the photo " in stdout
    assert "goal: real-trained AP50 >= 0.6 on real val: not run" in stdout
