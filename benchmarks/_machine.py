"""What every benchmark prints next to its tables, and how its tables reach README.md.

One implementation for all scripts in ``benchmarks/``:

- :func:`machine_info` / :func:`machine_line`: the CPU model (``/proc/cpuinfo``,
  else :mod:`platform`), its vector extensions, the core count (and how many this
  process may use) and the load average, so a number is never read without the
  machine it was measured on;
- :class:`BenchOutput`: a script prints each table through it (the machine line
  follows every table) and, with ``--readme FILE``, writes the same text between
  ``<!-- bench:NAME -->`` and ``<!-- /bench -->`` in that file (``make bench``).

Stdlib only, so it runs wherever the scripts run (offline included).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
from pathlib import Path
from typing import Any

ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimd", "sve")
END_MARKER = "<!-- /bench -->"


def _cpuinfo() -> tuple[str | None, set[str]]:
    model: str | None = None
    flags: set[str] = set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and model is None:
            model = value.strip() or None
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return model, flags


def machine_info() -> dict[str, Any]:
    """CPU model, vector extensions, cores (all / usable by this process), load average."""
    model, flags = _cpuinfo()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    load = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {
        "cpu": model or platform.processor() or platform.machine() or "unknown CPU",
        "isa": [f for f in ISA_FLAGS if f in flags],
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "loadavg": load,
        "system": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
    }


def machine_line(info: dict[str, Any] | None = None) -> str:
    """One line for under a table: ``Machine: <cpu> (<isa>), N cores, load average a / b / c``."""
    info = info or machine_info()
    isa = f" ({', '.join(info['isa'])})" if info["isa"] else ""
    cores = f"{info['cores']} cores"
    if info["usable_cores"] is not None and info["usable_cores"] != info["cores"]:
        cores += f" ({info['usable_cores']} usable)"
    load = (
        " / ".join(f"{v:.2f}" for v in info["loadavg"]) + " (1 / 5 / 15 min)"
        if info["loadavg"] is not None
        else "n/a"
    )
    return f"_Machine: {info['cpu']}{isa}, {cores}, {info['system']}; load average {load}._"


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table of ``rows`` (cells printed with ``str``)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def add_readme_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--readme",
        type=Path,
        metavar="FILE",
        help="also write the printed tables into FILE between <!-- bench:NAME --> and "
        "<!-- /bench --> (make bench: README.md)",
    )


def update_readme(path: Path, name: str, body: str) -> None:
    """Replace the text between ``<!-- bench:NAME -->`` and the next ``<!-- /bench -->``.

    Raises SystemExit naming the file and the marker when the markers are missing,
    so a renamed section is never silently skipped.
    """
    start = f"<!-- bench:{name} -->"
    text = path.read_text()
    pattern = re.compile(re.escape(start) + r"\n.*?" + re.escape(END_MARKER), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(
            f"{path}: no '{start}' ... '{END_MARKER}' section; add the two marker lines "
            "where this benchmark's tables belong"
        )
    replacement = f"{start}\n{body.strip()}\n{END_MARKER}"
    new = pattern.sub(lambda _: replacement, text, count=1)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(new)
    os.replace(tmp, path)


class BenchOutput:
    """Prints a benchmark's text; every table is followed by the machine line.

    ``finish()`` writes everything printed through :meth:`table` and :meth:`text`
    into the README section ``name`` when ``readme`` is set.
    """

    def __init__(self, name: str, readme: Path | None = None) -> None:
        self.name = name
        self.readme = readme
        self.parts: list[str] = []

    def text(self, text: str) -> None:
        print(text, flush=True)
        self.parts.append(text)

    def table(self, table: str, caption: str = "") -> None:
        """The table, its caption (if any) and the machine line as measured now."""
        block = table.rstrip() + "\n\n" + (caption.strip() + "\n" if caption else "")
        block += machine_line()
        print(block + "\n", flush=True)
        self.parts.append(block)

    def finish(self) -> None:
        if self.readme is not None:
            update_readme(self.readme, self.name, "\n\n".join(self.parts))
            print(f"(wrote the '{self.name}' tables into {self.readme})")
