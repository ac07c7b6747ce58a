"""``make lab`` / ``edgekit lab``: JupyterLab from this environment, on the demo's run folder.

`make demo` leaves its executed notebooks in ``runs/latest`` and the local endpoints and
devices running. `start_lab` starts JupyterLab with this interpreter (so its kernels
import this edgekit) bound to ``127.0.0.1`` only, in that folder, with a fresh token, and
waits until the server answers; `LabServer.stop` shuts it down with its kernels. The
server runs in its own session, so Ctrl-C in the terminal reaches only the command, which
then stops the server itself (JupyterLab would otherwise ask "Shut down this Jupyter
server (y/[n])?"). The local backend is not JupyterLab's: `edgekit lab` brings it up
before and leaves it running after; `edgekit local down` stops it.

Owns: choosing the folder, starting, waiting for and stopping that JupyterLab server.
An entry point like `demo`: nothing in edgekit imports it; it must not import `cli`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import ConfigurationError, LabError
from edgekit.files import log_tail
from edgekit.resources import write_notebooks
from edgekit.settings import LOCAL_HOME_ENV, Settings

DEFAULT_PORT = 8888
#: Where `open_folder` puts fresh notebooks when no demo run exists yet.
NOTEBOOKS_FOLDER = "notebooks"
LOG_NAME = "jupyterlab.log"
_POLL_S = 0.25


def jupyterlab_available() -> bool:
    """Whether JupyterLab is installed in this environment (the ``notebook`` extra)."""
    return importlib.util.find_spec("jupyterlab") is not None


def lab_folder(runs_root: str | os.PathLike[str] = "runs") -> Path:
    """The folder to open: the newest demo run (``runs_root/latest``), resolved.

    Without a run yet, ``runs_root/notebooks`` with the notebooks shipped with edgekit
    (written once; edited ones are kept), so `make lab` before `make demo` works too.
    """
    root = Path(runs_root)
    latest = root / "latest"
    if latest.is_dir():
        return latest.resolve()
    folder = root / NOTEBOOKS_FOLDER
    write_notebooks(folder)
    return folder.resolve()


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@dataclass
class LabServer:
    """A running JupyterLab server started by `start_lab`."""

    process: subprocess.Popen[bytes]
    folder: Path
    port: int
    token: str
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """What to open in a browser (the token logs the browser in)."""
        return f"{self.base_url}/lab?token={self.token}"

    def api(self, path: str, *, method: str = "GET", timeout: float = 5.0) -> bytes:
        """A request to the server's REST API with the token (e.g. ``/api/status``)."""
        request = urllib.request.Request(
            self.base_url + path,
            method=method,
            headers={"Authorization": f"token {self.token}"},
            data=b"{}" if method == "POST" else None,
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bytes(response.read())

    def answers(self) -> bool:
        """Whether the server answers ``/api/status`` now."""
        try:
            self.api("/api/status", timeout=2.0)
        except (urllib.error.URLError, OSError):
            return False
        return True

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self) -> int:
        """Until the server exits (say, File > Shut Down in JupyterLab); its exit code."""
        return self.process.wait()

    def stop(self, timeout: float = 30.0) -> int:
        """Shut the server down (it shuts its kernels down first); kill it if it hangs.

        SIGTERM is JupyterLab's own clean stop: kernels, terminals, its server-info
        file. Returns the exit code; idempotent.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return self.kill()
        return int(self.process.returncode)

    def kill(self) -> int:
        """Kill the server at once (SIGKILL to its process group); its exit code.

        Its kernels run in sessions of their own and notice their parent is gone
        (``JPY_PARENT_PID``): they exit within a second or so.
        """
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        return int(self.process.wait())


def _command(folder: Path, port: int) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={folder}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--ServerApp.allow_root=True")  # containers and CI machines run as root
    return command


def start_lab(
    settings: Settings,
    folder: str | os.PathLike[str],
    *,
    port: int = DEFAULT_PORT,
    timeout: float = 120.0,
) -> LabServer:
    """Start JupyterLab on ``folder`` at ``127.0.0.1:port`` (0: any free port) and wait for it.

    Its kernels inherit this environment plus ``EDGEKIT_LOCAL_HOME`` (``settings.home``),
    so the notebooks find the local backend `edgekit lab` brought up, and this
    interpreter's ``bin`` first on ``PATH`` (``!edgekit`` in a cell is this edgekit). The
    server's output goes to ``<local home>/logs/jupyterlab.log``. Raises
    ConfigurationError when JupyterLab is not installed, the folder is missing or the port
    is taken, and LabError (with the log's last lines) when the server does not come up.
    """
    if not jupyterlab_available():
        raise ConfigurationError(
            "JupyterLab is not installed in this environment; install the notebook extra "
            '(`pip install -e ".[notebook]"` in a checkout, `make demo` does it; '
            '`pip install "edgekit-inspection[notebook]"` otherwise)'
        )
    root = Path(folder).resolve()
    if not root.is_dir():
        raise ConfigurationError(f"{root}: no such folder to open in JupyterLab")
    if port == 0:
        port = free_port()
    elif _port_in_use(port):
        raise ConfigurationError(
            f"port {port} on 127.0.0.1 is in use (another JupyterLab?); pass --port N, or "
            "--port 0 for any free port"
        )
    log = settings.home / "logs" / LOG_NAME
    log.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(24)
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ)
    env.update(
        # the token through the environment: a command-line argument is visible in `ps`
        JUPYTER_TOKEN=token,
        PATH=os.pathsep.join([bin_dir, env.get("PATH", "")]),
        **{LOCAL_HOME_ENV: str(settings.home)},
    )
    offset = log.stat().st_size if log.is_file() else 0  # this start's lines, for errors
    with log.open("ab") as out:
        process = subprocess.Popen(
            _command(root, port),
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches `edgekit lab`, which stops it
        )
    server = LabServer(process, root, port, token, log)
    deadline = time.monotonic() + timeout
    while not server.answers():
        if not server.running():
            raise LabError(
                f"JupyterLab exited with code {process.returncode} before answering on "
                f"{server.base_url}; its log {log} ends with:\n{log_tail(log, offset=offset)}"
            )
        if time.monotonic() > deadline:
            server.stop()
            raise LabError(
                f"JupyterLab did not answer on {server.base_url} within {timeout:.0f} s (it "
                f"was stopped); its log {log} ends with:\n{log_tail(log, offset=offset)}"
            )
        time.sleep(_POLL_S)
    return server


__all__ = [
    "DEFAULT_PORT",
    "LabServer",
    "free_port",
    "jupyterlab_available",
    "lab_folder",
    "start_lab",
]
