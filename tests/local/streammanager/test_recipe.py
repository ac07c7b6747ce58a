"""The built-in recipe and the process the device starts from it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgekit.local.device.failures import DeploymentFailure
from edgekit.local.device.provided import builtin_recipe, provided_versions
from edgekit.local.streammanager import __main__ as sm_main
from edgekit.local.streammanager.recipe import COMPONENT, DEFAULT_CONFIGURATION

DOCUMENTED = {
    "STREAM_MANAGER_STORE_ROOT_DIR",
    "STREAM_MANAGER_SERVER_PORT",
    "STREAM_MANAGER_AUTHENTICATE_CLIENT",
    "STREAM_MANAGER_EXPORTER_MAX_BANDWIDTH",
    "STREAM_MANAGER_EXPORTER_THREAD_POOL_SIZE",
    "STREAM_MANAGER_EXPORTER_S3_DESTINATION_MULTIPART_UPLOAD_MIN_PART_SIZE_BYTES",
    "JVM_ARGS",
    "LOG_LEVEL",
}


def test_the_device_gets_the_recipe_for_public_versions() -> None:
    assert "2.0.7" in (provided_versions(COMPONENT) or []) and "2.2.1" in provided_versions(
        COMPONENT
    )
    recipe = builtin_recipe(COMPONENT, "2.2.1")
    assert recipe is not None and recipe["ComponentVersion"] == "2.2.1"
    defaults = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    assert set(defaults) == DOCUMENTED
    assert defaults["STREAM_MANAGER_SERVER_PORT"] == "8088"
    assert defaults["STREAM_MANAGER_AUTHENTICATE_CLIENT"] == "true"
    assert (
        recipe["ComponentDependencies"]["aws.greengrass.TokenExchangeService"]["DependencyType"]
        == "HARD"
    )
    lifecycle = recipe["Manifests"][0]["Lifecycle"]
    assert sys.executable in lifecycle["Startup"]["Script"]
    assert "-m edgekit.local.streammanager serve --daemon" in lifecycle["Startup"]["Script"]
    assert lifecycle["Setenv"]["STREAM_MANAGER_SERVER_PORT"] == (
        "{configuration:/STREAM_MANAGER_SERVER_PORT}"
    )
    assert set(lifecycle["Setenv"]) == set(DEFAULT_CONFIGURATION)


def test_a_version_aws_never_published_fails_the_deployment() -> None:
    with pytest.raises(DeploymentFailure, match="no public version 9.9.9"):
        builtin_recipe(COMPONENT, "9.9.9")


def test_a_port_in_use_names_the_port_the_device_and_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_IOT_THING_NAME", "core-7")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as info:
            sm_main._bind("127.0.0.1", port)
    text = str(info.value)
    assert f"port {port}" in text and "device core-7" in text
    assert "STREAM_MANAGER_SERVER_PORT" in text and "configurationUpdate" in text


def test_authentication_needs_the_device_ipc_socket(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(sm_main.SOCKET_ENV, raising=False)
    with pytest.raises(SystemExit, match="STREAM_MANAGER_AUTHENTICATE_CLIENT is true"):
        sm_main.main(["serve", "--port", "0", "--store-root", str(tmp_path)])


def test_daemon_returns_once_listening_and_serves_from_the_same_process_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stream_manager import StreamManagerClient

    monkeypatch.delenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", raising=False)
    env = dict(os.environ, STREAM_MANAGER_AUTHENTICATE_CLIENT="false", JVM_ARGS="-Xmx1g")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgekit.local.streammanager",
            "serve",
            "--daemon",
            "--port",
            "0",
            "--store-root",
            str(tmp_path / "streams"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # as the device starts a component's script
        text=True,
    )
    try:
        assert proc.wait(timeout=60) == 0  # the child keeps stdout: no communicate()
        assert proc.stdout is not None
        out = proc.stdout.readline() + proc.stdout.readline()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", out)
        assert match, out
        assert "JVM_ARGS is ignored" in out
        client = StreamManagerClient(port=int(match.group(1)))  # listening at once
        assert client.list_streams() == []
        client.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        if proc.stdout is not None:
            proc.stdout.close()  # what the device does when it stops the component
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the stream manager outlived SIGTERM to its process group")


class FakeIpc:
    """GreengrassCoreIPCClientV2 as the stream manager process uses it."""

    calls: list[tuple[str, object]] = []

    def update_configuration(
        self, *, key_path: list[str], value_to_merge: dict, timestamp: object
    ) -> None:
        self.calls.append(("update_configuration", (key_path, value_to_merge)))

    def update_state(self, *, state: str) -> None:
        self.calls.append(("update_state", state))

    def close(self) -> None:
        self.calls.append(("close", None))


def test_the_process_publishes_its_port_and_reports_errored_when_the_server_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: object, sock: socket.socket) -> None:
        sock.close()
        raise RuntimeError("disk on fire")

    FakeIpc.calls = []
    monkeypatch.setattr(sm_main, "GreengrassCoreIPCClientV2", FakeIpc)
    monkeypatch.setattr(sm_main.StreamManagerServer, "serve", broken)
    monkeypatch.setenv(sm_main.SOCKET_ENV, str(tmp_path / "ipc.socket"))
    monkeypatch.setenv("SVCUID", "token")
    code = sm_main.main(
        ["serve", "--port", "0", "--store-root", str(tmp_path), "--authenticate-client", "false"]
    )
    assert code == 1
    (kind, (key_path, merged)), *_ = FakeIpc.calls
    assert kind == "update_configuration" and key_path == [] and isinstance(merged["port"], int)
    assert ("update_state", "ERRORED") in FakeIpc.calls
