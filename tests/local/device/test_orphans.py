"""Component processes never outlive their device runtime (issue 12, item 8).

A component that wipes its environment (``exec env -i ...``) must still be found and
ended when its runtime was killed with SIGKILL: at the next start of the runtime, and by
``stop_process`` (what ``edgekit local down`` and ``local device remove`` do) if the
runtime is not started again. Runtimes run detached, as ``edgekit local device`` runs them.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edgekit.local import process

pytestmark = pytest.mark.integration

REGION = "us-east-1"
ACCOUNT = "123456789012"

# Each Run wipes the environment; the second leaves a grandchild (sh -> sleep).
RUNS = {
    "exec-env-i": "echo $$ >> {work:path}/pids.txt; exec env -i sleep 1000",
    "env-i-grandchild": (
        "echo $$ >> {work:path}/pids.txt; exec env -i /bin/sh -c 'sleep 1000 & wait'"
    ),
}


@dataclass
class Cloud:
    moto_url: str
    greengrass_url: str
    iot: Any
    gg: Any


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, moto_url: str) -> Iterator[Cloud]:
    import boto3

    from edgekit.local.greengrass.server import GreengrassServer

    server = GreengrassServer(tmp_path_factory.mktemp("gg"), moto_url, REGION).start()
    kw = {"region_name": REGION, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    try:
        yield Cloud(
            moto_url,
            server.url,
            boto3.client("iot", endpoint_url=moto_url, **kw),
            boto3.client("greengrassv2", endpoint_url=server.url, **kw),
        )
    finally:
        server.stop()


def _uniq(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def _wait_until(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _sleepers(work: Path) -> list[int]:
    """Live (non-zombie) ``sleep`` processes whose working folder is ``work``."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if os.readlink(entry / "cwd") != str(work):
                continue
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        state = stat[stat.rindex(")") + 2 :].split()[0]
        if comm == "sleep" and state not in ("Z", "X"):
            found.append(int(entry.name))
    return sorted(found)


def _kill_leftovers(root: Path) -> None:
    """Clean up after a failed run: end what is still running in the device's work folders."""
    if (root / "work").is_dir():
        for work in (root / "work").iterdir():
            for pid in _sleepers(work):
                os.kill(pid, signal.SIGKILL)


def _publish_and_deploy(cloud: Cloud, thing: str, run: str) -> str:
    comp = _uniq("com.test.Orphan")
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": comp,
        "ComponentVersion": "1.0.0",
        "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": {"Run": run}}],
    }
    cloud.gg.create_component_version(inlineRecipe=json.dumps(recipe).encode())
    cloud.gg.create_deployment(
        targetArn=f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/{thing}",
        deploymentName=_uniq("dep-"),
        components={comp: {"componentVersion": "1.0.0"}},
    )
    return comp


def _runtime_argv(cloud: Cloud, thing: str, root: Path) -> list[str]:
    return process.python_argv(
        "edgekit.local.device",
        "--thing", thing, "--root", str(root),
        "--greengrass-endpoint", cloud.greengrass_url, "--aws-endpoint", cloud.moto_url,
        "--region", REGION, "--poll", "0.1", "--settle", "0.3", "--no-ipc",
    )  # fmt: skip


def _kill9(home: Path, name: str) -> None:
    pid = process.pid_of(home, name)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    _wait_until(lambda: not process.is_running(home, name), "the runtime to die")


@pytest.mark.parametrize("run", list(RUNS.values()), ids=list(RUNS))
def test_killed_runtime_restarts_with_exactly_one_instance(
    cloud: Cloud, tmp_path: Path, run: str
) -> None:
    thing = _uniq("orphan-")
    cloud.iot.create_thing(thingName=thing)
    home, root, name = tmp_path / "home", tmp_path / "root", f"device-{thing}"
    argv = _runtime_argv(cloud, thing, root)
    process.start_process(home, name, argv, ready=lambda: True, timeout=30)
    try:
        comp = _publish_and_deploy(cloud, thing, run)
        work = root / "work" / comp
        first = _wait_until(lambda: _sleepers(work), "the first instance")
        assert len(first) == 1

        _kill9(home, name)
        assert _sleepers(work) == first  # the instance outlived its runtime

        process.start_process(home, name, argv, ready=lambda: True, timeout=30)
        _wait_until(
            lambda: (work / "pids.txt").read_text().count("\n") == 2, "the restarted instance"
        )
        second = _wait_until(lambda: [p for p in _sleepers(work) if p not in first], "sleep")
        assert _sleepers(work) == second and len(second) == 1  # exactly one instance

        process.stop_process(home, name)
        _wait_until(lambda: not _sleepers(work), "no instance after stop")
    finally:
        process.stop_process(home, name)
        _kill_leftovers(root)


@pytest.mark.slow
def test_local_down_after_a_runtime_crash_leaves_no_component_behind(tmp_path: Path) -> None:
    """`edgekit local device add`, kill -9 of its runtime, `edgekit local down`: nothing left."""
    from edgekit.local import boto, endpoints
    from edgekit.local.device.manager import add_device

    if not endpoints.greengrass_available():
        pytest.skip("the Greengrass emulator is not importable")
    home = tmp_path / "home"
    local = endpoints.up(home, region=REGION, timeout=60)
    try:
        thing = _uniq("down-")
        add_device(thing, "", home, poll=0.1)
        cloud = Cloud(
            local.moto_url,
            local.greengrass_url,
            boto.for_endpoints(local, "iot"),
            boto.for_endpoints(local, "greengrassv2"),
        )
        comp = _publish_and_deploy(cloud, thing, RUNS["env-i-grandchild"])
        work = home / "devices" / thing / "work" / comp
        first = _wait_until(lambda: _sleepers(work), "the component")
        _kill9(home, f"device-{thing}")
        assert _sleepers(work) == first
    finally:
        endpoints.down(home)
    try:
        _wait_until(lambda: not _sleepers(work), "no component after `local down`", timeout=15)
    finally:
        _kill_leftovers(home / "devices" / thing)
