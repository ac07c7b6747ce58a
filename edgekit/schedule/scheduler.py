"""The local scheduler: starts each schedule's `edgekit pipeline run` when it is due.

`Scheduler.tick` is one look at the clock: under the schedules' lock it records the runs
that ended (exit code, the failing notebook and the error line from the run's log),
applies the catch-up policy (`edgekit.schedule.policy`) and starts the runs that are due,
each as a subprocess (``python -m edgekit pipeline run --out <runs_root>/<time>-<name>``
with the schedule's ``--backend``, ``--params`` and ``--notebooks``) in the folder the
schedule was made in, with ``EDGEKIT_LOCAL_HOME`` set to the scheduler's home, its output
in ``<home>/schedules/logs/<name>/<time>.log``. The clock and the launcher are injected,
so tests step time without sleeping.

`serve` is the process `edgekit local up` starts (``python -m edgekit.schedule``): it
ticks when the next fire time comes, when a run ends and when asked (``POST /wake`` on
its loopback port, which `edgekit pipeline schedule` does); ``GET /`` answers its state
(`edgekit local status` asks it). On SIGTERM it stops the runs in progress and records
them as failed ("interrupted").
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.files import log_tail, write_text_atomic
from edgekit.local.process import process_start_ticks
from edgekit.schedule import store
from edgekit.schedule.cron import parse_expression
from edgekit.schedule.policy import decide
from edgekit.schedule.store import RunRecord, Schedule

Clock = Callable[[], dt.datetime]
Launcher = Callable[[list[str], Path, Path, dict[str, str]], subprocess.Popen[bytes]]
#: Seconds a run gets to stop after SIGTERM when the scheduler stops, before SIGKILL.
STOP_GRACE = 5.0
#: The longest the process sleeps between looks (a clock that jumps is seen this late).
MAX_SLEEP = 60.0
_NOTEBOOK = re.compile(r"([\w.-]+\.ipynb): cell \[")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def run_argv(schedule: Schedule, out_dir: Path) -> list[str]:
    """The command a run of ``schedule`` executes."""
    base = schedule.command or [sys.executable, "-m", "edgekit", "pipeline", "run"]
    argv = [*base, "--backend", schedule.backend, "--out", str(out_dir)]
    if schedule.params:
        argv += ["--params", schedule.params]
    if schedule.notebooks:
        argv += ["--notebooks", schedule.notebooks]
    return argv


def launch(argv: list[str], cwd: Path, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a run: output to ``log``, in the scheduler's process group (it ends with it)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as fh:
        fh.write(f"--- {utc_now().isoformat()} start {argv}\n".encode())
        fh.flush()
        return subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            close_fds=True,
        )


def failure_of(log: Path) -> tuple[str | None, str | None]:
    """(failing notebook, error line) from a run's log: the line ``edgekit ...: error: ...``
    the command prints, else the log's last line."""
    tail = log_tail(log, 200)
    lines = [line for line in tail.splitlines() if line.strip()]
    errors = [line for line in lines if ": error: " in line or line.startswith("Traceback")]
    line = errors[-1] if errors else (lines[-1] if lines else None)
    if line is not None and line.startswith("Traceback") and lines:
        line = lines[-1]  # the exception itself
    match = _NOTEBOOK.search(line or "")
    return (match.group(1) if match else None), line


