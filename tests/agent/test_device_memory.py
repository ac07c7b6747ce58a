"""What keeps the device's processes small: heap trimming and what they do not import.

Sizes are measured by ``benchmarks/device_memory.py``; these tests check the mechanisms:
the C heap is trimmed on a period, and the model agent's modules load neither the compile
pipeline nor the synthetic data generator (Pillow's drawing, fonts), which only building
packages and training need. Each import check runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from edgekit.agent import heap


def _modules(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code) + "\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_trim_returns_the_heaps_free_pages_on_glibc() -> None:
    assert heap.trim() is True


def test_the_trimmer_trims_once_a_period(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    calls: list[int] = []
    monkeypatch.setattr(heap.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(heap, "trim", lambda: calls.append(1) or True)
    trimmer = heap.HeapTrimmer(period=10.0)
    assert trimmer.tick() is False  # not before the first period
    now[0] += 10.0
    assert trimmer.tick() is True
    assert trimmer.tick() is False
    now[0] += 10.0
    assert trimmer.tick() is True
    assert len(calls) == 2
    never = heap.HeapTrimmer(period=0)
    now[0] += 1000.0
    assert never.tick() is False and len(calls) == 2


def test_the_agent_loads_neither_the_compile_pipeline_nor_the_data_generator() -> None:
    modules = _modules(
        """
        import json, sys
        import edgekit.agent.server, edgekit.agent.edge_manager_serve, edgekit.cli.cmd_agent
        from edgekit.package import load_model, load_public_key
        """
    )
    unwanted = [
        m
        for m in modules
        if m.startswith(("edgekit.compile", "edgekit.data.synthetic", "edgekit.model.evaluate"))
        or m in ("edgekit.package.build", "PIL.ImageDraw", "PIL.ImageFont")
    ]
    assert unwanted == []


def test_the_lazy_names_still_resolve() -> None:
    """The packages that load parts on first use still offer every name they list."""
    import edgekit.data
    import edgekit.model
    import edgekit.package

    for package in (edgekit.data, edgekit.model, edgekit.package):
        for name in package.__all__:
            assert getattr(package, name) is not None, f"{package.__name__}.{name}"
