"""`edgekit pipeline run`: the notebooks end to end; a failure names the notebook and cell."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from edgekit.cli import main
from edgekit.errors import ConfigurationError
from edgekit.pipeline import PipelineError, load_parameters, run_pipeline


def _notebook(path: Path, *sources: str) -> None:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.metadata["language_info"] = {"name": "python"}
    params = new_code_cell('backend = "local"\noutput_dir = "."')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(new_code_cell(s) for s in sources)]
    nbformat.write(nb, str(path))


@pytest.mark.slow
def test_failing_cell_is_named_and_the_partial_notebook_kept(tmp_path: Path) -> None:
    _notebook(tmp_path / "fine.ipynb", "x = 1")
    _notebook(tmp_path / "broken.ipynb", "y = 2", "raise ValueError('camera folder is empty')")
    with pytest.raises(PipelineError, match=r"broken.ipynb: cell \[4\] failed") as info:
        run_pipeline(out_dir=tmp_path / "run", notebooks_dir=tmp_path, stages=("fine", "broken"))
    assert info.value.notebook.name == "broken.ipynb"
    assert (tmp_path / "run" / "broken.ipynb").is_file()
    report = (tmp_path / "run" / "report.html").read_text()
    assert "FAILED" in report and "fine" in report


def test_parameters_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("- not\n- a mapping\n")
    with pytest.raises(ConfigurationError, match="params.yaml: must hold a mapping"):
        load_parameters(bad)
    with pytest.raises(ConfigurationError, match="not found"):
        load_parameters(tmp_path / "missing.yaml")


@pytest.mark.slow
@pytest.mark.integration
def test_pipeline_runs_the_main_job_on_the_local_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgekit.local.endpoints import down

    home = tmp_path / "home"
    monkeypatch.setenv("EDGEKIT_LOCAL_HOME", str(home))
    out = tmp_path / "run"
    try:
        assert main(["pipeline", "run", "--out", str(out)]) == 0
    finally:
        down(home)
    printed = capsys.readouterr().out
    for stage in (
        "01_provision_device",
        "02_compile_and_package",
        "03_deploy_components",
        "04_visualize_results",
    ):
        assert (out / f"{stage}.html").is_file()
        assert stage in (out / "report.html").read_text()
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(results) >= 20
    assert f"results: {len(results)} messages" in printed
    assert {"pr_curve.png", "detections.png", "latency.png"} <= {
        p.name for p in (out / "figures").glob("*.png")
    }
