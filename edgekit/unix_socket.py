"""Unix socket paths: where a private socket may live, and taking over a stale one.

The model agent and the local IPC server both listen on a socket file. Whoever binds
it first is "the server" to its clients, so a socket lives only in a folder no other
user can write: :func:`private_dir_problem` says what is wrong with a folder, and
:func:`user_socket_dir` is this user's own folder for sockets whose natural path is
too long for a socket address. :func:`clear_stale_socket` removes what a dead server
left, never a live server's. Callers raise their own error types from the answers.
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path
from typing import Literal

SocketPathState = Literal["free", "not a socket", "live"]

UNIX_SOCKET_LIMIT = 107
"""sun_path holds 108 bytes including the terminating NUL."""
GRPC_SOCKET_LIMIT = 105
"""gRPC's servers (grpcio 1.85) refuse to bind a unix socket path longer than 105 bytes
("Path name should not have more than 107 characters" counts more than the path)."""
RUNTIME_DIR_ENV = "XDG_RUNTIME_DIR"
TMP_DIR = Path("/tmp")
"""Where the per-user folder goes when XDG_RUNTIME_DIR is not set."""


def fits(path: str | os.PathLike[str], limit: int = UNIX_SOCKET_LIMIT) -> bool:
    """True when ``path`` (made absolute) fits in a unix socket address (``limit`` bytes;
    `GRPC_SOCKET_LIMIT` for a gRPC server's socket)."""
    return len(os.fsencode(os.path.abspath(path))) <= limit


def private_dir_problem(path: Path, *, exact_mode: int | None = None) -> str | None:
    """What makes ``path`` unfit to hold a private socket (None: nothing).

    It must be a real directory (not a symbolic link) owned by this user that no other
    user can write; ``exact_mode``: its permission bits must be exactly that.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "does not exist"
    except OSError as exc:
        return f"cannot be inspected ({exc})"
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if st.st_uid != os.geteuid():
        return f"is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
    if exact_mode is not None and mode != exact_mode:
        return f"has mode {mode:04o}, not {exact_mode:04o}"
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"has mode {mode:04o}: other users can write to it"
    return None


def user_socket_dir() -> Path:
    """This user's folder for sockets: ``$XDG_RUNTIME_DIR/edgekit``, else
    ``/tmp/edgekit-<uid>`` (not created here; see :func:`make_user_socket_dir`)."""
    base = os.environ.get(RUNTIME_DIR_ENV, "")
    return Path(base) / "edgekit" if base else TMP_DIR / f"edgekit-{os.geteuid()}"


def make_user_socket_dir() -> tuple[Path, str | None]:
    """Create :func:`user_socket_dir` (mode 0700) if missing and check it and its
    ``$XDG_RUNTIME_DIR``; the folder and what is wrong with it (None: fit for use)."""
    folder = user_socket_dir()
    base = os.environ.get(RUNTIME_DIR_ENV, "")
    if base:
        problem = private_dir_problem(Path(base))
        if problem is not None:
            return Path(base), problem
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass  # checked below, whoever made it
    except OSError as exc:
        return folder, f"cannot be created ({exc})"
    return folder, private_dir_problem(folder, exact_mode=0o700)


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
