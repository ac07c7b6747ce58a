"""The IPC benchmark script runs end to end (tiny counts; the real numbers come from running it)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("awsiot.greengrasscoreipc")

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "ipc_throughput.py"


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_benchmark_prints_a_table(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.spec_from_file_location("ipc_throughput", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "ipc_throughput", module)  # dataclasses look it up
    spec.loader.exec_module(module)
    # the script sets the component env vars in os.environ; restore them afterwards
    monkeypatch.setenv("SVCUID", "")
    monkeypatch.setenv("AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT", "")

    assert (
        module.main(["--seconds", "0.3", "--rate", "100", "--count", "60", "--payload", "64"]) == 0
    )
    out = capsys.readouterr().out
    # markdown rows: | operation | mode | sent | received | msg/s | p50 | p95 | max |
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in out.splitlines()
        if line.startswith("| Publish")
    ]
    assert len(rows) == 6, out
    for row in rows:
        assert row[2] == row[3], row  # nothing lost on loopback
    assert out.index("**Measured in this run:**") < out.index("| operation |")
    assert "_Machine: " in out  # the CPU and load under the table
    assert "goal PublishToIoTCore p50 <= 5 ms at 100 msg/s" in out
