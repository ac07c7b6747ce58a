"""Unit tests of the device runtime's pieces: configuration, recipes, interpolation,
dependency resolution, archives and the component lifecycle (real processes)."""

from __future__ import annotations

import io
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from edgekit.local.device import lifecycle as lc
from edgekit.local.device.artifacts import archive_folder_name, safe_unzip
from edgekit.local.device.configuration import changed_paths, resolve_configuration
from edgekit.local.device.failures import DeploymentFailure
from edgekit.local.device.interpolate import ComponentPaths, Context, interpolate
from edgekit.local.device.paths import DeviceLayout
from edgekit.local.device.recipe import (
    Artifact,
    Step,
    device_platform,
    platform_matches,
    resolve_recipe,
)
from edgekit.local.device.resolver import resolve

# --- configuration ---------------------------------------------------------------------------

DASHBOARD_DEFAULTS = {
    "name": None,
    "mode": "REQUEST",
    "network": {"useHttps": True, "port": {"http": 80, "https": 443}},
    "tags": [],
}


def test_configuration_merge_then_reset_follows_the_greengrass_example() -> None:
    first = resolve_configuration(
        None,
        DASHBOARD_DEFAULTS,
        {
            "merge": '{"name":"Factory 2A","network":{"useHttps":false,"port":{"http":8080}},'
            '"tags":["/boiler/1/temperature","/boiler/1/pressure"]}'
        },
        "com.example.IndustrialDashboard",
    )
    assert first == {
        "name": "Factory 2A",
        "mode": "REQUEST",
        "network": {"useHttps": False, "port": {"http": 8080, "https": 443}},
        "tags": ["/boiler/1/temperature", "/boiler/1/pressure"],
    }
    second = resolve_configuration(
        first,
        DASHBOARD_DEFAULTS,
        {"reset": ["/network/useHttps", "/tags"], "merge": '{"tags":["/boiler/3/temperature"]}'},
        "com.example.IndustrialDashboard",
    )
    assert second["network"] == {"useHttps": True, "port": {"http": 8080, "https": 443}}
    assert second["tags"] == ["/boiler/3/temperature"]
    assert second["name"] == "Factory 2A"


def test_reset_everything_and_reset_of_a_key_without_default() -> None:
    current = {"mode": "PUSH", "extra": {"a": 1}, "name": "x"}
    assert resolve_configuration(current, DASHBOARD_DEFAULTS, {"reset": [""]}, "c") == (
        DASHBOARD_DEFAULTS
    )
    after = resolve_configuration(current, DASHBOARD_DEFAULTS, {"reset": ["/extra"]}, "c")
    assert "extra" not in after and after["mode"] == "PUSH"


def test_configuration_errors_name_the_component() -> None:
    with pytest.raises(Exception, match="com.x.Y.*not valid JSON"):
        resolve_configuration({}, {}, {"merge": "{nope"}, "com.x.Y")
    with pytest.raises(Exception, match="JSON pointer"):
        resolve_configuration({}, {}, {"reset": ["noslash"]}, "c")


def test_changed_paths_reports_top_most_differences() -> None:
    old = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1]}
    new = {"a": 1, "b": {"c": 5, "d": 3}, "f": 0}
    assert changed_paths(old, new) == [["b", "c"], ["e"], ["f"]]


# --- recipes and platforms ---------------------------------------------------------------------


def test_platform_matching_exact_wildcard_regex() -> None:
    attrs = {"os": "linux", "architecture": "amd64"}
    assert platform_matches({"os": "linux"}, attrs)
    assert platform_matches({"os": "linux", "architecture": "*"}, attrs)
    assert platform_matches({"architecture": "/amd64|aarch64/"}, attrs)
    assert not platform_matches({"os": "windows"}, attrs)
    assert not platform_matches({"com.example.radio": "/.+/"}, attrs)
    assert platform_matches({"com.example.radio": "*"}, attrs)
    assert device_platform()["architecture"] in ("amd64", "aarch64", "arm", "x86")


