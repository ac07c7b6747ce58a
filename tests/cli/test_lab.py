"""`make lab` / `edgekit lab` (issue 15, item 1), and the end of `make demo`.

JupyterLab starts from this environment on 127.0.0.1 in a temporary run folder, answers
``/api/status`` with its token, runs a kernel, and stops with nothing left: no server, no
kernel, no server-info file, nothing listening. The command's Ctrl-C does the same and
says the local backend keeps running. Skipped where JupyterLab is not installed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from edgekit import demo
from edgekit.errors import ConfigurationError
from edgekit.lab import free_port, jupyterlab_available, lab_folder, start_lab
from edgekit.local.endpoints import ProcessStatus
from edgekit.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

needs_lab = pytest.mark.skipif(not jupyterlab_available(), reason="jupyterlab is not installed")


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc; empty elsewhere)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.is_file() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Jupyter's runtime folder (server-info and connection files) for this test only."""
    folder = tmp_path / "rt"
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(folder))
    return folder


@needs_lab
def test_lab_starts_on_loopback_answers_and_stops_with_nothing_left(
    tmp_path: Path, runtime_dir: Path
) -> None:
    folder = tmp_path / "runs" / "run1"
    folder.mkdir(parents=True)
    settings = Settings(local_home=tmp_path / "home")
    server = start_lab(settings, folder, port=0)
    try:
        assert server.url.startswith(f"http://127.0.0.1:{server.port}/lab?token=")
        status = json.loads(server.api("/api/status"))
        assert "started" in status
        with pytest.raises(urllib.error.HTTPError):  # the token is required
            urllib.request.urlopen(f"{server.base_url}/api/status", timeout=5)
        kernel = json.loads(server.api("/api/kernels", method="POST"))
        assert kernel["name"]
        info_files = list(runtime_dir.glob(f"jpserver-{server.process.pid}*.json"))
        assert info_files, "the server writes its info file"
        assert json.loads(info_files[0].read_text())["root_dir"] == str(folder.resolve())
        kernels = _children(server.process.pid) if sys.platform == "linux" else []
    finally:
        code = server.stop()
    assert code == 0
    assert not server.running()
    assert not server.answers()
    assert not _listening(server.port)
    assert not list(runtime_dir.glob(f"jpserver-{server.process.pid}*"))
    for pid in kernels:
        assert not _alive(pid), f"kernel process {pid} outlived the server"
    assert (settings.home / "logs" / "jupyterlab.log").is_file()


@needs_lab
def test_a_taken_port_is_refused_with_what_to_do(tmp_path: Path, runtime_dir: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(ConfigurationError, match=rf"port {port} .* in use.*--port 0"):
            start_lab(Settings(local_home=tmp_path / "home"), tmp_path, port=port)


def test_lab_folder_is_the_newest_run_else_fresh_notebooks(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    fresh = lab_folder(runs)
    assert fresh == (runs / "notebooks").resolve()
    assert (fresh / "04_visualize_results.ipynb").is_file()
    (runs / "20261205T000000Z").mkdir()
    (runs / "latest").symlink_to("20261205T000000Z")
    assert lab_folder(runs) == (runs / "20261205T000000Z").resolve()


@needs_lab
def test_edgekit_lab_prints_the_url_and_ctrl_c_stops_it(tmp_path: Path, runtime_dir: Path) -> None:
    home, folder = tmp_path / "home", tmp_path / "run"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEKIT_", "AWS_"))}
    env.update(EDGEKIT_LOCAL_HOME=str(home), JUPYTER_RUNTIME_DIR=str(runtime_dir))
    port = free_port()
    edgekit = Path(sys.executable).parent / "edgekit"
    command = [str(edgekit), "lab", "--dir", str(folder), "--port", str(port)]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        # Ctrl-C must work even when this test runs in a background job (SIGINT ignored
        # there, and an ignored signal stays ignored across exec)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        output = "".join(lines)
        url = re.search(rf"http://127\.0\.0\.1:{port}/lab\?token=(\w+)", output)
        assert url, output
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/status",
            headers={"Authorization": f"token {url.group(1)}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        process.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
        rest, _ = process.communicate(timeout=120)
        output += rest
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        subprocess.run([str(edgekit), "local", "down"], env=env, capture_output=True, timeout=120)
    assert process.returncode == 0, output
    assert "JupyterLab stopped" in output
    assert "keep running" in output and "edgekit local down" in output
    assert "Traceback" not in output
    deadline = time.monotonic() + 10
    while _listening(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _listening(port)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([], ["Nothing of the local backend is running."]),
        (
            [("moto", True), ("greengrass", True), ("mqtt", True)],
            ["moto, greengrass, mqtt;", "make lab", "edgekit local down"],
        ),
        (
            [("moto", True), ("greengrass", True), ("mqtt", True), ("device-a", True)],
            ["and 1 device runtime(s) (device-a)", "make lab", "edgekit local down"],
        ),
        ([("moto", False), ("device-a", False)], ["Nothing of the local backend is running."]),
        (
            [("moto", True), ("mqtt", True), ("device-a", True), ("scheduler", True)],
            ["moto, mqtt, scheduler and 1 device runtime(s) (device-a);"],
        ),
    ],
)
def test_the_end_of_make_demo_says_what_keeps_running_and_how_to_stop_it(
    rows: list[tuple[str, bool]], expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    statuses = [
        ProcessStatus(name, 1 if alive else None, "-", alive, alive) for name, alive in rows
    ]
    monkeypatch.setattr(demo, "status", lambda: statuses)
    text = demo.still_running()
    for part in expected:
        assert part in text, text


def test_make_demo_prints_it_after_the_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "main", lambda argv: 0)
    monkeypatch.setattr(demo, "status", lambda: [ProcessStatus("moto", 1, "-", True, True)])
    assert demo.run() == 0
    assert capsys.readouterr().out.rstrip().endswith("stop the endpoints and devices")
