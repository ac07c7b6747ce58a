"""The agent's default socket lives where no other user can take its name (issue 12, item 4).

Before, it was ``/tmp/edgekit-agent-<hash>.sock``: any local user could bind that name
first and the inference app trusted whatever answered. Now it is in the agent's work
folder (or a per-user 0700 folder when that path is too long), each folder checked with
lstat; a planted folder, symlink or foreign owner is refused with the path named, and the
client refuses a socket served by another user (SO_PEERCRED).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from edgekit import unix_socket
from edgekit.agent.client import AgentClient, check_peer
from edgekit.agent.paths import SOCKET_NAME, default_socket, socket_for_work, user_runtime_dir
from edgekit.agent.server import AgentServer
from edgekit.agent.status import AgentStatusError
from edgekit.agent.testing import SignedPackage, short_tempdir, signed_package
from edgekit.errors import AgentError

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")


@pytest.fixture
def short() -> Iterator[Path]:
    path = short_tempdir("ekp-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def private_tmp(short: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for /tmp (the per-user folder's parent) and no XDG_RUNTIME_DIR."""
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(unix_socket, "TMP_DIR", short)
    return short


def long_work(base: Path) -> Path:
    work = base / ("w" * 60) / ("x" * 60) / "com.qualityinspection.agent"
    work.mkdir(parents=True, mode=0o700)
    return work


# --- where the socket goes -------------------------------------------------------------------


def test_the_socket_is_in_the_agents_work_folder(short: Path) -> None:
    work = short / "work" / "com.qualityinspection.agent"
    work.mkdir(parents=True)
    work.chmod(0o755)  # the nucleus's own folder: only its owner writes
    assert socket_for_work(str(work)) == str(work / SOCKET_NAME)


def test_a_long_work_folder_uses_the_per_user_0700_folder(private_tmp: Path) -> None:
    work = long_work(private_tmp)
    sock = socket_for_work(str(work))
    folder = private_tmp / f"edgekit-{os.geteuid()}"
    assert Path(sock).parent == folder and Path(sock).name.startswith("agent-")
    assert (folder.stat().st_mode & 0o777) == 0o700 and folder.stat().st_uid == os.geteuid()
    other = long_work(private_tmp / "b")
    assert socket_for_work(str(other)) != sock  # two device roots never share an agent
    assert socket_for_work(str(work)) == sock  # and the app finds the agent's
    assert len(sock) <= 107


