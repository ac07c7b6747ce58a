"""`make bench` regenerates README.md's benchmark tables: the marker sections, the shared
machine line, and one real script rewriting its section in a temporary copy of README."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "benchmarks"
README = REPO / "README.md"
MARKER = re.compile(r"<!-- bench:([a-z0-9_]+) -->")


def _machine():
    spec = importlib.util.spec_from_file_location("_machine", BENCHMARKS / "_machine.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _section(text: str, name: str) -> str:
    start = text.index(f"<!-- bench:{name} -->\n") + len(f"<!-- bench:{name} -->\n")
    return text[start : text.index("<!-- /bench -->", start)]


def _outside(text: str) -> str:
    """README with every bench section emptied: what the scripts must never change."""
    return re.sub(r"(<!-- bench:[a-z0-9_]+ -->\n).*?(<!-- /bench -->)", r"\1\2", text, flags=re.S)


def test_every_section_has_a_script_that_writes_it_and_make_bench_runs_it() -> None:
    sections = MARKER.findall(README.read_text())
    assert len(sections) == len(set(sections)), "a README bench section appears twice"
    scripts = {p.stem for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_")}
    assert set(sections) == scripts
    for name in scripts:
        source = (BENCHMARKS / f"{name}.py").read_text()
        assert f'BenchOutput("{name}"' in source, name
        assert "add_readme_option(parser)" in source, name
    makefile = (REPO / "Makefile").read_text()
    listed = re.search(r"^BENCHMARKS := (.*)$", makefile, re.M)
    assert listed is not None and set(listed.group(1).split()) == scripts
    assert re.search(r"^bench:", makefile, re.M)


def test_update_readme_replaces_only_its_section(tmp_path: Path) -> None:
    machine = _machine()
    copy = tmp_path / "README.md"
    copy.write_text(README.read_text())
    before = copy.read_text()
    machine.update_readme(copy, "spool", "| a | b |\n|---|---|\n| 1 | 2 |\n")
    after = copy.read_text()
    assert _section(after, "spool") == "| a | b |\n|---|---|\n| 1 | 2 |\n"
    assert _outside(after) == _outside(before)
    for name in MARKER.findall(before):
        if name != "spool":
            assert _section(after, name) == _section(before, name)
    machine.update_readme(copy, "spool", "| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert copy.read_text() == after  # rewriting is stable


def test_a_missing_section_is_an_error_naming_file_and_marker(tmp_path: Path) -> None:
    copy = tmp_path / "README.md"
    copy.write_text("# no markers here\n")
    with pytest.raises(SystemExit, match=r"README\.md: no '<!-- bench:spool -->'"):
        _machine().update_readme(copy, "spool", "x")
    assert copy.read_text() == "# no markers here\n"


def test_machine_line_names_cpu_cores_and_load() -> None:
    machine = _machine()
    info = machine.machine_info()
    line = machine.machine_line(info)
    assert info["cpu"] and info["cpu"] in line
    assert f"{os.cpu_count()} cores" in line
    assert "load average" in line
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        if names:
            assert info["cpu"] == names[0].strip()


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_script_rewrites_its_readme_section(tmp_path: Path) -> None:
    """mqtt_broker.py (seconds, loopback only) regenerates its table in a copy of README."""
    copy = tmp_path / "README.md"
    copy.write_text(README.read_text())
    before = copy.read_text()
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "mqtt_broker.py"),
            "--quick",
            "--seconds",
            "0.5",
            "--count",
            "200",
            "--readme",
            str(copy),
        ],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    section = _section(copy.read_text(), "mqtt_broker")
    assert section != _section(before, "mqtt_broker")
    assert section.startswith("**Measured in this run:**")
    assert "| run | sent | received | msg/s |" in section
    assert "_Machine: " in section and "load average" in section
    printed = done.stdout.splitlines()
    assert all(line in printed for line in section.splitlines() if line)  # what it printed
    assert _outside(copy.read_text()) == _outside(before)
    # The machine line follows the table in what the script prints, too.
    table_end = done.stdout.index("| flat out |")
    assert "_Machine: " in done.stdout[table_end:]
