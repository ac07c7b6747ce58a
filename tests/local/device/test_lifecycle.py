"""edgekit.local.device.lifecycle: component lifecycles with real processes."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from edgekit.local.device import lifecycle as lc
from edgekit.local.device.interpolate import ComponentPaths
from edgekit.local.device.recipe import (
    Step,
    resolve_recipe,
)


def _recipe(name: str, version: str, deps: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "ComponentName": name,
        "ComponentVersion": version,
        "ComponentDependencies": {
            d: {"VersionRequirement": r, "DependencyType": "HARD"} for d, r in (deps or {}).items()
        },
        "Manifests": [{"Lifecycle": {}}],
    }


class _Host:
    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.states: list[str] = []
        self.others: dict[str, str] = {}

    def component_env(self, service: lc.ComponentService) -> dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "SVCUID": "token"}

    def service_state(self, name: str) -> str | None:
        return self.others.get(name)

    def state_changed(self, service: lc.ComponentService) -> None:
        self.states.append(service.state)
        with self.condition:
            self.condition.notify_all()

    def log(self, level: str, message: str) -> None:
        pass


def _spec(tmp_path: Path, steps: dict[str, Step], deps: dict[str, str] | None = None):
    recipe = resolve_recipe(_recipe("com.ex.C", "1.0.0"), {"os": "linux"})
    return lc.ComponentSpec(
        name="com.ex.C",
        version="1.0.0",
        root=True,
        recipe=recipe,
        configuration={},
        dependencies=deps or {},
        steps=dict(steps),
        setenv={"GLOBAL": "g"},
        paths=ComponentPaths(tmp_path / "a", tmp_path / "u", tmp_path / "w"),
        log_file=tmp_path / "logs" / "com.ex.C.log",
    )


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_failing_run_errors_three_times_then_broken(tmp_path: Path) -> None:
    host = _Host()
    spec = _spec(tmp_path, {"run": Step("echo attempt >> runs.txt; echo oops; exit 4", None)})
    svc = lc.ComponentService(spec, host)
    svc.start()
    assert _wait(lambda: svc.state == lc.BROKEN)
    assert (tmp_path / "w" / "runs.txt").read_text().count("attempt") == lc.MAX_ERRORS
    assert "run script exited with code 4" in svc.details
    assert host.states.count(lc.ERRORED) == lc.MAX_ERRORS - 1
    assert "oops" in spec.log_file.read_text()
    svc.stop()


def test_startup_runs_then_shutdown_and_group_kill(tmp_path: Path) -> None:
    host = _Host()
    spec = _spec(
        tmp_path,
        {
            "install": Step("echo $GLOBAL-$LOCAL > installed.txt", 120, {"LOCAL": "l"}),
            "startup": Step("sleep 60 & echo $! > bg.pid", 120),
            "shutdown": Step("echo bye > shutdown.txt", 15),
        },
    )
    svc = lc.ComponentService(spec, host)
    svc.start()
    assert _wait(lambda: svc.state == lc.RUNNING)
    work = tmp_path / "w"
    assert (work / "installed.txt").read_text().strip() == "g-l"
    bg = int((work / "bg.pid").read_text())
    assert _pid_alive(bg)
    svc.stop()
    assert (work / "shutdown.txt").read_text().strip() == "bye"
    assert _wait(lambda: not _pid_alive(bg))
    assert svc.state == lc.INSTALLED


def test_install_timeout_and_skipif(tmp_path: Path) -> None:
    host = _Host()
    spec = _spec(
        tmp_path,
        {
            "install": Step("sleep 30", 0.3),
            "run": Step("echo ran > ran.txt", None, skipif="onpath sh"),
        },
    )
    svc = lc.ComponentService(spec, host)
    svc.start()
    assert _wait(lambda: svc.state == lc.BROKEN, 15)
    assert "install script timed out after 0.3 s" in svc.details
    svc.stop()

    spec2 = _spec(tmp_path / "b", {"run": Step("echo ran > ran.txt", None, skipif="onpath sh")})
    svc2 = lc.ComponentService(spec2, host)
    svc2.start()
    assert _wait(lambda: svc2.state == lc.FINISHED)
    assert not (tmp_path / "b" / "w" / "ran.txt").exists()
    svc2.stop()


def test_component_waits_for_its_dependencies(tmp_path: Path) -> None:
    host = _Host()
    run = Step("echo go > go.txt; sleep 30", None)
    spec = _spec(tmp_path, {"run": run}, {"com.ex.Dep": "HARD"})
    svc = lc.ComponentService(spec, host)
    host.others["com.ex.Dep"] = lc.STARTING
    svc.start()
    time.sleep(0.3)
    assert svc.state == lc.INSTALLED
    with host.condition:
        host.others["com.ex.Dep"] = lc.RUNNING
        host.condition.notify_all()
    assert _wait(lambda: svc.state == lc.RUNNING)
    assert _wait(lambda: (tmp_path / "w" / "go.txt").exists())
    svc.stop()
