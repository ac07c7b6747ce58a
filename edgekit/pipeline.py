"""Run the notebooks in order with papermill: the scheduled-run and CI entry point.

Each run gets its own folder (``runs/<timestamp>/``) with the executed
notebooks, an HTML rendering of each and a ``report.html`` index; ``runs/latest``
points at the newest run. A failing cell stops the run with an error naming the
notebook and the cell, and the partly executed notebook is kept for reading.

The staged rollout (notebook ``05_rollout``) is an optional last stage: ``rollout=True``
(``edgekit pipeline run --rollout``, or ``rollout: true`` in the parameters file) runs
it after the main job with the same parameters (``model_package``, ``canary``, ``soak``,
the gates...); a gate that rolls the candidate back fails the run, and the run's report
shows the rollout's gates and devices (``rollout.json`` in the run folder).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import papermill
import yaml
from nbconvert import HTMLExporter
from papermill.exceptions import PapermillExecutionError

from edgekit.errors import ConfigurationError, PipelineError
from edgekit.kernels import papermill_options
from edgekit.progress import progress
from edgekit.reports import render_pipeline_report
from edgekit.resources import notebooks_dir
from edgekit.settings import BACKENDS
from edgekit.workflow.params import (
    NotebookParameter,
    check_parameters,
    declared_parameters,
    overrides,
)

#: The main job, in order. Each notebook runs alone too: it finds what exists
#: and creates what is missing.
STAGES: tuple[str, ...] = (
    "01_provision_device",
    "02_compile_and_package",
    "03_deploy_components",
    "04_visualize_results",
)
#: The optional stage: a staged rollout with gates (edgekit.rollout), after the main job.
ROLLOUT_STAGE = "05_rollout"
#: Parameters of the run itself (no notebook declares them): name -> (default, help).
PIPELINE_PARAMETERS: dict[str, tuple[str, str]] = {
    "rollout": ("false  (pipeline)", "also run 05_rollout, a staged rollout with gates, last"),
}


@dataclass
class StageResult:
    name: str
    executed: Path
    html: Path | None
    seconds: float
    ok: bool
    error: str | None = None


@dataclass
class PipelineRun:
    out_dir: Path
    parameters: dict[str, Any]
    stages: list[StageResult] = field(default_factory=list)

    @property
    def report(self) -> Path:
        return self.out_dir / "report.html"

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.stages)


def default_notebooks_dir() -> Path:
    """``$EDGEKIT_NOTEBOOKS``, else the notebooks installed with edgekit (the repo's notebooks/)."""
    env = os.environ.get("EDGEKIT_NOTEBOOKS")
    if env:
        return Path(env)
    return notebooks_dir()


def load_parameters(path: str | Path | None) -> dict[str, Any]:
    """Read a YAML (or JSON) parameters file into a dict."""
    if path is None:
        return {}
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError as exc:
        raise ConfigurationError(f"{p}: parameters file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{p}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigurationError(f"{p}: must hold a mapping of parameter names to values")
    return data


def pipeline_parameters(
    notebooks: str | Path | None = None, stages: Sequence[str] = STAGES
) -> dict[str, list[NotebookParameter]]:
    """What a parameters file may set: the parameters cells of ``stages`` and the rollout stage.

    Name -> its declaration in each notebook that uses it (see :data:`PIPELINE_PARAMETERS`
    for the run's own). The rollout stage counts when its notebook is there, so one file
    serves runs with and without ``--rollout``.
    """
    nb_dir = Path(notebooks) if notebooks else default_notebooks_dir()
    names = list(dict.fromkeys([*stages, ROLLOUT_STAGE]))
    paths = [nb_dir / f"{name}.ipynb" for name in names]
    return declared_parameters(p for p in paths if p.is_file())


def with_rollout(
    stages: Sequence[str], parameters: Mapping[str, Any] | None, rollout: bool | None
) -> tuple[str, ...]:
    """``stages``, with the rollout stage appended when asked (argument, else parameters)."""
    wanted = rollout if rollout is not None else (parameters or {}).get("rollout", False)
    if not isinstance(wanted, bool):
        raise ConfigurationError(f"parameter rollout={wanted!r} must be true or false")
    names = tuple(stages)
    if wanted and ROLLOUT_STAGE not in names:
        names += (ROLLOUT_STAGE,)
    return names


def new_run_dir(runs_root: Path) -> Path:
    """``runs_root/<UTC timestamp>`` (unique), with ``runs_root/latest`` pointing at it."""
    runs_root.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = runs_root / stamp
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = runs_root / f"{stamp}-{n}"
    run_dir.mkdir()
    latest = runs_root / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(run_dir.name)
    return run_dir


def run_pipeline(
    *,
    out_dir: str | Path | None = None,
    runs_root: str | Path = "runs",
    backend: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    notebooks_dir: str | Path | None = None,
    stages: Sequence[str] = STAGES,
    kernel_name: str | None = None,
    log_output: bool = False,
    rollout: bool | None = None,
) -> PipelineRun:
    """Execute ``stages`` in order; raise PipelineError naming the notebook and cell on failure.

    ``rollout``: also run the staged rollout (:data:`ROLLOUT_STAGE`) last; None: when the
    parameters say ``rollout: true``.

    ``parameters`` may set only what the notebooks' parameters cells declare (and
    ``rollout``): an unknown name raises ConfigurationError listing the valid ones.
    ``backend`` and ``out_dir`` come from the arguments or from ``parameters``
    (``backend``, ``output_dir``), never from both with different values; the backend is
    ``local`` when neither says.
    """
    given = dict(parameters or {})
    nb_dir = Path(notebooks_dir) if notebooks_dir else default_notebooks_dir()
    declared = pipeline_parameters(nb_dir, stages)
    check_parameters(given, [*declared, *PIPELINE_PARAMETERS], "run_pipeline(parameters=...)")
    explicit = {"backend": backend, "output_dir": str(out_dir) if out_dir else None}
    for name, value, argument in overrides(given, explicit):
        raise ConfigurationError(
            f"run_pipeline({'out_dir' if name == 'output_dir' else name}={argument!r}) and "
            f"parameters[{name!r}]={value!r} disagree; set it in one place"
        )
    backend = backend or given.get("backend") or "local"
    if backend not in BACKENDS:
        raise ConfigurationError(
            f"backend={backend!r} is not known; use one of {', '.join(BACKENDS)}"
        )
    stages = with_rollout(stages, parameters, rollout)
    out = out_dir or given.get("output_dir")
    run_dir = Path(out) if out else new_run_dir(Path(runs_root))
    run_dir.mkdir(parents=True, exist_ok=True)
    params = {
        # Figures go next to the report. Widgets: the notebooks keep ``interactive = True``
        # and ask `edgekit.viz.is_interactive`, which says no while EDGEKIT_QUIET=1 (set
        # below for the kernels); so the executed notebooks show the live widget again when
        # someone reopens and runs them in JupyterLab (`make lab`).
        "figures_dir": str((run_dir / "figures").resolve()),
        **given,
        "backend": backend,
        "output_dir": str(run_dir.resolve()),
    }
    run = PipelineRun(out_dir=run_dir, parameters=params)
    (run_dir / "parameters.json").write_text(json.dumps(params, indent=2, default=str))

    env_quiet = os.environ.get("EDGEKIT_QUIET")
    os.environ["EDGEKIT_QUIET"] = "1"  # the kernels inherit it: no bar redraws in saved notebooks
    try:
        for name in progress(stages, desc="pipeline", unit="notebook", disable=False):
            source = nb_dir / f"{name}.ipynb"
            if not source.is_file():
                raise PipelineError(
                    f"{source}: notebook not found; pass --notebooks DIR", notebook=source
                )
            executed = run_dir / source.name
            started = time.monotonic()
            uses = {
                k for k, notebooks in declared.items() if any(u.notebook == name for u in notebooks)
            }
            try:
                papermill.execute_notebook(
                    str(source),
                    str(executed),
                    # only what the notebook declares: papermill warns about the rest
                    parameters={k: v for k, v in params.items() if k in uses},
                    kernel_name=kernel_name,
                    progress_bar=False,
                    log_output=log_output,
                    cwd=str(run_dir),
                    **papermill_options(),  # the kernel over IPC: no plain-TCP warning
                )
            except PapermillExecutionError as exc:
                run.stages.append(
                    StageResult(
                        name,
                        executed,
                        _to_html(executed),
                        time.monotonic() - started,
                        ok=False,
                        error=f"{exc.ename}: {exc.evalue}",
                    )
                )
                _write_index(run)
                raise PipelineError(
                    f"{source.name}: cell [{exc.exec_count or exc.cell_index}] failed with "
                    f"{exc.ename}: {exc.evalue}. The executed notebook is {executed}.",
                    notebook=source,
                    cell=exc.cell_index,
                ) from exc
            run.stages.append(
                StageResult(name, executed, _to_html(executed), time.monotonic() - started, True)
            )
    finally:
        if env_quiet is None:
            os.environ.pop("EDGEKIT_QUIET", None)
        else:
            os.environ["EDGEKIT_QUIET"] = env_quiet
    _write_index(run)
    return run


def _to_html(notebook: Path) -> Path | None:
    if not notebook.is_file():
        return None
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(str(notebook), as_version=4))
    target = notebook.with_suffix(".html")
    target.write_text(body, encoding="utf-8")
    return target


def _write_index(run: PipelineRun) -> None:
    """``report.html``: verdict, model, device proofs, gates, notebooks, figures."""
    render_pipeline_report(run.out_dir, stages=run.stages, parameters=run.parameters)
