"""The scheduler process (`python -m edgekit.schedule`, what `edgekit local up` starts) runs
due schedules: a quick stand-in run recorded ok, and a real `edgekit pipeline run` of a
notebook that fails, shown as failed by `edgekit pipeline schedules`.

A schedule made two minutes in the past is due at once (the catch-up policy: one run for
the missed fire times), so nothing waits for the clock.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from edgekit.cli import main
from edgekit.local import process
from edgekit.local.endpoints import http_answers
from edgekit.local.home import HomeLayout
from edgekit.schedule import store
from edgekit.schedule.local import SCHEDULER, schedule_local, scheduler_running, wake
from edgekit.schedule.store import RunRecord
from edgekit.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    home = tmp_path_factory.mktemp("schedules") / "home"
    layout = HomeLayout(home).ensure()
    port_file = layout.port_file(SCHEDULER)
    argv = process.python_argv(
        "edgekit.schedule",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--port-file",
        str(port_file),
        "--home",
        str(home),
    )

    def ready() -> bool:
        return port_file.is_file() and http_answers(f"http://127.0.0.1:{port_file.read_text()}")

    process.start_process(home, SCHEDULER, argv, ready=ready, timeout=60)
    yield Settings(local_home=home)
    process.stop_process(home, SCHEDULER)
    assert process.running(home) == {}


def _finished(settings: Settings, name: str, timeout: float = 90.0) -> RunRecord:
    """The schedule's last run, once one has ended (the scheduler records it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        schedule = store.load(settings.home).schedules.get(name)
        if schedule is not None and schedule.last_run is not None and schedule.running is None:
            return schedule.last_run
        time.sleep(0.1)
    log = (settings.home / "logs" / "scheduler.log").read_text()
    raise AssertionError(f"no run of {name} ended within {timeout} s; scheduler log:\n{log}")


def _past() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)


def test_a_due_schedule_runs_and_its_run_is_recorded(settings: Settings, tmp_path: Path) -> None:
    assert scheduler_running(settings)
    script = tmp_path / "quick_run.py"
    script.write_text(
        "import json, pathlib, sys\n"
        "args = sys.argv[1:]\n"
        "out = pathlib.Path(args[args.index('--out') + 1])\n"
        "out.mkdir(parents=True)\n"
        "(out / 'report.html').write_text(json.dumps(args))\n"
    )
    params = tmp_path / "params.yaml"
    params.write_text("device_count: 1\n")
    schedule_local(
        settings,
        "* * * * *",
        name="quick",
        params=params,
        runs_root=tmp_path / "runs",
        workdir=tmp_path,
        command=[sys.executable, str(script)],
        now=_past(),
    )
    run = _finished(settings, "quick")
    assert (run.status, run.exit_code, run.missed) == ("ok", 0, 1)  # two fire times, one run
    args = json.loads((Path(run.out_dir) / "report.html").read_text())
    assert args[args.index("--params") + 1] == str(params)
    assert Path(run.out_dir).parent == tmp_path / "runs"


def _notebook(path: Path, *sources: str) -> None:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.metadata["language_info"] = {"name": "python"}
    params = new_code_cell('backend = "local"\noutput_dir = "."')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(new_code_cell(s) for s in sources)]
    nbformat.write(nb, str(path))


@pytest.mark.slow
def test_a_failed_pipeline_run_shows_in_schedules(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _notebook(notebooks / "01_provision_device.ipynb", "raise ValueError('no camera folder')")
    for name in ("02_compile_and_package", "03_deploy_components", "04_visualize_results"):
        _notebook(notebooks / f"{name}.ipynb", "x = 1")
    schedule_local(
        settings,
        "*/5 * * * *",
        name="nightly",
        notebooks=notebooks,
        runs_root=tmp_path / "runs",
        workdir=tmp_path,
        now=_past() - dt.timedelta(minutes=5),  # at least one */5 fire time has passed
    )
    assert wake(settings)
    run = _finished(settings, "nightly")
    assert (run.status, run.exit_code) == ("failed", 1)
    assert run.notebook == "01_provision_device.ipynb"
    assert run.error is not None and "ValueError: no camera folder" in run.error
    assert (Path(run.out_dir) / "01_provision_device.ipynb").is_file()  # the partial notebook

    assert main(["pipeline", "schedules", "--home", str(settings.home)]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("nightly "))
    assert "*/5 * * * *" in line and "local" in line and "failed" in line
    assert run.out_dir in line
    assert (
        "nightly: last run failed (exit 1) in 01_provision_device.ipynb: edgekit pipeline: error: "
        "01_provision_device.ipynb: cell [3] failed with ValueError: no camera folder"
    ) in out
