"""Taking over a unix socket path: remove what a dead server left, never a live server's.

The model agent and the local IPC server both listen on a socket file at a fixed
path; each raises its own error type from what :func:`clear_stale_socket` finds.
"""

from __future__ import annotations

import socket
import stat
from pathlib import Path
from typing import Literal

SocketPathState = Literal["free", "not a socket", "live"]


def clear_stale_socket(path: Path, probe_timeout: float | None = None) -> SocketPathState:
    """Make ``path`` free for a new server if nobody serves on it.

    ``"free"``: nothing there, or a socket nobody accepts on (removed). ``"not a socket"``:
    some other file, left alone. ``"live"``: a server answered, left alone.
    """
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return "free"
    if not stat.S_ISSOCK(mode):
        return "not a socket"
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if probe_timeout is not None:
            probe.settimeout(probe_timeout)
        probe.connect(str(path))
    except OSError:
        path.unlink()  # left behind by a server that died: safe to replace
        return "free"
    finally:
        probe.close()
    return "live"
