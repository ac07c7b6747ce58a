"""``edgekit local device deploy``: greengrass-cli local deployments on a real local device.

The component (``components/com.example.LocalHello``) is the developer guide's
HelloWorld laid out as ``greengrass-cli deployment create`` expects it: a recipe folder
and ``artifacts/<name>/<version>/``. Nothing is published: the device takes recipes and
artifacts from the folders. Outcomes are read as a user would: the CLI's output and exit
code, the component's log, and ListEffectiveDeployments with plain boto3.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edgekit.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HELLO = "com.example.LocalHello"
FOLDERS = Path(__file__).resolve().parent / "components" / HELLO
RECIPES, ARTIFACTS = FOLDERS / "recipes", FOLDERS / "artifacts"


@pytest.fixture(scope="module")
def home(gg_local: Any) -> Path:
    return gg_local.root / "home"


@pytest.fixture(scope="module")
def device(gg_local: Any, home: Path) -> Any:
    from edgekit.local.home import HomeLayout

    thing = "compat-local-deploy"
    return gg_local.start_device(thing, root=HomeLayout.of(home).device_root(thing))


def deploy(home: Path, thing: str, *args: str) -> int:
    return main(
        ["local", "device", "deploy", thing, "--home", str(home), "--timeout", "120", *args]
    )


def effective(gg: Any, thing: str) -> dict[str, dict[str, Any]]:
    rows = gg.list_effective_deployments(coreDeviceThingName=thing)["effectiveDeployments"]
    return {r["deploymentId"]: r for r in rows}


def deployment_id(output: str) -> str:
    return output.split("local deployment ", 1)[1].split()[0]


def deploy_hello(home: Path, thing: str, version: str) -> int:
    return deploy(
        home,
        thing,
        "--recipe-dir", str(RECIPES),
        "--artifact-dir", str(ARTIFACTS),
        "--merge", f"{HELLO}={version}",
    )  # fmt: skip


def test_local_deployments_deploy_configure_roll_back_and_remove(
    gg_local: Any, device: Any, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One developer's loop, in order (the steps build on each other)."""
    # 1. Deploy from the folders: nothing is published.
    code = deploy_hello(home, device.thing_name, "1.0.0")
    out = capsys.readouterr().out
    assert code == 0, out
    assert "SUCCEEDED" in out
    gg_local.component_log(device, HELLO, contains="Hello, world!")
    assert not any(c["componentName"] == HELLO for c in gg_local.gg.list_components()["components"])
    # ...but the core device's effective deployments list the local deployment.
    row = effective(gg_local.gg, device.thing_name)[deployment_id(out)]
    assert row["coreDeviceExecutionStatus"] == "SUCCEEDED"
    assert row["deploymentName"] == "LOCAL_DEPLOYMENT"
    assert row["targetArn"] == gg_local.thing_arn(device.thing_name)

    # 2. --update-config MERGE reaches the component's configuration.
    update = {HELLO: {"MERGE": {"Message": "local edgekit"}}}
    code = deploy(home, device.thing_name, "--update-config", json.dumps(update))
    out = capsys.readouterr().out
    assert code == 0, out
    gg_local.component_log(device, HELLO, contains="Hello, local edgekit!")

    # 3. A version whose install fails: FAILED with the component, the step and its log
    # tail; the device rolls back to 1.0.0.
    code = deploy_hello(home, device.thing_name, "1.1.0")
    out = capsys.readouterr().out
    assert code == 1, out
    assert "FAILED" in out and "FAILED_ROLLBACK_COMPLETE" in out
    assert f"component {HELLO} 1.1.0 is BROKEN" in out  # the component...
    assert "install" in out  # ...the step...
    assert "cannot reach the sensor" in out  # ...and the tail of its log
    assert device.wait_for(lambda d: d.state.components[HELLO].version == "1.0.0", 10)
    assert device.states()[HELLO] == "RUNNING"
    row = effective(gg_local.gg, device.thing_name)[deployment_id(out)]
    assert row["coreDeviceExecutionStatus"] == "FAILED"

    # 4. --remove takes it out of the local group.
    code = deploy(home, device.thing_name, "--remove", HELLO)
    out = capsys.readouterr().out
    assert code == 0, out
    assert HELLO not in device.state.components


def test_local_and_cloud_deployments_compose(
    gg_local: Any,
    device: Any,
    home: Path,
    deploy_and_wait: Callable[..., dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = deploy_hello(home, device.thing_name, "1.0.0")
    out = capsys.readouterr().out
    assert code == 0, out
    gg_local.publish("com.example.PlatformAll")
    row = deploy_and_wait(
        gg_local.gg, gg_local.thing_arn(device.thing_name), {"com.example.PlatformAll": "1.0.0"}
    )
    assert row["coreDeviceExecutionStatus"] == "SUCCEEDED", row
    assert device.states()[HELLO] == "RUNNING"  # the local group keeps its component
    assert "com.example.PlatformAll" in device.state.components
    # Removing the local component leaves the cloud one.
    code = deploy(home, device.thing_name, "--remove", HELLO)
    out = capsys.readouterr().out
    assert code == 0, out
    assert HELLO not in device.state.components
    assert "com.example.PlatformAll" in device.state.components


def test_a_local_deployment_needs_no_control_plane(
    gg_local: Any, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A device whose control plane does not answer still deploys from the folders."""
    from edgekit.local.home import HomeLayout

    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    thing = "compat-local-offline"
    offline = gg_local.start_device(
        thing, root=HomeLayout.of(home).device_root(thing), greengrass_url=dead
    )
    code = deploy_hello(home, thing, "1.0.0")
    out = capsys.readouterr().out
    assert code == 0, out
    gg_local.component_log(offline, HELLO, contains="Hello, world!")


def test_bad_arguments_are_refused_before_anything_is_queued(
    device: Any, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy(home, device.thing_name, "--merge", "no-version") == 1
    assert "NAME=VERSION" in capsys.readouterr().err
    bad = json.dumps({HELLO: {"merge": {"a": 1}}})
    assert deploy(home, device.thing_name, "--update-config", bad) == 1
    assert "MERGE" in capsys.readouterr().err
