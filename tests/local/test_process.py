"""edgekit.local.process: detached start, pid files, readiness, stale pids, SIGTERM/SIGKILL."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekit.errors import LocalBackendError
from edgekit.local import process
from edgekit.local.home import HomeLayout

SLEEPER = [sys.executable, "-c", "import time; print('sleeping', flush=True); time.sleep(60)"]


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    for name in process.recorded_names(tmp_path):  # never leave a process behind
        process.stop_process(tmp_path, name, timeout=2)


def _gone(pid: int) -> bool:
    stat = process._proc_stat(pid)
    return stat is None or stat[0] in ("Z", "X")


def _output(home: Path, name: str) -> str:
    """The process's own output: the log without edgekit's "--- start" header lines."""
    text = HomeLayout(home).log_file(name).read_text()
    return "\n".join(line for line in text.splitlines() if not line.startswith("--- "))


def _wait_for(predicate, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_start_records_pid_and_detaches(home: Path) -> None:
    pid = process.start_process(home, "sleeper", SLEEPER)
    layout = HomeLayout(home)
    record = process.read_record(home, "sleeper")
    assert record is not None and record.pid == pid
    assert record.start_ticks == process.process_start_ticks(pid)
    assert layout.pid_file("sleeper").is_file()
    assert os.getsid(pid) == pid  # its own session: a notebook kernel's death does not reach it
    assert process.is_running(home, "sleeper")
    assert process.running(home) == {"sleeper": pid}
    assert _wait_for(lambda: "sleeping" in _output(home, "sleeper"))

    assert process.stop_process(home, "sleeper") is True
    assert _gone(pid)
    assert not process.is_running(home, "sleeper")
    assert not layout.pid_file("sleeper").exists()
    assert process.stop_process(home, "sleeper") is False  # idempotent


def test_refuses_to_start_a_second_copy(home: Path) -> None:
    process.start_process(home, "sleeper", SLEEPER)
    with pytest.raises(LocalBackendError, match="already running"):
        process.start_process(home, "sleeper", SLEEPER)


def test_waits_for_ready(home: Path) -> None:
    flag = home / "flag"
    argv = [
        sys.executable,
        "-c",
        f"import time, pathlib; time.sleep(0.3); pathlib.Path({str(flag)!r}).touch(); "
        "time.sleep(60)",
    ]
    t0 = time.monotonic()
    process.start_process(home, "slow", argv, ready=flag.exists, timeout=10)
    assert flag.exists()
    assert time.monotonic() - t0 >= 0.3


def test_env_is_passed(home: Path) -> None:
    argv = [
        sys.executable,
        "-c",
        "import os, time; print('VALUE=' + os.environ['EDGEKIT_TEST_VALUE'], flush=True); "
        "time.sleep(60)",
    ]
    process.start_process(
        home,
        "envy",
        argv,
        env={"EDGEKIT_TEST_VALUE": "42"},
        ready=lambda: "VALUE=42" in _output(home, "envy"),
        timeout=10,
    )


def test_exit_during_start_raises_with_log_tail(home: Path) -> None:
    argv = [sys.executable, "-c", "import sys; print('bad config at line 3'); sys.exit(3)"]
    with pytest.raises(LocalBackendError) as err:
        process.start_process(home, "broken", argv, ready=lambda: False, timeout=10)
    message = str(err.value)
    assert "exited with code 3" in message
    assert "bad config at line 3" in message
    assert str(HomeLayout(home).log_file("broken")) in message
    assert not HomeLayout(home).pid_file("broken").exists()


def test_not_ready_in_time_is_stopped(home: Path) -> None:
    with pytest.raises(LocalBackendError, match="not ready within") as err:
        process.start_process(home, "sleepy", SLEEPER, ready=lambda: False, timeout=0.5)
    assert "last lines of" in str(err.value) or "is empty" in str(err.value)
    assert not process.is_running(home, "sleepy")
    assert process.recorded_names(home) == []


def test_ready_oserror_counts_as_not_yet(home: Path) -> None:
    calls = {"n": 0}

    def ready() -> bool:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionRefusedError
        return True

    process.start_process(home, "sleeper", SLEEPER, ready=ready, timeout=10)
    assert calls["n"] == 3


def test_stale_pid_file_of_a_dead_process(home: Path) -> None:
    pid = process.start_process(home, "short", [sys.executable, "-c", "pass"])
    assert _wait_for(lambda: not process.is_running(home, "short"))
    assert process.running(home) == {}
    assert process.pid_of(home, "short") is None
    assert process.stop_process(home, "short") is False
    assert not HomeLayout(home).pid_file("short").exists()
    assert _gone(pid)


def test_reused_pid_is_not_ours(home: Path) -> None:
    """A pid file naming a live process with another start time (pid reuse) is stale."""
    me = os.getpid()
    ticks = process.process_start_ticks(me)
    assert ticks is not None
    layout = HomeLayout(home).ensure()
    stale = process.ProcessRecord("impostor", me, ticks + 12345, ["python"], 0.0)
    layout.pid_file("impostor").write_text(stale.to_json())
    assert not process.is_running(home, "impostor")
    assert process.stop_process(home, "impostor") is False  # and it did not signal us
    assert not layout.pid_file("impostor").exists()

    # The same pid with the right start time is recognized as alive.
    layout.pid_file("me").write_text(
        process.ProcessRecord("me", me, ticks, ["python"], 0.0).to_json()
    )
    assert process.is_running(home, "me")
    layout.pid_file("me").unlink()


def test_garbage_pid_file_counts_as_dead(home: Path) -> None:
    layout = HomeLayout(home).ensure()
    layout.pid_file("torn").write_text('{"pid": ')
    assert not process.is_running(home, "torn")
    assert process.stop_process(home, "torn") is False


def test_sigkill_after_timeout_when_sigterm_is_ignored(home: Path) -> None:
    argv = [
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)",
    ]
    pid = process.start_process(
        home, "stubborn", argv, ready=lambda: "ready" in _output(home, "stubborn"), timeout=10
    )
    t0 = time.monotonic()
    assert process.stop_process(home, "stubborn", timeout=0.5) is True
    assert 0.5 <= time.monotonic() - t0 < 5
    assert _gone(pid)


def test_stop_kills_what_the_process_left_in_its_session(home: Path) -> None:
    argv = [
        sys.executable,
        "-c",
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print('child', p.pid, flush=True); time.sleep(60)",
    ]
    process.start_process(home, "parent", argv, ready=lambda: "child " in _output(home, "parent"))
    child = int(_output(home, "parent").split("child ")[1].split()[0])
    assert not _gone(child)
    process.stop_process(home, "parent", timeout=2)
    assert _wait_for(lambda: _gone(child))


def test_bad_names_are_rejected(home: Path) -> None:
    from edgekit.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="cannot be used"):
        process.start_process(home, "../escape", SLEEPER)


# --- after a crash (issue 12, item 8): nothing it started outlives it ------------------------

_PARENT = [
    sys.executable,
    "-c",
    "import subprocess, sys, time; "
    "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
    "print('child', p.pid, flush=True); time.sleep(60)",
]


def test_stop_after_a_crash_ends_what_it_left_in_its_session(home: Path) -> None:
    import signal

    pid = process.start_process(
        home, "parent", _PARENT, ready=lambda: "child " in _output(home, "parent")
    )
    child = int(_output(home, "parent").split("child ")[1].split()[0])
    os.kill(pid, signal.SIGKILL)
    assert _wait_for(lambda: not process.is_running(home, "parent"))
    assert not _gone(child)  # the crash left it running

    assert process.stop_process(home, "parent", timeout=2) is False  # it was not running
    assert _wait_for(lambda: _gone(child))
    assert not HomeLayout(home).pid_file("parent").exists()


def test_stop_after_a_crash_ends_the_groups_of_its_ledger(home: Path, tmp_path: Path) -> None:
    """What a supervisor started in other sessions and recorded is ended by `stop_process`."""
    import signal

    ledger_path = tmp_path / "ledger" / "groups.json"
    argv = [
        sys.executable,
        "-c",
        "import subprocess, sys, time; from edgekit.local.process import GroupLedger; "
        "p = subprocess.Popen(['/bin/sh', '-c', 'exec env -i sleep 60'], start_new_session=True); "
        f"GroupLedger({str(ledger_path)!r}).add(p.pid, 'c run'); "
        "print('child', p.pid, flush=True); time.sleep(60)",
    ]
    pid = process.start_process(
        home, "super", argv, ready=lambda: "child " in _output(home, "super"), groups=ledger_path
    )
    assert process.read_record(home, "super").groups == str(ledger_path)  # type: ignore[union-attr]
    child = int(_output(home, "super").split("child ")[1].split()[0])
    os.kill(pid, signal.SIGKILL)
    assert _wait_for(lambda: not process.is_running(home, "super"))
    assert not _gone(child)  # in its own session: the leader's group does not hold it

    process.stop_process(home, "super", timeout=2)
    assert _wait_for(lambda: _gone(child))
    assert not ledger_path.exists()
