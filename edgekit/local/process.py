"""Detached background processes recorded in the local home.

The local backend's servers and device runtimes must outlive the notebook
kernel that started them, so they run in their own session with their output
in ``home/logs/<name>.log`` and their identity in ``home/run/<name>.pid``. A pid
file records the process start time (from ``/proc``), so a pid the kernel
reused for some other program is never mistaken for ours.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import LocalBackendError
from edgekit.files import log_tail, write_text_atomic
from edgekit.local.home import HomeLayout

Ready = Callable[[], bool]

# Popen objects of the processes this interpreter started, kept so they are reaped
# (no zombies, no ResourceWarning) when this same interpreter stops them.
_children: dict[int, subprocess.Popen[bytes]] = {}

LOG_TAIL_LINES = 25


@dataclass(frozen=True)
class ProcessRecord:
    """What a pid file says about a process we started."""

    name: str
    pid: int
    start_ticks: int | None
    argv: list[str]
    started_at: float

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "pid": self.pid,
                "start_ticks": self.start_ticks,
                "argv": self.argv,
                "started_at": self.started_at,
            }
        )


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) from /proc, or None if no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses; it ends at the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _has_proc() -> bool:
    return Path("/proc/self/stat").exists()


def _reap(pid: int) -> None:
    """Collect the exit status of a child of this interpreter so it does not linger as a zombie."""
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            _children.pop(pid, None)
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def process_start_ticks(pid: int) -> int | None:
    stat = _proc_stat(pid)
    return None if stat is None else stat[1]


def is_alive(record: ProcessRecord) -> bool:
    """True if the recorded process still exists, is not a zombie, and is the one we started."""
    _reap(record.pid)
    if _has_proc():
        stat = _proc_stat(record.pid)
        if stat is None or stat[0] in ("Z", "X"):
            return False
        if record.start_ticks is not None:
            return stat[1] == record.start_ticks
        try:
            cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return [c.decode(errors="replace") for c in cmdline if c] == record.argv
    try:  # no /proc (macOS): existence is the best we can check
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process: not ours
    return True


def read_record(home: str | os.PathLike[str] | None, name: str) -> ProcessRecord | None:
    """The pid file of ``name``, alive or not; None if there is none or it is unreadable."""
    path = HomeLayout.of(home).pid_file(name)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
        if isinstance(data, int):  # a bare pid written by hand: no identity to compare
            return ProcessRecord(name, data, None, [], 0.0)
        return ProcessRecord(
            name=name,
            pid=int(data["pid"]),
            start_ticks=None if data.get("start_ticks") is None else int(data["start_ticks"]),
            argv=[str(a) for a in data.get("argv", [])],
            started_at=float(data.get("started_at", 0.0)),
        )
    except (ValueError, KeyError, TypeError):
        return None  # a torn or foreign file counts as no process


def is_running(home: str | os.PathLike[str] | None, name: str) -> bool:
    record = read_record(home, name)
    return record is not None and is_alive(record)


def pid_of(home: str | os.PathLike[str] | None, name: str) -> int | None:
    """The pid of ``name`` if it is running, else None."""
    record = read_record(home, name)
    return record.pid if record is not None and is_alive(record) else None


def recorded_names(home: str | os.PathLike[str] | None) -> list[str]:
    """Every name with a pid file in ``home/run``, alive or not."""
    run_dir = HomeLayout.of(home).run_dir
    if not run_dir.is_dir():
        return []
    return sorted(p.stem for p in run_dir.glob("*.pid"))


def running(home: str | os.PathLike[str] | None) -> dict[str, int]:
    """``{name: pid}`` of every recorded process that is still alive."""
    result: dict[str, int] = {}
    for name in recorded_names(home):
        pid = pid_of(home, name)
        if pid is not None:
            result[name] = pid
    return result


def _failure(name: str, what: str, log: Path, offset: int) -> LocalBackendError:
    tail = log_tail(log, LOG_TAIL_LINES, offset=offset)
    detail = f"\n--- last lines of {log} ---\n{tail}" if tail else f" (log {log} is empty)"
    return LocalBackendError(f"process {name!r} {what}{detail}")


def start_process(
    home: str | os.PathLike[str] | None,
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    ready: Ready | None = None,
    timeout: float = 30.0,
    cwd: str | os.PathLike[str] | None = None,
) -> int:
    """Start ``argv`` detached (own session), record it as ``name`` and wait until ``ready()``.

    ``env`` is added to (and overrides) this process's environment. ``ready`` is
    polled until it returns True; an OSError from it (connection refused while
    the server binds) counts as "not yet". If the process exits or is not ready
    within ``timeout`` seconds, it is stopped and LocalBackendError carries the
    tail of its log. Returns the pid.
    """
    layout = HomeLayout.of(home).ensure()
    current = read_record(home, name)
    if current is not None and is_alive(current):
        raise LocalBackendError(
            f"process {name!r} is already running (pid {current.pid}, pid file "
            f"{layout.pid_file(name)}); stop it first or use `edgekit local down`"
        )
    log = layout.log_file(name)
    argv = [str(a) for a in argv]
    child_env = dict(os.environ)
    child_env["PYTHONUNBUFFERED"] = "1"
    if env:
        child_env.update(env)
    with log.open("ab") as fh:
        fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} start {argv}\n".encode())
        fh.flush()
        offset = fh.tell()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=child_env,
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise LocalBackendError(f"cannot start process {name!r} ({argv[0]}): {exc}") from exc
    _children[proc.pid] = proc
    record = ProcessRecord(name, proc.pid, process_start_ticks(proc.pid), argv, time.time())
    write_text_atomic(layout.pid_file(name), record.to_json(), fsync=False)
    if ready is None:
        return proc.pid

    deadline = time.monotonic() + timeout
    while True:
        code = proc.poll()
        if code is not None:
            _children.pop(proc.pid, None)
            layout.pid_file(name).unlink(missing_ok=True)
            raise _failure(name, f"exited with code {code} while starting", log, offset)
        try:
            if ready():
                return proc.pid
        except OSError:
            pass
        except Exception:
            stop_process(home, name)
            raise
        if time.monotonic() >= deadline:
            stop_process(home, name)
            raise _failure(name, f"was not ready within {timeout:.0f} s", log, offset)
        time.sleep(0.05)


def _signal(pid: int, sig: int, *, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _wait_dead(record: ProcessRecord, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while is_alive(record):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def stop_process(home: str | os.PathLike[str] | None, name: str, timeout: float = 10.0) -> bool:
    """Stop ``name``: SIGTERM to it, SIGKILL to its whole session after ``timeout`` seconds.

    The leader gets SIGTERM alone first so a device runtime can stop its own
    components; whatever is left in its process group afterwards is killed.
    Removes the pid file. Returns True if a live process was stopped, False if
    there was none (or only a stale pid file).
    """
    layout = HomeLayout.of(home)
    record = read_record(home, name)
    if record is None:
        layout.pid_file(name).unlink(missing_ok=True)
        return False
    if not is_alive(record):
        layout.pid_file(name).unlink(missing_ok=True)
        return False
    own_group = _owns_group(record.pid)
    _signal(record.pid, signal.SIGTERM, group=False)
    if not _wait_dead(record, timeout):
        _signal(record.pid, signal.SIGKILL, group=own_group)
        if not _wait_dead(record, 5.0):
            raise LocalBackendError(
                f"process {name!r} (pid {record.pid}) survived SIGKILL; check it with "
                f"`ps -p {record.pid}` (pid file {layout.pid_file(name)})"
            )
    if own_group:
        _signal(record.pid, signal.SIGKILL, group=True)  # leftovers of its session
    child = _children.pop(record.pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=1.0)
    layout.pid_file(name).unlink(missing_ok=True)
    return True


def _owns_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid and pid != os.getpgid(0)
    except (ProcessLookupError, PermissionError):
        return False


def python_argv(module: str, *args: str) -> list[str]:
    """``[this python, -m, module, *args]``: children use the same interpreter and venv."""
    return [sys.executable, "-m", module, *args]
