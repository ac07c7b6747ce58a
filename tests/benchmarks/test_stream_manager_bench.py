"""benchmarks/stream_manager_bench.py runs with tiny numbers and prints its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "stream_manager_bench.py"
ROWS = (
    "append, Memory stream",
    "append, File stream",
    "append, File stream, flushOnWrite",
    "read File stream, 10 per call",
    "read File stream, 1 per call",
)


def test_stream_manager_benchmark_prints_its_table() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--count", "30", "--batch", "10"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {line.split("|")[1].strip(): line for line in done.stdout.splitlines() if "|" in line}
    for row in ROWS:
        assert row in lines, done.stdout
        assert [c.strip() for c in lines[row].split("|")[1:-1]][1] == "30", lines[row]
