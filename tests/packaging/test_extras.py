"""The notebook environment (issue 15, items 1 and 7).

`make demo` installs the ``notebook`` extra (JupyterLab for `make lab`, pandas for
`ResultsTable.to_dataframe()`); the test environment has it too (``dev`` includes it);
the device never installs it (the components install the wheel with ``--no-deps``).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
EXTRAS = PYPROJECT["project"]["optional-dependencies"]


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_notebook_extra_has_jupyterlab_and_pandas() -> None:
    assert {"jupyterlab", "pandas"} <= _names(EXTRAS["notebook"])
    assert "ipywidgets" in _names(PYPROJECT["project"]["dependencies"])  # the live view


def test_the_dev_extra_includes_the_notebook_extra() -> None:
    name = PYPROJECT["project"]["name"]
    assert f"{name}[notebook]" in EXTRAS["dev"]


def test_make_demo_installs_the_notebook_extra_and_make_lab_exists() -> None:
    makefile = (REPO / "Makefile").read_text()
    demo = re.search(r"^\$\(VENV\)/\.demo-installed:.*?\n\n", makefile, re.M | re.S)
    assert demo and '-e ".[notebook]"' in demo.group(0)
    assert re.search(r"^lab: \$\(VENV\)/\.demo-installed\n\t\$\(BIN\)/edgekit lab$", makefile, re.M)


def test_the_device_installs_the_wheel_without_its_dependencies() -> None:
    script = (REPO / "component" / "shared" / "install_env.py").read_text()
    assert '"--no-index", "--no-deps"' in script
    for extra in ("jupyterlab", "pandas"):
        assert extra not in script
