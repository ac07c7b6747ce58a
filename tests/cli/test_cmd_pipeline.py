"""``edgekit pipeline run``: the parameters file is checked against the notebooks, and a
flag typed on the command line wins over the file, saying so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

import edgekit.pipeline
from edgekit.cli import main
from edgekit.errors import ConfigurationError
from edgekit.pipeline import run_pipeline


def _notebook(path: Path, source: str) -> None:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.metadata["language_info"] = {"name": "python"}
    cell = new_code_cell(source)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, new_code_cell("x = 1")]
    nbformat.write(nb, str(path))


@pytest.fixture
def notebooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Two stand-in notebooks, and papermill replaced by a recorder (no kernel starts)."""
    folder = tmp_path / "nbs"
    folder.mkdir()
    _notebook(
        folder / "01_provision_device.ipynb",
        'backend = "local"\noutput_dir = "."\ndevice_count = 2',
    )
    _notebook(folder / "02_compile_and_package.ipynb", 'backend = "local"')
    _notebook(folder / "03_deploy_components.ipynb", 'backend = "local"')
    _notebook(
        folder / "04_visualize_results.ipynb", 'backend = "local"\nmax_messages = 40  # stop after'
    )
    calls: dict[str, dict[str, Any]] = {}

    def execute(source: str, executed: str, *, parameters: dict[str, Any], **_: Any) -> None:
        calls[Path(source).stem] = parameters
        Path(executed).write_text(Path(source).read_text())

    monkeypatch.setattr(edgekit.pipeline.papermill, "execute_notebook", execute)
    monkeypatch.setattr(edgekit.pipeline, "_to_html", lambda path: None)
    monkeypatch.setattr(edgekit.pipeline, "_write_index", lambda run: None)
    return {"dir": folder, "calls": calls, "tmp": tmp_path}


def _run(notebooks: dict[str, Any], params: str | None, *flags: str) -> int:
    argv = ["pipeline", "run", "--notebooks", str(notebooks["dir"])]
    if params is not None:
        path = notebooks["tmp"] / "params.yaml"
        path.write_text(params)
        argv += ["--params", str(path)]
    if "--out" not in flags:
        argv += ["--runs-root", str(notebooks["tmp"] / "runs")]
    return main([*argv, *flags])


def test_a_misspelled_key_fails_naming_file_key_and_suggestion(
    notebooks: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(notebooks, "max_mesages: 99\n") == 1
    err = capsys.readouterr().err
    assert "params.yaml: unknown parameter 'max_mesages' (did you mean 'max_messages'?)" in err
    assert "backend, device_count, max_messages, output_dir, rollout" in err
    assert notebooks["calls"] == {}  # nothing ran


def test_the_backend_of_the_file_is_used(
    notebooks: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(notebooks, "backend: aws\nmax_messages: 99\n") == 0
    assert notebooks["calls"]["01_provision_device"]["backend"] == "aws"
    assert notebooks["calls"]["04_visualize_results"] == {"backend": "aws", "max_messages": 99}
    assert "overrides" not in capsys.readouterr().err


def test_a_typed_flag_wins_and_says_so(
    notebooks: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(notebooks, "backend: aws\n", "--backend", "local") == 0
    assert notebooks["calls"]["01_provision_device"]["backend"] == "local"
    err = capsys.readouterr().err
    assert "--backend local overrides backend: aws in " in err and "params.yaml" in err


def test_the_file_output_dir_is_the_run_folder_unless_out_is_typed(
    notebooks: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    there = notebooks["tmp"] / "from-file"
    assert _run(notebooks, f"output_dir: {there}\n") == 0
    assert notebooks["calls"]["01_provision_device"]["output_dir"] == str(there.resolve())
    assert json.loads((there / "parameters.json").read_text())["output_dir"] == str(there.resolve())
    typed = notebooks["tmp"] / "typed"
    assert _run(notebooks, f"output_dir: {there}\n", "--out", str(typed)) == 0
    assert notebooks["calls"]["01_provision_device"]["output_dir"] == str(typed.resolve())
    assert f"--out {typed} overrides output_dir: {there}" in capsys.readouterr().err


def test_without_a_file_or_flag_the_backend_is_local(notebooks: dict[str, Any]) -> None:
    assert _run(notebooks, None) == 0
    assert notebooks["calls"]["01_provision_device"]["backend"] == "local"


def test_a_bad_backend_in_the_file_is_refused(
    notebooks: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(notebooks, "backend: azure\n") == 1
    assert "backend='azure' is not known; use one of local, aws" in capsys.readouterr().err


def test_the_library_refuses_unknown_names_and_disagreements(notebooks: dict[str, Any]) -> None:
    run = notebooks["tmp"] / "lib"
    with pytest.raises(
        ConfigurationError, match=r"run_pipeline\(parameters=...\): unknown parameter 'max_mesages'"
    ):
        run_pipeline(out_dir=run, notebooks_dir=notebooks["dir"], parameters={"max_mesages": 1})
    with pytest.raises(
        ConfigurationError,
        match=r"run_pipeline\(backend='local'\) and parameters\['backend'\]='aws' disagree",
    ):
        run_pipeline(
            out_dir=run,
            notebooks_dir=notebooks["dir"],
            backend="local",
            parameters={"backend": "aws"},
        )
    assert notebooks["calls"] == {}


def test_help_lists_every_parameter_with_default_and_notebook(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["pipeline", "run", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "--params FILE.yaml" in text
    assert "max_messages" in text and "40  (04)" in text
    assert "04_visualize_results" in text
    assert "canary" in text and "rollout" in text
    assert "timeout                300 (03), 60 (04), 180 (05)" in text
