"""A notebook a pipeline run executed shows widgets again when someone reopens it.

`make demo` leaves its executed notebooks in ``runs/latest`` and `make lab` opens that
folder. The run used to inject ``interactive = False`` into every notebook, so running
notebook 04 there again in JupyterLab showed a static picture instead of the live view.
The run now leaves the parameter alone; the kernels it starts are quiet
(``EDGEKIT_QUIET=1``), which is what keeps the run itself static.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from edgekit.pipeline import run_pipeline

pytestmark = pytest.mark.slow


def test_the_executed_notebook_keeps_interactive_true_and_the_run_stays_static(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EDGEKIT_INTERACTIVE", raising=False)
    monkeypatch.setenv("EDGEKIT_LOCAL_HOME", str(tmp_path / "home"))
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("interactive = True")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(
            "from edgekit.viz import is_interactive\n"
            "print('widgets', interactive, is_interactive(None if interactive else False))"
        ),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, str(notebooks / "live.ipynb"))
    run = run_pipeline(out_dir=tmp_path / "run", notebooks_dir=notebooks, stages=("live",))
    assert run.ok
    executed = nbformat.read(str(tmp_path / "run" / "live.ipynb"), as_version=4)
    injected = [
        c.source for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])
    ]
    assert not any("interactive" in source for source in injected), injected
    # During the run: the parameter says True, but nobody is looking, so no widgets.
    assert "widgets True False" in json.dumps(executed.cells[-1].outputs)
