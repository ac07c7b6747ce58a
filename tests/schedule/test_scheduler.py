"""The local scheduler's look at the clock (`Scheduler.tick`), with an injected clock.

Runs are real subprocesses of a small stand-in for `edgekit pipeline run` (the schedule's
``command``): it writes into ``--out`` and ends as told, so no test sleeps for a fire time.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgekit.schedule import store
from edgekit.schedule.local import local_rows, schedule_local, unschedule_local
from edgekit.schedule.scheduler import Scheduler, failure_of, launch, run_argv
from edgekit.settings import Settings

T0 = dt.datetime(2026, 12, 6, 10, 0, 30, tzinfo=dt.UTC)

STAND_IN = textwrap.dedent(
    """
    import os, pathlib, sys, time
    mode, args = sys.argv[1], sys.argv[2:]
    out = pathlib.Path(args[args.index("--out") + 1])
    out.mkdir(parents=True)
    (out / "args.txt").write_text(" ".join(args) + "\\n" + os.environ["EDGEKIT_LOCAL_HOME"])
    if mode == "wait":
        while not (out.parent / "release").exists():
            time.sleep(0.02)
    if mode == "fail":
        print("01_provision_device      FAILED    0.1 s")
        print("edgekit pipeline: error: 02_compile_and_package.ipynb: cell [4] failed with "
              "ValueError: boom. The executed notebook is x.ipynb.", file=sys.stderr)
        sys.exit(1)
    print("report: report.html")
    """
)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(local_home=tmp_path / "home")


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "stand_in.py"
    path.write_text(STAND_IN)
    return path


class Recorder:
    """The real launcher, keeping each process so the test can wait for it."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def __call__(self, argv, cwd, log, env):  # type: ignore[no-untyped-def]
        proc = launch(argv, cwd, log, env)
        self.procs.append(proc)
        return proc

    def wait(self) -> None:
        for proc in self.procs:
            proc.wait(30)

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture(autouse=True)
def _no_run_left(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    made: list[Recorder] = []
    original = Recorder.__init__

    def init(self: Recorder) -> None:
        original(self)
        made.append(self)

    monkeypatch.setattr(Recorder, "__init__", init)
    yield
    for recorder in made:
        recorder.kill()


def _add(settings: Settings, tmp_path: Path, script: Path, mode: str, cron: str = "* * * * *"):
    return schedule_local(
        settings,
        cron,
        name=f"job-{mode}",
        runs_root=tmp_path / "runs",
        workdir=tmp_path,
        command=[sys.executable, str(script), mode],
        now=T0,
    )


def test_a_due_run_is_started_and_its_success_recorded(
    settings: Settings, tmp_path: Path, script: Path
) -> None:
    _add(settings, tmp_path, script, "ok")
    clock, launcher = Clock(T0), Recorder()
    scheduler = Scheduler(settings.home, clock=clock, launcher=launcher)
    assert scheduler.tick() == dt.datetime(2026, 12, 6, 10, 1, tzinfo=dt.UTC)
    assert launcher.procs == []  # not due yet
    clock.advance(seconds=40)  # 10:01:10
    scheduler.tick()
    assert len(launcher.procs) == 1
    running = store.load(settings.home).get("job-ok").running
    assert running is not None and running.status == "running"
    assert [r.status for r in local_rows(settings, now=clock.now)] == ["running"]
    launcher.wait()
    clock.advance(seconds=5)
    scheduler.tick()
    schedule = store.load(settings.home).get("job-ok")
    assert schedule.running is None and schedule.runs == 1
    last = schedule.last_run
    assert last is not None
    assert (last.status, last.exit_code, last.slot) == ("ok", 0, "2026-12-06T10:01:00+00:00")
    out = Path(last.out_dir)
    assert out.parent == tmp_path / "runs" and out.name == "20261206T100110Z-job-ok"
    args, home = (out / "args.txt").read_text().splitlines()
    assert args == f"--backend local --out {out}"
    assert home == str(settings.home)  # the run uses the scheduler's home
    row = local_rows(settings, now=clock.now)[0]
    assert (row.status, row.output, row.next_run) == ("ok", str(out), "2026-12-06T10:02:00+00:00")


def test_a_failed_run_names_the_notebook_and_the_error(
    settings: Settings, tmp_path: Path, script: Path
) -> None:
    _add(settings, tmp_path, script, "fail")
    clock, launcher = Clock(T0 + dt.timedelta(minutes=1)), Recorder()
    scheduler = Scheduler(settings.home, clock=clock, launcher=launcher)
    scheduler.tick()
    launcher.wait()
    scheduler.tick()
    last = store.load(settings.home).get("job-fail").last_run
    assert last is not None
    assert (last.status, last.exit_code) == ("failed", 1)
    assert last.notebook == "02_compile_and_package.ipynb"
    assert last.error is not None and "ValueError: boom" in last.error
    assert Path(last.log).is_file()


def test_never_two_runs_at_once_and_one_catch_up_after(
    settings: Settings, tmp_path: Path, script: Path
) -> None:
    _add(settings, tmp_path, script, "wait")
    clock, launcher = Clock(T0 + dt.timedelta(minutes=1)), Recorder()
    scheduler = Scheduler(settings.home, clock=clock, launcher=launcher)
    scheduler.tick()
    assert len(launcher.procs) == 1
    for _ in range(3):  # three fire times pass while it runs
        clock.advance(minutes=1)
        scheduler.tick()
    assert len(launcher.procs) == 1
    (tmp_path / "runs").mkdir(exist_ok=True)
    (tmp_path / "runs" / "release").write_text("")
    launcher.wait()
    scheduler.tick()  # records the end and starts ONE run for the three fire times
    schedule = store.load(settings.home).get("job-wait")
    assert len(launcher.procs) == 2
    assert schedule.last_run is not None and schedule.last_run.status == "ok"
    assert schedule.running is not None and schedule.running.missed == 2
    assert (schedule.runs, schedule.skipped) == (2, 2)
    launcher.wait()


def test_catch_up_after_downtime_is_one_run(
    settings: Settings, tmp_path: Path, script: Path
) -> None:
    _add(settings, tmp_path, script, "ok", cron="0 * * * *")
    clock, launcher = Clock(T0 + dt.timedelta(hours=5)), Recorder()  # the scheduler was down
    Scheduler(settings.home, clock=clock, launcher=launcher).tick()
    launcher.wait()
    schedule = store.load(settings.home).get("job-ok")
    assert len(launcher.procs) == 1
    assert schedule.running is not None
    assert (schedule.running.slot, schedule.running.missed) == ("2026-12-06T15:00:00+00:00", 4)


def test_a_run_left_by_a_stopped_scheduler_is_recorded_as_interrupted(
    settings: Settings, tmp_path: Path, script: Path
) -> None:
    _add(settings, tmp_path, script, "wait")
    clock, launcher = Clock(T0 + dt.timedelta(minutes=1)), Recorder()
    Scheduler(settings.home, clock=clock, launcher=launcher).tick()
    launcher.procs[0].kill()  # the scheduler process and its run died together
    launcher.wait()
    clock.advance(seconds=10)
    Scheduler(settings.home, clock=clock, launcher=launcher).tick()  # the next process
    last = store.load(settings.home).get("job-wait").last_run
    assert last is not None and last.status == "failed"
    assert last.error is not None and last.error.startswith("interrupted")


def test_shutdown_stops_the_runs_and_records_them(
    settings: Settings, tmp_path: Path, script: Path
) -> None:
    _add(settings, tmp_path, script, "wait")
    clock, launcher = Clock(T0 + dt.timedelta(minutes=1)), Recorder()
    scheduler = Scheduler(settings.home, clock=clock, launcher=launcher)
    scheduler.tick()
    scheduler.shutdown(grace=5)
    assert launcher.procs[0].poll() is not None
    last = store.load(settings.home).get("job-wait").last_run
    assert last is not None and last.status == "failed" and "interrupted" in (last.error or "")


def test_unscheduled_while_running_finishes_unrecorded(
    settings: Settings, tmp_path: Path, script: Path
) -> None:
    _add(settings, tmp_path, script, "ok")
    clock, launcher = Clock(T0 + dt.timedelta(minutes=1)), Recorder()
    scheduler = Scheduler(settings.home, clock=clock, launcher=launcher)
    scheduler.tick()
    unschedule_local(settings, "job-ok")
    launcher.wait()
    scheduler.tick()
    assert scheduler.running == [] and store.load(settings.home).schedules == {}


def test_run_argv_passes_the_schedule_options(tmp_path: Path) -> None:
    schedule = store.Schedule(
        name="n",
        expression="* * * * *",
        backend="local",
        runs_root=str(tmp_path),
        workdir=str(tmp_path),
        created_at=T0.isoformat(),
        checked_through=T0.isoformat(),
        params="/p.yaml",
        notebooks="/nb",
    )
    argv = run_argv(schedule, tmp_path / "out")
    assert argv[1:5] == ["-m", "edgekit", "pipeline", "run"]
    assert argv[5:] == [
        "--backend", "local", "--out", str(tmp_path / "out"), "--params", "/p.yaml",
        "--notebooks", "/nb",
    ]  # fmt: skip


def test_failure_of_a_log_without_an_error_line(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text("Traceback (most recent call last):\n  File x\nKeyError: 'k'\n")
    assert failure_of(log) == (None, "KeyError: 'k'")
    assert failure_of(tmp_path / "missing.log") == (None, None)
