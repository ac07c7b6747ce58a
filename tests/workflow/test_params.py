"""The notebooks' parameters cells, parsed without a kernel, and the checks on given names."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from edgekit.errors import ConfigurationError
from edgekit.pipeline import STAGES, pipeline_parameters
from edgekit.resources import notebooks_dir
from edgekit.workflow.params import (
    check_parameters,
    declared_parameters,
    notebook_parameters,
    overrides,
    parameters_help,
    parse_parameters_cell,
)

CELL = """\
backend = "local"      # "local" or "aws"
count: int = 2         # how many
stop = None            # True/False; None: stop them if
                       # this notebook started them
x, y = 1, 2
print("not a parameter")
"""


def test_the_cell_is_read_with_defaults_and_comments() -> None:
    found = parse_parameters_cell(CELL, "01_demo")
    assert list(found) == ["backend", "count", "stop"]
    assert found["backend"].default == '"local"'
    assert found["backend"].help == '"local" or "aws"'
    assert found["count"].default == "2"
    assert found["stop"].help == "True/False; None: stop them if this notebook started them"
    assert {p.notebook for p in found.values()} == {"01_demo"}


def test_a_broken_cell_names_the_notebook() -> None:
    with pytest.raises(ConfigurationError, match=r"02_x: its parameters cell is not valid Python"):
        parse_parameters_cell("backend = (", "02_x")


def _notebook(path: Path, source: str | None) -> Path:
    nb = new_notebook()
    nb.cells = [new_code_cell("import os")]
    if source is not None:
        cell = new_code_cell(source)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nbformat.write(nb, str(path))
    return path


def test_notebooks_are_merged_in_order(tmp_path: Path) -> None:
    a = _notebook(tmp_path / "01_a.ipynb", "backend = 'local'\ntimeout = 300  # wait")
    b = _notebook(tmp_path / "02_b.ipynb", "backend = 'local'\ntimeout = 60")
    c = _notebook(tmp_path / "03_c.ipynb", None)
    assert notebook_parameters(c) == {}
    declared = declared_parameters([a, b, c])
    assert list(declared) == ["backend", "timeout"]
    assert [(p.notebook, p.default) for p in declared["timeout"]] == [
        ("01_a", "300"),
        ("02_b", "60"),
    ]
    text = parameters_help(declared, {"rollout": ("false", "also roll out")})
    assert "backend  'local'  (01 02)" in text
    assert "timeout  300 (01), 60 (02)" in text
    assert "wait" in text and "rollout  false" in text


def test_a_missing_notebook_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="nope.ipynb: notebook not found"):
        notebook_parameters(tmp_path / "nope.ipynb")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"max_mesages": 99},
            r"params.yaml: unknown parameter 'max_mesages' \(did you mean 'max_messages'\?\)",
        ),
        (
            {"zzz": 1},
            r"params.yaml: unknown parameter 'zzz'; "
            r"the notebooks' parameters are: backend, max_messages",
        ),
        (
            {"bakend": 1, "tmeout": 2},
            r"unknown parameters 'bakend' \(did you mean 'backend'\?\), 'tmeout'",
        ),
        ({1: "x"}, r"unknown parameter 1;"),
    ],
)
def test_unknown_names_are_refused_with_a_suggestion(given: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        check_parameters(given, ["max_messages", "backend"], "params.yaml")


def test_known_names_pass() -> None:
    check_parameters({"backend": "aws"}, ["backend"], "params.yaml")


def test_overrides_lists_what_differs() -> None:
    given = {"backend": "local", "output_dir": "runs/x", "timeout": 3}
    assert overrides(given, {"backend": "aws", "output_dir": "runs/x", "timeout": None}) == [
        ("backend", "local", "aws")
    ]


def test_the_shipped_notebooks_declare_what_the_pipeline_sets() -> None:
    declared = pipeline_parameters(notebooks_dir(), STAGES)
    for name in ("backend", "output_dir", "interactive", "figures_dir", "max_messages", "canary"):
        assert name in declared
    assert {p.notebook for p in declared["backend"]} >= set(STAGES)