class Scheduler:
    """The schedules of one home, and the runs this process started."""

    def __init__(
        self,
        home: str | os.PathLike[str],
        *,
        clock: Clock = utc_now,
        launcher: Launcher = launch,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        self.home = Path(home)
        self.clock = clock
        self.launcher = launcher
        self.on_exit = on_exit
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def running(self) -> list[str]:
        return sorted(self._procs)

    def tick(self) -> dt.datetime | None:
        """Record ended runs, start the due ones; returns the next fire time (None: none)."""
        now = self.clock()
        upcoming: list[dt.datetime] = []
        with store.locked(self.home) as schedules:
            for name in sorted(set(self._procs) - set(schedules.schedules)):
                # unscheduled while it ran: it finishes, unrecorded
                if self._procs[name].poll() is not None:
                    del self._procs[name]
            for schedule in schedules.schedules.values():
                self._finish(schedule, now)
                try:
                    expression = parse_expression(schedule.expression, origin=schedule.name)
                except EdgekitError as exc:
                    print(f"schedule {schedule.name}: {exc}", file=sys.stderr, flush=True)
                    continue
                decision = decide(
                    expression,
                    checked_through=store.from_text(schedule.checked_through) or now,
                    anchor=store.from_text(schedule.created_at) or now,
                    now=now,
                    running=schedule.running is not None,
                )
                schedule.checked_through = (
                    store.to_text(decision.checked_through) or now.isoformat()
                )
                if decision.run and decision.slot is not None:
                    self._start(schedule, decision.slot, decision.missed, now)
                upcoming.append(decision.next_fire)
        return min(upcoming) if upcoming else None

    def _start(self, schedule: Schedule, slot: dt.datetime, missed: int, now: dt.datetime) -> None:
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        out_dir = Path(schedule.runs_root) / f"{stamp}-{schedule.name}"
        log = store.schedules_dir(self.home) / "logs" / schedule.name / f"{stamp}.log"
        record = RunRecord(
            slot=store.to_text(slot) or "",
            started_at=store.to_text(now) or "",
            out_dir=str(out_dir),
            log=str(log),
            missed=missed,
        )
        schedule.runs += 1
        schedule.skipped += missed
        argv = run_argv(schedule, out_dir)
        try:
            proc = self.launcher(
                argv, Path(schedule.workdir), log, {"EDGEKIT_LOCAL_HOME": str(self.home)}
            )
        except OSError as exc:
            record.status, record.ended_at = "failed", record.started_at
            record.error = f"cannot start {argv[0]} in {schedule.workdir}: {exc}"
            schedule.last_run = record
            return
        record.pid, record.start_ticks = proc.pid, process_start_ticks(proc.pid)
        schedule.running = record
        self._procs[schedule.name] = proc
        if self.on_exit is not None:
            threading.Thread(target=self._wait, args=(proc,), daemon=True).start()

    def _wait(self, proc: subprocess.Popen[bytes]) -> None:
        proc.wait()
        if self.on_exit is not None:
            self.on_exit()

    def _finish(self, schedule: Schedule, now: dt.datetime, *, interrupted: bool = False) -> None:
        record = schedule.running
        if record is None:
            return
        proc = self._procs.get(schedule.name)
        if proc is not None:
            code = proc.poll()
            if code is None:
                return
            del self._procs[schedule.name]
        elif record.pid is not None and process_start_ticks(record.pid) == record.start_ticks:
            return  # started by an earlier scheduler process and still going
        else:
            code, interrupted = None, True
        record.ended_at = store.to_text(now)
        record.exit_code = code
        if code == 0 and not interrupted:
            record.status = "ok"
        else:
            record.status = "failed"
            record.notebook, record.error = failure_of(Path(record.log))
            if interrupted:
                record.error = "interrupted: the scheduler stopped while the run was going" + (
                    f" (last output: {record.error})" if record.error else ""
                )
        schedule.running = None
        schedule.last_run = record

    def shutdown(self, grace: float = STOP_GRACE) -> None:
        """Stop the runs in progress (SIGTERM, then SIGKILL) and record them as interrupted."""
        for proc in self._procs.values():
            proc.terminate()
        for proc in self._procs.values():
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        now = self.clock()
        with store.locked(self.home) as schedules:
            for name in list(self._procs):
                schedule = schedules.schedules.get(name)
                if schedule is not None:
                    self._finish(schedule, now, interrupted=True)
        self._procs.clear()


def _handler(scheduler: Scheduler, wake: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self._send(
                200, {"pid": os.getpid(), "home": str(scheduler.home), "running": scheduler.running}
            )

        def do_POST(self) -> None:  # noqa: N802
            if self.path.rstrip("/") != "/wake":
                self._send(404, {"error": f"no {self.path}; POST /wake"})
                return
            wake.set()
            self._send(202, {"woken": True})

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return  # no line per probe in the log

    return Handler


def serve(home: Path, host: str, port: int, port_file: Path | None) -> None:
    """Run the scheduler process until SIGTERM/SIGINT."""
    wake, stop = threading.Event(), threading.Event()
    scheduler = Scheduler(home, on_exit=wake.set)
    server = ThreadingHTTPServer((host, port), _handler(scheduler, wake))
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def stopping(signum: int, _frame: Any) -> None:
        stop.set()
        wake.set()

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    if port_file is not None:
        write_text_atomic(port_file, str(server.server_address[1]), fsync=False)
    print(f"scheduler for {home} on {host}:{server.server_address[1]}", flush=True)
    try:
        while not stop.is_set():
            try:
                upcoming = scheduler.tick()
            except EdgekitError as exc:  # a broken schedules file: say it, look again later
                print(f"scheduler: {exc}", file=sys.stderr, flush=True)
                upcoming = None
            delay = MAX_SLEEP
            if upcoming is not None:
                delay = min(MAX_SLEEP, max(0.05, (upcoming - utc_now()).total_seconds()))
            wake.wait(delay)
            wake.clear()
    finally:
        scheduler.shutdown()
        server.shutdown()
        server.server_close()


__all__ = ["Scheduler", "failure_of", "launch", "run_argv", "serve", "utc_now"]