def test_xdg_runtime_dir_is_preferred(short: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = short / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert user_runtime_dir() == runtime / "edgekit"
    assert Path(socket_for_work(str(long_work(short)))).parent == runtime / "edgekit"


# --- planted folders are refused, naming the path ---------------------------------------------


def _plant_world_writable(folder: Path) -> None:
    folder.mkdir(mode=0o700)
    folder.chmod(0o777)


def _plant_symlink(folder: Path) -> None:
    target = folder.parent / "elsewhere"
    target.mkdir(mode=0o700)
    folder.symlink_to(target)


def _plant_file(folder: Path) -> None:
    folder.write_text("not a folder")


def _plant_group_writable_0770(folder: Path) -> None:
    folder.mkdir(mode=0o700)
    folder.chmod(0o770)


def _plant_readable_0755(folder: Path) -> None:
    folder.mkdir(mode=0o700)
    folder.chmod(0o755)


@pytest.mark.parametrize(
    ("plant", "problem"),
    [
        (_plant_world_writable, "has mode 0777, not 0700"),
        (_plant_group_writable_0770, "has mode 0770, not 0700"),
        (_plant_readable_0755, "has mode 0755, not 0700"),
        (_plant_symlink, "is a symbolic link"),
        (_plant_file, "is not a directory"),
    ],
)
def test_a_planted_per_user_folder_is_refused(private_tmp: Path, plant, problem: str) -> None:
    folder = private_tmp / f"edgekit-{os.geteuid()}"
    plant(folder)
    with pytest.raises(AgentError) as info:
        socket_for_work(str(long_work(private_tmp / "dev")))
    assert f"{folder} {problem}" in str(info.value)
    assert "impostor" in str(info.value)


@as_root
def test_a_per_user_folder_owned_by_another_user_is_refused(private_tmp: Path) -> None:
    folder = private_tmp / f"edgekit-{os.geteuid()}"
    folder.mkdir(mode=0o700)
    os.chown(folder, NOBODY, NOBODY)
    with pytest.raises(AgentError, match=f"{folder} is owned by uid {NOBODY}, not by this user"):
        socket_for_work(str(long_work(private_tmp / "dev")))


def test_a_bad_xdg_runtime_dir_is_refused(short: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = short / "run"
    runtime.mkdir()
    runtime.chmod(0o777)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    with pytest.raises(AgentError, match=f"{runtime} has mode 0777: other users can write"):
        user_runtime_dir()


@pytest.mark.parametrize(
    ("plant", "problem"),
    [
        (_plant_world_writable, "has mode 0777: other users can write to it"),
        (_plant_group_writable_0770, "has mode 0770: other users can write to it"),
        (_plant_symlink, "is a symbolic link"),
        (_plant_file, "is not a directory"),
    ],
)
def test_a_planted_work_folder_is_refused(short: Path, plant, problem: str) -> None:
    work = short / "com.qualityinspection.agent"
    plant(work)
    with pytest.raises(AgentError) as info:
        socket_for_work(str(work))
    assert f"{work} {problem}" in str(info.value)


def test_a_missing_work_folder_is_refused(short: Path) -> None:
    with pytest.raises(AgentError, match="missing: the agent's socket folder does not exist"):
        socket_for_work(str(short / "missing"))


def test_the_run_script_helper_fails_naming_the_folder(short: Path) -> None:
    """The agent component's Run script: `python -m edgekit.agent.paths WORK` (set -e)."""
    work = short / "agent-work"
    _plant_world_writable(work)
    run = subprocess.run(
        [sys.executable, "-m", "edgekit.agent.paths", str(work)], capture_output=True, text=True
    )
    assert run.returncode == 1 and run.stdout == ""
    assert f"{work} has mode 0777" in run.stderr
    work.chmod(0o700)
    ok = subprocess.run(
        [sys.executable, "-m", "edgekit.agent.paths", str(work)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert ok.stdout.strip() == str(work / SOCKET_NAME)


# --- the client checks who serves the socket ---------------------------------------------------


@pytest.fixture(scope="module")
def pkg() -> Iterator[SignedPackage]:
    work = short_tempdir("ekpk-")
    yield signed_package(work)
    shutil.rmtree(work, ignore_errors=True)


@pytest.mark.integration
def test_the_client_talks_to_an_agent_of_its_own_user(short: Path, pkg: SignedPackage) -> None:
    with (
        AgentServer(short / "own.sock", pkg.public_key) as server,
        AgentClient(server.socket_path) as client,
    ):
        client.wait_ready(10)
        assert check_peer(str(server.socket_path)) is True
        assert client.list_models() == []


def test_nobody_listening_is_left_to_the_call(short: Path) -> None:
    assert check_peer(str(short / "none.sock")) is False
    with AgentClient(short / "none.sock", timeout=0.5) as client:
        with pytest.raises(AgentStatusError) as info:
            client.list_models()
        assert info.value.code == "UNAVAILABLE"


@as_root
@pytest.mark.skipif(not hasattr(socket, "SO_PEERCRED"), reason="SO_PEERCRED is Linux's")
def test_the_client_refuses_a_socket_served_by_another_user(short: Path) -> None:
    short.chmod(0o755)
    folder = short / "shared"
    folder.mkdir()
    folder.chmod(0o777)
    sock = folder / "agent.sock"
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        pytest.skip("no system python3 that another user may run")
    impostor = subprocess.Popen(
        [
            python,
            "-c",
            "import socket, sys, time\n"
            "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
            "s.bind(sys.argv[1]); s.listen(8); print('ready', flush=True)\n"
            "while True:\n"
            "    c, _ = s.accept(); c.close()\n",
            str(sock),
        ],
        user=NOBODY,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert impostor.stdout is not None and impostor.stdout.readline().strip() == "ready"
        with pytest.raises(AgentStatusError) as info:
            check_peer(str(sock))
        assert info.value.code == "PERMISSION_DENIED"
        assert (
            f"{sock}: the process listening there (pid {impostor.pid}) runs as uid {NOBODY}"
            in str(info.value)
        )
        with AgentClient(sock, timeout=2) as client:
            with pytest.raises(AgentStatusError) as call:
                client.list_models()
            assert call.value.code == "PERMISSION_DENIED" and str(sock) in str(call.value)
    finally:
        impostor.kill()
        impostor.wait()


def test_agent_serve_defaults_to_the_per_user_folder(private_tmp: Path) -> None:
    """`edgekit agent serve` / `list` without --socket: no longer /tmp/edgekit_agent.sock."""
    assert default_socket() == str(private_tmp / f"edgekit-{os.geteuid()}" / SOCKET_NAME)


@pytest.mark.parametrize("length", [106, 107])
def test_a_socket_path_grpc_cannot_bind_goes_to_the_per_user_folder(
    private_tmp: Path, length: int
) -> None:
    """gRPC refuses unix socket paths over 105 bytes although sun_path holds 107: a work
    folder whose agent.sock is 106 or 107 bytes long broke the agent (CI, pytest-652)."""
    base = private_tmp / "d"
    pad = length - len(str(base / "x" / SOCKET_NAME))
    work = base / ("x" * (1 + pad))
    work.mkdir(parents=True, mode=0o700)
    assert len(str(work / SOCKET_NAME)) == length
    sock = socket_for_work(str(work))
    assert Path(sock).parent == private_tmp / f"edgekit-{os.geteuid()}"
    server = grpc.server(futures.ThreadPoolExecutor(1))
    try:
        assert server.add_insecure_port(f"unix://{sock}") != 0  # gRPC binds it
    finally:
        server.stop(0)
