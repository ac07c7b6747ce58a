"""edgekit.local.device.process_groups and the GroupLedger under it (issue 12, item 8).

Recorded groups are ended by group, grandchildren included; a recorded pid that now
names another process (another start time) is never signalled; a component's groups
are in the ledger while they may run and gone once the component stopped them.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgekit.errors import LocalBackendError
from edgekit.local import process
from edgekit.local.device import lifecycle as lc
from edgekit.local.device import process_groups
from edgekit.local.device.interpolate import ComponentPaths
from edgekit.local.device.recipe import Step, resolve_recipe

LOG = logging.getLogger("test")


def _gone(pid: int) -> bool:
    stat = process.proc_stat(pid)
    return stat is None or stat.gone


def _wait(predicate: Callable[[], object], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def spawn() -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    """Start ``sh -c SCRIPT`` in a new session, as the lifecycle does; kill what is left."""
    started: list[subprocess.Popen[bytes]] = []

    def run(script: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["/bin/sh", "-c", script], start_new_session=True)
        started.append(proc)
        return proc

    yield run
    for proc in started:
        if process.GroupRecord(proc.pid, process.process_start_ticks(proc.pid)).alive():
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def _child_pid(path: Path) -> int:
    assert _wait(lambda: path.exists() and path.read_text().strip())
    return int(path.read_text())


def test_a_recorded_pid_with_another_start_time_is_never_killed(
    tmp_path: Path, spawn: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    """Pid reuse: the ledger names a live group leader, but with another start time."""
    proc = spawn("sleep 1000")
    ticks = process.process_start_ticks(proc.pid)
    assert ticks is not None
    path = process_groups.ledger_file(tmp_path)
    path.parent.mkdir(parents=True)
    stale = {"pgid": proc.pid, "start_ticks": ticks - 1, "label": "com.ex.Old run"}
    path.write_text(json.dumps({"groups": [stale]}))

    assert process_groups.end_leftovers(tmp_path, 0.2, LOG) == 0
    assert proc.poll() is None and not _gone(proc.pid)  # not signalled
    assert not path.exists()  # and forgotten

    # The same group recorded with its true start time is ours, and is ended.
    process_groups.ledger(tmp_path).add(proc.pid, "com.ex.New run")
    assert process_groups.end_leftovers(tmp_path, 5.0, LOG) == 1
    assert proc.wait(5) == -signal.SIGTERM
    assert not path.exists()


def test_groups_are_ended_with_their_grandchildren(
    tmp_path: Path, spawn: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    # A leader that waits for its child, and one that exited and left its child behind.
    waiting = spawn(f"exec env -i /bin/sh -c 'sleep 1000 & echo $! > {tmp_path}/a; wait'")
    left = spawn(f"sleep 1000 & echo $! > {tmp_path}/b")
    ledger = process_groups.ledger(tmp_path)
    for proc in (waiting, left):
        ledger.add(proc.pid, "com.ex.C run")
    a, b = _child_pid(tmp_path / "a"), _child_pid(tmp_path / "b")
    assert left.wait(5) == 0 and not _gone(b)  # its leader is gone, the group is not

    assert {r.pgid for r in ledger.records()} == {waiting.pid, left.pid}
    assert process_groups.end_leftovers(tmp_path, 5.0, LOG) == 2
    assert _wait(lambda: _gone(a) and _gone(b))
    assert ledger.records() == []


def test_a_group_that_ignores_sigterm_gets_sigkill_after_the_grace(
    tmp_path: Path, spawn: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    proc = spawn(f"trap '' TERM; echo ready > {tmp_path}/ready; while :; do sleep 0.05; done")
    assert _wait(lambda: (tmp_path / "ready").exists())
    ledger = process_groups.ledger(tmp_path)
    ledger.add(proc.pid, "stubborn")
    assert [r.pgid for r in ledger.end_all(0.3)] == [proc.pid]
    assert proc.wait(5) == -signal.SIGKILL


def test_a_ledger_that_is_not_one_names_its_file(tmp_path: Path) -> None:
    path = process_groups.ledger_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text('{"groups": [{"pid": 1}]}')
    with pytest.raises(LocalBackendError, match="process-groups.json is not a process-group"):
        process_groups.end_leftovers(tmp_path, 0.1, LOG)


# --- a component's groups while it runs, and after `stop` -------------------------------------


class _Host:
    def __init__(self, ledger: process.GroupLedger) -> None:
        self.condition = threading.Condition()
        self.groups = ledger

    def component_env(self, service: lc.ComponentService) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}

    def service_state(self, name: str) -> str | None:
        return None

    def state_changed(self, service: lc.ComponentService) -> None:
        with self.condition:
            self.condition.notify_all()

    def log(self, level: str, message: str) -> None:
        LOG.info("%s %s", level, message)


def _service(tmp_path: Path, steps: dict[str, Step]) -> tuple[lc.ComponentService, Path]:
    recipe = resolve_recipe(
        {"ComponentName": "com.ex.G", "ComponentVersion": "1.0.0", "Manifests": [{}]},
        {"os": "linux"},
    )
    spec = lc.ComponentSpec(
        name="com.ex.G",
        version="1.0.0",
        root=True,
        recipe=recipe,
        configuration={},
        dependencies={},
        steps=dict(steps),
        setenv={},
        paths=ComponentPaths(tmp_path / "a", tmp_path / "u", tmp_path / "w"),
        log_file=tmp_path / "logs" / "com.ex.G.log",
    )
    ledger = process_groups.ledger(tmp_path)
    return lc.ComponentService(spec, _Host(ledger)), process_groups.ledger_file(tmp_path)


@pytest.mark.parametrize(
    "run",
    [
        "sleep 1000 & echo $! > bg.pid; wait",
        "exec env -i /bin/sh -c 'sleep 1000 & echo $! > bg.pid; wait'",
        "sh -c 'sleep 1000 & echo $! > bg.pid; wait' & wait",
    ],
    ids=["child", "env-i", "grandchild"],
)
def test_stop_ends_the_whole_group_and_forgets_it(tmp_path: Path, run: str) -> None:
    svc, ledger_path = _service(tmp_path, {"run": Step(run, None)})
    svc.start()
    assert _wait(lambda: svc.state == lc.RUNNING)
    bg = _child_pid(tmp_path / "w" / "bg.pid")
    rows = json.loads(ledger_path.read_text())["groups"]
    assert [r["label"] for r in rows] == ["com.ex.G run"]
    assert os.getpgid(bg) == rows[0]["pgid"]

    svc.stop()
    assert _wait(lambda: _gone(bg))
    assert not ledger_path.exists()  # every group it started has ended and is forgotten
    assert svc.state == lc.INSTALLED


def test_a_run_that_exits_leaving_a_child_keeps_its_group_recorded_until_stop(
    tmp_path: Path,
) -> None:
    svc, ledger_path = _service(tmp_path, {"run": Step("sleep 1000 & echo $! > bg.pid", None)})
    svc.start()
    assert _wait(lambda: svc.state == lc.FINISHED)
    bg = _child_pid(tmp_path / "w" / "bg.pid")
    assert not _gone(bg)
    assert len(json.loads(ledger_path.read_text())["groups"]) == 1  # a crash now would end it
    svc.stop()
    assert _wait(lambda: _gone(bg))
    assert not ledger_path.exists()