def test_first_matching_manifest_and_global_lifecycle_selections() -> None:
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.ex.C",
        "ComponentVersion": "1.0.0",
        "Lifecycle": {"fast": {"Run": "echo fast"}, "all": {"Install": "echo all"}},
        "Manifests": [
            {"Platform": {"os": "windows"}, "Lifecycle": {"Run": "echo win"}},
            {"Platform": {"os": "linux"}, "Selections": ["fast"]},
            {"Lifecycle": {"Run": "echo any"}},
        ],
    }
    resolved = resolve_recipe(recipe, {"os": "linux", "architecture": "amd64"})
    assert resolved.step("run") == Step(script="echo fast", timeout=None)
    assert resolved.step("install") is None
    other = resolve_recipe(recipe, {"os": "darwin", "architecture": "amd64"})
    assert other.step("run").script == "echo any"


def test_step_defaults_follow_the_recipe_reference() -> None:
    recipe = {
        "ComponentName": "c",
        "ComponentVersion": "1.0.0",
        "Manifests": [
            {
                "Lifecycle": {
                    "Install": {"Script": "i", "Skipif": "onpath git"},
                    "Startup": "s",
                    "Shutdown": "d",
                    "Recover": {"script": "r", "timeout": "7"},
                }
            }
        ],
    }
    r = resolve_recipe(recipe, {"os": "linux"})
    assert r.step("install").timeout == 120 and r.step("install").skipif == "onpath git"
    assert r.step("startup").timeout == 120
    assert r.step("shutdown").timeout == 15
    assert r.step("recover").timeout == 7


def test_no_matching_manifest_fails_with_the_platform() -> None:
    recipe = {
        "ComponentName": "c",
        "ComponentVersion": "1.0.0",
        "Manifests": [{"Platform": {"os": "windows"}, "Lifecycle": {"Run": "x"}}],
    }
    with pytest.raises(Exception, match="no manifest for this device's platform.*os=linux"):
        resolve_recipe(recipe, {"os": "linux", "architecture": "amd64"})


# --- interpolation ------------------------------------------------------------------------------


def _ctx(tmp_path: Path) -> Context:
    def paths(n: str) -> ComponentPaths:
        return ComponentPaths(tmp_path / "a" / n, tmp_path / "u" / n, tmp_path / "w" / n)

    return Context(
        component="com.ex.App",
        paths={"com.ex.App": paths("com.ex.App"), "com.ex.Lib": paths("com.ex.Lib")},
        configurations={
            "com.ex.App": {"msg": "hi", "n": 3, "flag": True, "obj": {"a": [1, 2]}, "none": None},
            "com.ex.Lib": {"server": {"port": 8080}},
        },
        root_path=tmp_path,
        thing_name="thing-1",
    )


