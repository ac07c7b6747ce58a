"""How edgekit starts and stops Jupyter kernels, so a successful run prints only what matters.

1. **Transport.** A kernel that jupyter_client starts with its default TCP transport logs
   ``[IPKernelApp] WARNING | Kernel is running over TCP without encryption`` on every start
   (once per notebook of a pipeline run). The kernels papermill runs live on this machine,
   so they talk over Unix-domain sockets (``transport = "ipc"``) instead: nothing listens on
   a port, the socket files sit in Jupyter's private runtime folder (mode 0700) and
   jupyter_client removes them when the kernel stops. Windows has no IPC transport: the
   kernels keep TCP there. (JupyterLab's kernels, `edgekit lab`, keep TCP on loopback: their
   log goes to a file, not to the terminal.)
2. **Shutdown.** jupyter_client's ``shutdown_kernel`` first sends SIGINT to the kernel's
   whole process group (to stop a cell that may still run), then the shutdown request. A
   papermill run shuts its kernel down only after the last cell finished, so that SIGINT
   can only hit work that is not a cell: a message the kernel is still handling (it logs
   ``[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel``) or a process a cell
   started in the kernel's group. `NoInterruptKernelManager` skips it during shutdown; the
   shutdown request, then SIGTERM and SIGKILL if the kernel hangs, stay as they are, and an
   interrupt at any other time (nbclient's cell timeout) still interrupts.

Owns: the kernel manager settings (keyword arguments for papermill/nbclient). Imports
nothing of edgekit; nothing but `pipeline` uses it.
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.paths import jupyter_runtime_dir
from traitlets.config import Config

#: Unix-domain socket paths are limited to about 104 bytes (macOS) or 108 (Linux).
_MAX_SOCKET_PREFIX = 90


def ipc_supported() -> bool:
    """Whether kernels can use the IPC transport here (not on Windows)."""
    return sys.platform != "win32"


def _socket_folder() -> Path:
    """Jupyter's runtime folder (private), or the temp folder when its path is too long."""
    runtime = Path(jupyter_runtime_dir())
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    if len(str(runtime)) + 40 <= _MAX_SOCKET_PREFIX:
        return runtime
    return Path(tempfile.gettempdir())


def kernel_config() -> Config:
    """nbclient's kernel manager settings for one kernel (papermill's ``config=``).

    Each call names new socket files (``<runtime>/edgekit-kernel-<id>-<port>``), so
    kernels started at the same time, in the same working folder too, never share them.
    """
    if not ipc_supported():
        return Config()
    prefix = _socket_folder() / f"edgekit-kernel-{uuid.uuid4().hex[:12]}"
    return Config({"KernelManager": {"transport": "ipc", "ip": str(prefix)}})


class NoInterruptKernelManager(AsyncKernelManager):
    """nbclient's kernel manager, without the SIGINT before a shutdown (see the module doc)."""

    async def _async_interrupt_kernel(self) -> None:
        if self.shutting_down:  # set by shutdown_kernel() before it interrupts
            return
        await super()._async_interrupt_kernel()


def papermill_options() -> dict[str, object]:
    """Keyword arguments for ``papermill.execute_notebook``: a quiet kernel start and stop."""
    return {"config": kernel_config(), "kernel_manager_class": NoInterruptKernelManager}
