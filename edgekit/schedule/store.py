"""The local schedules, persisted in ``<local home>/schedules/schedules.json``.

One JSON document holds every schedule with its state: when the scheduler last looked
(``checked_through``: every fire time up to it is handled), the run in progress and the
last run's outcome. The ``edgekit pipeline schedule`` commands and the scheduler process
both change it, each under an exclusive ``flock`` on ``schedules/.lock`` and with an
atomic rewrite (`edgekit.files.write_json_atomic`), so neither loses the other's change
and a crash leaves the previous version whole.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import ScheduleError
from edgekit.files import held_lock, write_json_atomic
from edgekit.local.home import HomeLayout

FORMAT = 1
#: Names double as AWS resource names (EventBridge Scheduler schedule, SageMaker pipeline):
#: letters, digits and inner hyphens, at most 48 characters.
NAME = re.compile(r"^[A-Za-z0-9](-*[A-Za-z0-9]){0,47}$")


def schedules_dir(home: str | os.PathLike[str] | None) -> Path:
    return HomeLayout.of(home).root / "schedules"


def schedules_file(home: str | os.PathLike[str] | None) -> Path:
    return schedules_dir(home) / "schedules.json"


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise ScheduleError(
            f"schedule name {name!r} is not valid: use letters, digits and hyphens (not first "
            "or last), at most 48 characters (it names the AWS schedule and pipeline too)"
        )
    return name


def to_text(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat()


def from_text(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value)


@dataclass
class RunRecord:
    """One run a schedule started: where it writes, and how it ended."""

    slot: str  # the fire time it runs for (ISO, UTC)
    started_at: str
    out_dir: str
    log: str
    pid: int | None = None
    start_ticks: int | None = None
    status: str = "running"  # running, ok, failed
    ended_at: str | None = None
    exit_code: int | None = None
    notebook: str | None = None  # the failing notebook, when the run names it
    error: str | None = None  # the error line
    missed: int = 0  # fire times it stands for besides its own (catch-up)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Schedule:
    """A local schedule: what to run, when, and what happened so far."""

    name: str
    expression: str  # as typed (5-field cron, cron(...) or rate(...))
    backend: str  # the backend the runs use
    runs_root: str  # absolute; each run writes <runs_root>/<UTC time>-<name>/
    workdir: str  # the run's working directory (where the schedule was made)
    created_at: str
    checked_through: str  # fire times up to here are handled
    params: str | None = None  # absolute path of the parameters file
    notebooks: str | None = None  # absolute path of a notebooks folder
    command: list[str] | None = None  # instead of `python -m edgekit pipeline run`
    running: RunRecord | None = None
    last_run: RunRecord | None = None
    runs: int = 0
    skipped: int = 0  # fire times folded into a catch-up run

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schedule:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        for key in ("running", "last_run"):
            if values.get(key) is not None:
                values[key] = RunRecord.from_dict(values[key])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Store:
    """The schedules of one home, read under the lock by `locked`."""

    path: Path
    schedules: dict[str, Schedule] = field(default_factory=dict)

    def get(self, name: str) -> Schedule:
        try:
            return self.schedules[name]
        except KeyError:
            known = ", ".join(sorted(self.schedules)) or "none"
            raise ScheduleError(
                f"no local schedule named {name!r} in {self.path} (schedules: {known}); "
                "`edgekit pipeline schedules` lists them"
            ) from None


@dataclass(frozen=True)
class ScheduleRow:
    """One line of `edgekit pipeline schedules`, for either backend."""

    name: str
    expression: str
    backend: str
    next_run: str | None
    last_run: str | None
    status: str  # never, running, ok, failed (AWS: the execution's status)
    output: str | None
    notebook: str | None = None
    error: str | None = None
    exit_code: int | None = None


def _read(path: Path) -> dict[str, Schedule]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ScheduleError(
            f"{path} is not readable JSON ({exc}); fix or remove it (its schedules are lost)"
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("schedules"), dict):
        raise ScheduleError(f"{path} is not an edgekit schedules file; fix or remove it")
    try:
        return {name: Schedule.from_dict(item) for name, item in data["schedules"].items()}
    except TypeError as exc:
        raise ScheduleError(f"{path}: a schedule lacks a field ({exc}); fix or remove it") from exc


def load(home: str | os.PathLike[str] | None) -> Store:
    """The schedules as they are now (no lock held: for reading only)."""
    path = schedules_file(home)
    return Store(path, _read(path))


@contextlib.contextmanager
def locked(home: str | os.PathLike[str] | None, *, timeout: float = 30.0) -> Iterator[Store]:
    """Hold the schedules' lock; what the block changes in the store is written back."""
    folder = schedules_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    with held_lock(
        folder / ".lock",
        timeout=timeout,
        poll=0.02,
        timed_out=lambda: ScheduleError(
            f"{folder / '.lock'} is held for more than {timeout:.0f} s by another "
            "edgekit process; retry"
        ),
    ):
        path = schedules_file(home)
        store = Store(path, _read(path))
        before = _document(store)
        yield store
        after = _document(store)
        if after != before:
            write_json_atomic(path, after)


def _document(store: Store) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "schedules": {name: s.to_dict() for name, s in sorted(store.schedules.items())},
    }


__all__ = [
    "NAME",
    "RunRecord",
    "Schedule",
    "ScheduleRow",
    "Store",
    "check_name",
    "from_text",
    "load",
    "locked",
    "schedules_dir",
    "schedules_file",
    "to_text",
]