def test_recipe_variables(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    text = (
        "{artifacts:path} {artifacts:decompressedPath} {work:path} {kernel:rootPath} "
        "{iot:thingName} {configuration:/msg} {configuration:/n} {configuration:/flag} "
        "{configuration:/obj} {configuration:/none} {com.ex.Lib:configuration:/server/port} "
        "{com.ex.Lib:artifacts:decompressedPath} {com.ex.Lib:work:path}"
    )
    assert interpolate(text, ctx).split() == [
        f"{tmp_path}/a/com.ex.App",
        f"{tmp_path}/u/com.ex.App",
        f"{tmp_path}/w/com.ex.App",
        str(tmp_path),
        "thing-1",
        "hi",
        "3",
        "true",
        '{"a":[1,2]}',
        "null",
        "8080",
        f"{tmp_path}/u/com.ex.Lib",
        f"{tmp_path}/w/com.ex.Lib",
    ]


def test_unresolvable_variables_stay_as_written(tmp_path: Path) -> None:
    notes: list[str] = []
    text = "{com.ex.Other:artifacts:path} {configuration:/missing} ${HOME:-x}"
    assert interpolate(text, _ctx(tmp_path), notes.append) == text
    assert any("not a direct dependency" in n for n in notes)


# --- dependency resolution ------------------------------------------------------------------------


def _recipe(name: str, version: str, deps: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "ComponentName": name,
        "ComponentVersion": version,
        "ComponentDependencies": {
            d: {"VersionRequirement": r, "DependencyType": "HARD"} for d, r in (deps or {}).items()
        },
        "Manifests": [{"Lifecycle": {}}],
    }


def _sources(catalog: dict[tuple[str, str], dict[str, Any]]):
    def recipe_for(name: str, version: str):
        return resolve_recipe(catalog[(name, version)], {"os": "linux"})

    def versions_of(name: str) -> list[str]:
        return [v for (n, v) in catalog if n == name]

    return recipe_for, versions_of


def test_resolver_picks_newest_satisfying_and_prefers_installed() -> None:
    catalog = {
        ("app", "1.0.0"): _recipe("app", "1.0.0", {"lib": "^1.0.0", "aws.greengrass.Nucleus": "*"}),
        ("lib", "1.0.0"): _recipe("lib", "1.0.0"),
        ("lib", "1.4.0"): _recipe("lib", "1.4.0"),
        ("lib", "2.0.0"): _recipe("lib", "2.0.0"),
    }
    recipes, provided = resolve({"app": "1.0.0"}, *_sources(catalog), installed={})
    assert recipes["lib"].version == "1.4.0"
    assert "aws.greengrass.Nucleus" in provided
    recipes, _ = resolve({"app": "1.0.0"}, *_sources(catalog), installed={"lib": "1.0.0"})
    assert recipes["lib"].version == "1.0.0"


def test_resolver_conflict_names_both_requirers() -> None:
    catalog = {
        ("a", "1.0.0"): _recipe("a", "1.0.0", {"dep": "^1.0.0"}),
        ("b", "1.0.0"): _recipe("b", "1.0.0", {"dep": "^2.0.0"}),
        ("dep", "1.0.0"): _recipe("dep", "1.0.0"),
        ("dep", "2.0.0"): _recipe("dep", "2.0.0"),
    }
    with pytest.raises(DeploymentFailure) as info:
        resolve({"a": "1.0.0", "b": "1.0.0"}, *_sources(catalog), installed={})
    message = str(info.value)
    assert "a 1.0.0 requires dep '^1.0.0'" in message
    assert "b 1.0.0 requires dep '^2.0.0'" in message
    assert "COMPONENT_VERSION_REQUIREMENTS_NOT_MET" in info.value.error_stack


def test_resolver_conflict_with_a_pinned_root() -> None:
    catalog = {
        ("a", "1.0.0"): _recipe("a", "1.0.0", {"dep": ">=2.0.0"}),
        ("dep", "1.0.0"): _recipe("dep", "1.0.0"),
    }
    with pytest.raises(DeploymentFailure, match="a 1.0.0 requires dep '>=2.0.0'"):
        resolve({"a": "1.0.0", "dep": "1.0.0"}, *_sources(catalog), installed={})


# --- archives -------------------------------------------------------------------------------------


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


ART = Artifact("s3://b/models.zip", "ZIP", None, None, "ALL", "OWNER")


def test_safe_unzip_unpacks_with_permissions(tmp_path: Path) -> None:
    archive = tmp_path / "models.zip"
    archive.write_bytes(_zip({"m/a.txt": b"a", "run.sh": b"echo"}))
    recipe = resolve_recipe(_recipe("c", "1.0.0"), {"os": "linux"})
    dest = tmp_path / "out" / archive_folder_name("models.zip")
    safe_unzip(archive, dest, ART, recipe)
    assert (dest / "m" / "a.txt").read_text() == "a"
    assert (dest / "run.sh").stat().st_mode & 0o777 == 0o744


@pytest.mark.parametrize("evil", ["../escape.txt", "/abs/path.txt", "a/../../x"])
def test_safe_unzip_refuses_paths_outside(tmp_path: Path, evil: str) -> None:
    archive = tmp_path / "evil.zip"
    archive.write_bytes(_zip({evil: b"x"}))
    recipe = resolve_recipe(_recipe("c", "1.0.0"), {"os": "linux"})
    with pytest.raises(DeploymentFailure, match="outside the unpack folder"):
        safe_unzip(archive, tmp_path / "out" / "evil", ART, recipe)
    assert not (tmp_path / "escape.txt").exists()


def test_socket_path_falls_back_to_tmp_for_long_roots(tmp_path: Path) -> None:
    assert DeviceLayout.of(tmp_path).socket_path == tmp_path / "ipc.socket"
    long_root = tmp_path / ("x" * 120)
    path = DeviceLayout.of(long_root).socket_path
    assert str(path).startswith("/tmp/edgekit-ipc-") and len(str(path)) < 100


# --- lifecycle with real processes ----------------------------------------------------------------


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
