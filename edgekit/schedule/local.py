"""Add, list and remove schedules of the local scheduler (``--backend local``).

A schedule is checked when it is made: the expression (`edgekit.schedule.cron`), the
name, and the parameters file against the notebooks' parameters cells, exactly as
`edgekit pipeline run --params` checks it. Paths are stored absolute; runs go to
``<runs_root>/<UTC time>-<name>/`` and run in the folder the schedule was made in. The
scheduler process of the home (`edgekit local up`) is woken so a new schedule counts at
once; without it nothing runs, and `schedule_local` says so.
"""

from __future__ import annotations

import datetime as dt
import http.client
import os
from pathlib import Path

from edgekit.errors import ScheduleError
from edgekit.local import process
from edgekit.local.home import HomeLayout
from edgekit.pipeline import PIPELINE_PARAMETERS, load_parameters, pipeline_parameters
from edgekit.schedule import store
from edgekit.schedule.cron import parse_expression
from edgekit.schedule.policy import decide
from edgekit.schedule.scheduler import utc_now
from edgekit.schedule.store import Schedule, ScheduleRow
from edgekit.settings import Settings
from edgekit.workflow.params import check_parameters

#: The scheduler's process name in the local home (``run/scheduler.pid``, ``.port``).
SCHEDULER = "scheduler"


def scheduler_running(settings: Settings) -> bool:
    return process.is_running(settings.home, SCHEDULER)


def wake(settings: Settings) -> bool:
    """Ask the home's scheduler to look at its schedules now; False if it is not running."""
    layout = HomeLayout.of(settings.home)
    if not scheduler_running(settings):
        return False
    try:
        port = int(layout.port_file(SCHEDULER).read_text().strip())
    except (FileNotFoundError, ValueError):
        return False
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", "/wake", headers={"Content-Length": "0"})
        conn.getresponse().read()
    except OSError:
        return False
    finally:
        conn.close()
    return True


def _default_name(taken: set[str]) -> str:
    name, n = "pipeline", 1
    while name in taken:
        n += 1
        name = f"pipeline-{n}"
    return name


def check_params_file(params: str | os.PathLike[str] | None, notebooks: str | None) -> None:
    """The parameters file names only what the notebooks' parameters cells declare."""
    if params is None:
        return
    given = load_parameters(params)
    declared = pipeline_parameters(notebooks)
    check_parameters(given, [*declared, *PIPELINE_PARAMETERS], str(params))


def schedule_local(
    settings: Settings,
    expression: str,
    *,
    name: str | None = None,
    params: str | os.PathLike[str] | None = None,
    notebooks: str | os.PathLike[str] | None = None,
    runs_root: str | os.PathLike[str] = "runs",
    workdir: str | os.PathLike[str] | None = None,
    command: list[str] | None = None,
    now: dt.datetime | None = None,
) -> Schedule:
    """Add a schedule to the home of ``settings``; ScheduleError naming what is wrong.

    ``command`` replaces ``python -m edgekit pipeline run`` (the scheduler appends the same
    ``--backend``, ``--out``, ``--params``, ``--notebooks`` options): a wrapper script, or
    a quick stand-in in tests.
    """
    parse_expression(expression)
    params_path = str(Path(params).absolute()) if params is not None else None
    notebooks_path = str(Path(notebooks).absolute()) if notebooks is not None else None
    check_params_file(params_path, notebooks_path)
    created = store.to_text(now or utc_now())
    base = Path(workdir) if workdir is not None else Path.cwd()
    with store.locked(settings.home) as schedules:
        chosen = store.check_name(name) if name else _default_name(set(schedules.schedules))
        if chosen in schedules.schedules:
            raise ScheduleError(
                f"a local schedule named {chosen!r} exists ({schedules.path}); pick another "
                f"--name or `edgekit pipeline unschedule {chosen}` first"
            )
        schedule = Schedule(
            name=chosen,
            expression=" ".join(expression.split()),
            backend="local",
            runs_root=str((base / runs_root).absolute()),
            workdir=str(base.absolute()),
            created_at=created or "",
            checked_through=created or "",
            params=params_path,
            notebooks=notebooks_path,
            command=command,
        )
        schedules.schedules[chosen] = schedule
    wake(settings)
    return schedule


def unschedule_local(settings: Settings, name: str) -> Schedule:
    """Remove a schedule (a run in progress finishes, unrecorded); returns what it was."""
    with store.locked(settings.home) as schedules:
        schedule = schedules.get(name)
        del schedules.schedules[name]
    wake(settings)
    return schedule


def local_rows(settings: Settings, *, now: dt.datetime | None = None) -> list[ScheduleRow]:
    """The local schedules with their next fire time and their last (or current) run."""
    moment = now or utc_now()
    rows = []
    for schedule in store.load(settings.home).schedules.values():
        expression = parse_expression(schedule.expression, origin=schedule.name)
        decision = decide(
            expression,
            checked_through=store.from_text(schedule.checked_through) or moment,
            anchor=store.from_text(schedule.created_at) or moment,
            now=moment,
            running=schedule.running is not None,
        )
        # due now (the scheduler is about to start it) or the next fire time
        upcoming = decision.slot if decision.run else decision.next_fire
        run = schedule.running or schedule.last_run
        rows.append(
            ScheduleRow(
                name=schedule.name,
                expression=schedule.expression,
                backend="local",
                next_run=store.to_text(upcoming),
                last_run=run.started_at if run else None,
                status=run.status if run else "never",
                output=run.out_dir if run else None,
                notebook=run.notebook if run else None,
                error=run.error if run else None,
                exit_code=run.exit_code if run else None,
            )
        )
    return rows


__all__ = [
    "SCHEDULER",
    "ScheduleRow",
    "check_params_file",
    "local_rows",
    "schedule_local",
    "scheduler_running",
    "unschedule_local",
    "wake",
]
