"""Processes we start, recorded durably so they can be ended after a crash.

The local backend's servers and device runtimes must outlive the notebook
kernel that started them, so they run in their own session with their output
in ``home/logs/<name>.log`` and their identity in ``home/run/<name>.pid``. A pid
file records the process start time (from ``/proc``), so a pid the kernel
reused for some other program is never mistaken for ours.

A supervisor (the device runtime) records each process group it starts in a
`GroupLedger` file, with the leader's start time, so whoever comes after a
SIGKILL of the supervisor (its next start, or `stop_process` of it) ends those
groups, grandchildren included, whatever they did to their environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import LocalBackendError
from edgekit.files import log_tail, write_json_atomic, write_text_atomic
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
    groups: str | None = None  # its GroupLedger file: groups to end when it is stopped

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "pid": self.pid,
                "start_ticks": self.start_ticks,
                "argv": self.argv,
                "started_at": self.started_at,
                "groups": self.groups,
            }
        )


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` this module uses."""

    pid: int
    state: str  # Z (zombie) and X (dead) are gone for our purposes
    pgid: int
    sid: int
    start_ticks: int  # start time in clock ticks since boot: with the pid, an identity

    @property
    def gone(self) -> bool:
        return self.state in ("Z", "X")


def proc_stat(pid: int | str) -> ProcStat | None:
    """``/proc/<pid>/stat`` of a process, or None if there is no such process (or no /proc)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no such process (ESRCH, ENOENT), or it vanished while read
        return None
    # The command name (field 2) may contain spaces and parentheses; it ends at the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return ProcStat(int(pid), fields[0], int(fields[2]), int(fields[3]), int(fields[19]))


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) from /proc, or None if no such process."""
    stat = proc_stat(pid)
    return None if stat is None else (stat.state, stat.start_ticks)


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
            groups=None if data.get("groups") is None else str(data["groups"]),
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
    groups: str | os.PathLike[str] | None = None,
) -> int:
    """Start ``argv`` detached (own session), record it as ``name`` and wait until ``ready()``.

    ``env`` is added to (and overrides) this process's environment. ``ready`` is
    polled until it returns True; an OSError from it (connection refused while
    the server binds) counts as "not yet". If the process exits or is not ready
    within ``timeout`` seconds, it is stopped and LocalBackendError carries the
    tail of its log. ``groups`` is the `GroupLedger` file in which the process records
    the process groups it starts: `stop_process` ends them too, so nothing it started
    outlives it even when it was killed. Returns the pid.
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
    ledger = None if groups is None else str(Path(groups).absolute())
    record = ProcessRecord(
        name, proc.pid, process_start_ticks(proc.pid), argv, time.time(), groups=ledger
    )
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
    components; whatever is left in its process group afterwards is killed. If it
    had died (SIGKILL, a crash), what it left in its process group is ended
    (SIGTERM, SIGKILL after ``timeout`` s) all the same, and so are the groups in
    its `GroupLedger` (``start_process(groups=...)``). Removes the pid file.
    Returns True if a live process was stopped, False if there was none (or only a
    stale pid file).
    """
    layout = HomeLayout.of(home)
    record = read_record(home, name)
    if record is None:
        layout.pid_file(name).unlink(missing_ok=True)
        return False
    stopped = is_alive(record)
    if stopped:
        _stop_alive(record, layout.pid_file(name), timeout)
    elif record.start_ticks is not None and record.pid != os.getpgid(0):
        # It died (SIGKILL, a crash) without ending what it left in its session.
        end_groups([GroupRecord(record.pid, record.start_ticks, name)], timeout)
    if record.groups:  # the groups it started, alive if it could not stop them itself
        GroupLedger(record.groups).end_all(timeout)
    layout.pid_file(name).unlink(missing_ok=True)
    return stopped


def _stop_alive(record: ProcessRecord, pid_file: Path, timeout: float) -> None:
    own_group = _owns_group(record.pid)
    _signal(record.pid, signal.SIGTERM, group=False)
    if not _wait_dead(record, timeout):
        _signal(record.pid, signal.SIGKILL, group=own_group)
        if not _wait_dead(record, 5.0):
            raise LocalBackendError(
                f"process {record.name!r} (pid {record.pid}) survived SIGKILL; check it with "
                f"`ps -p {record.pid}` (pid file {pid_file})"
            )
    if own_group:
        _signal(record.pid, signal.SIGKILL, group=True)  # leftovers of its session
    child = _children.pop(record.pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=1.0)


def _owns_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid and pid != os.getpgid(0)
    except (ProcessLookupError, PermissionError):
        return False


# --- process groups a supervisor started ------------------------------------------------------


