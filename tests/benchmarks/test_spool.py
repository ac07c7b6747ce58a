"""benchmarks/spool.py runs with tiny numbers and prints its table (every result delivered)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("awsiot.greengrasscoreipc")

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "spool.py"
ROWS = (
    "broker up, Disk spool",
    "broker up, Memory spool",
    "into the spool, broker unreachable (Disk)",
    "drain after the outage",
    "drain after the outage and a runtime restart",
)


def test_spool_benchmark_prints_its_table() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--count", "20", "--outage", "60", "--timeout", "60"],
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {line.split("|")[1].strip(): line for line in done.stdout.splitlines() if "|" in line}
    for row in ROWS:
        assert row in lines, done.stdout
        cells = [c.strip() for c in lines[row].split("|")[1:-1]]
        assert cells[1] == cells[2], lines[row]  # every result delivered (or spooled)