def group_members(pgid: int) -> list[ProcStat]:
    """The live (non-zombie) processes of process group ``pgid``, from /proc ([] without it)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    members: list[ProcStat] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        stat = proc_stat(entry.name)
        if stat is not None and stat.pgid == pgid and not stat.gone:
            members.append(stat)
    return members


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's group: never ours
    return True


@dataclass(frozen=True)
class GroupRecord:
    """A process group as its supervisor started it: its leader and the leader's start time."""

    pgid: int  # the leader's pid: each recorded group is started in a new session
    start_ticks: int | None  # the leader's start time (None without /proc)
    label: str = ""  # what it runs, for logs ("com.example.App run")

    def alive(self) -> bool:
        """True while the group has a live process that is provably ours.

        The kernel never reuses a pid while a process group of that number exists. So if
        the leader's pid now names a process with another start time, our group ended
        before that process started, and a group of that number now is someone else's.
        Members must also have started no earlier than the leader. Without /proc (macOS)
        there are no start times: a group that exists counts as ours.
        """
        if not _group_exists(self.pgid):
            return False
        if not _has_proc():
            return True
        if self.start_ticks is None:
            return False
        leader = proc_stat(self.pgid)
        if leader is not None and leader.start_ticks != self.start_ticks:
            return False
        return any(m.start_ticks >= self.start_ticks for m in group_members(self.pgid))

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the whole group, if it is still ours."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, sig)

    def to_dict(self) -> dict[str, object]:
        return {"pgid": self.pgid, "start_ticks": self.start_ticks, "label": self.label}


def end_groups(records: Sequence[GroupRecord], grace: float) -> list[GroupRecord]:
    """SIGTERM every live group of ``records``, SIGKILL what is left after ``grace`` seconds.

    Returns the groups that were alive. Processes that are not ours (a reused pid) are
    never signalled; see `GroupRecord.alive`.
    """
    live = [r for r in records if r.alive()]
    for record in live:
        record.signal(signal.SIGTERM)
    pending = list(live)
    deadline = time.monotonic() + grace
    killed = False
    while pending:
        pending = [r for r in pending if r.alive()]
        if not pending:
            break
        if time.monotonic() >= deadline:
            if killed:
                names = ", ".join(f"{r.pgid} ({r.label})" for r in pending)
                raise LocalBackendError(
                    f"process groups {names} survived SIGKILL; check them with "
                    f"`ps -o pid,pgid,args -g {pending[0].pgid}`"
                )
            for record in pending:
                record.signal(signal.SIGKILL)
            killed = True
            deadline = time.monotonic() + 5.0
        time.sleep(0.02)
    return live


class GroupLedger:
    """The process groups a supervisor started, in a JSON file that outlives the supervisor.

    The supervisor adds each group it starts (`add`) and forgets it once it has ended it
    (`remove`); after a SIGKILL of the supervisor, whoever comes next ends what is left
    (`end_all`). Thread-safe within one process; one supervisor writes a given ledger.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def records(self) -> list[GroupRecord]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise LocalBackendError(
                f"cannot read the process-group ledger {self.path}: {exc}"
            ) from exc
        try:
            rows = json.loads(text)["groups"]
            return [
                GroupRecord(
                    int(r["pgid"]),
                    None if r.get("start_ticks") is None else int(r["start_ticks"]),
                    str(r.get("label", "")),
                )
                for r in rows
            ]
        except (ValueError, KeyError, TypeError) as exc:
            raise LocalBackendError(
                f"{self.path} is not a process-group ledger ({exc!r}); end the processes it "
                "names by hand if any still run, then delete it"
            ) from exc

    def add(self, pid: int, label: str = "") -> GroupRecord:
        """Record the group of ``pid``, a process just started in a new session."""
        record = GroupRecord(pid, process_start_ticks(pid), label)
        with self._lock:
            self._write([*self.records(), record])
        return record

    def remove(self, pgid: int) -> None:
        """Forget group ``pgid`` (it has ended)."""
        with self._lock:
            rows = self.records()
            kept = [r for r in rows if r.pgid != pgid]
            if len(kept) != len(rows):
                self._write(kept)

    def end_all(self, grace: float) -> list[GroupRecord]:
        """End every recorded group still alive (see `end_groups`), then forget them all."""
        with self._lock:
            live = end_groups(self.records(), grace)
            self._write([])
        return live

    def _write(self, records: list[GroupRecord]) -> None:
        if not records:
            self.path.unlink(missing_ok=True)
            return
        write_json_atomic(self.path, {"groups": [r.to_dict() for r in records]}, fsync=False)


def python_argv(module: str, *args: str) -> list[str]:
    """``[this python, -m, module, *args]``: children use the same interpreter and venv."""
    return [sys.executable, "-m", module, *args]
