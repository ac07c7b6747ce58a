"""Where a device's model agent listens when its configuration leaves SocketPath empty.

Whoever binds the agent's socket first is "the agent" to the inference app, which then
runs whatever that process says it verified; so the socket lives in a folder only the
agent's user can write, never under a name another local user can take first:

- ``<agent work folder>/agent.sock`` when that path fits the agent's gRPC unix socket
  address (105 bytes, `GRPC_SOCKET_LIMIT`); the work folder is the component's own
  (``{work:path}``);
- otherwise ``<per-user folder>/agent-<sha1(work folder)[:12]>.sock``, the per-user folder
  being ``$XDG_RUNTIME_DIR/edgekit`` when ``XDG_RUNTIME_DIR`` is set, else
  ``/tmp/edgekit-<uid>``, created with mode 0700 if missing. The hash keeps two device
  roots on one machine (two local homes, parallel test runs) apart.

Every folder is checked with ``lstat`` before use: a real directory (not a symlink),
owned by this user, writable by nobody else (the per-user folder: exactly mode 0700).
Anything else is an :class:`~edgekit.errors.AgentError` naming the folder and what is
wrong with it; there is no fallback. The agent component's Run script and the inference
app both call :func:`socket_for_work`, so they always agree.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from edgekit.errors import AgentError
from edgekit.unix_socket import (
    GRPC_SOCKET_LIMIT,
    RUNTIME_DIR_ENV,
    UNIX_SOCKET_LIMIT,
    fits,
    make_user_socket_dir,
    private_dir_problem,
)

SOCKET_NAME = "agent.sock"
__all__ = ["GRPC_SOCKET_LIMIT", "SOCKET_NAME", "UNIX_SOCKET_LIMIT", "check_private_dir",
           "default_socket", "fits", "socket_for_work", "user_runtime_dir"]  # fmt: skip


def _refuse(path: Path, problem: str) -> AgentError:
    return AgentError(
        f"{path} {problem}; another user could put an impostor agent socket there, so "
        "the model agent does not use it. Remove it (or fix its owner and mode), or set "
        "the agent's SocketPath to a path in a folder only its user can write"
    )


def check_private_dir(path: Path, *, exact_mode: int | None = None) -> None:
    """AgentError unless ``path`` is a real directory owned by this user that no other user
    can write (``exact_mode``: its permission bits must be exactly that)."""
    problem = private_dir_problem(path, exact_mode=exact_mode)
    if problem == "does not exist":
        raise AgentError(f"{path}: the agent's socket folder does not exist")
    if problem is not None:
        raise _refuse(path, problem)


def user_runtime_dir() -> Path:
    """This user's private folder for sockets (created 0700 if missing, then checked)."""
    folder, problem = make_user_socket_dir()
    if problem is not None:
        raise _refuse(folder, problem)
    return folder


def socket_for_work(agent_work_path: str) -> str:
    """The agent's socket for the agent component whose work folder is ``agent_work_path``."""
    work = Path(os.path.abspath(agent_work_path))
    in_work = work / SOCKET_NAME
    if fits(in_work, GRPC_SOCKET_LIMIT):
        check_private_dir(work)
        return str(in_work)
    digest = hashlib.sha1(str(agent_work_path).encode("utf-8")).hexdigest()[:12]
    path = user_runtime_dir() / f"agent-{digest}.sock"
    if not fits(path, GRPC_SOCKET_LIMIT):
        raise AgentError(
            f"{path}: longer than {GRPC_SOCKET_LIMIT} bytes, gRPC's unix socket limit; set "
            f"{RUNTIME_DIR_ENV} to a shorter folder or the agent's SocketPath to a short path"
        )
    return str(path)


def default_socket() -> str:
    """``edgekit agent serve`` / ``edgekit agent list`` without ``--socket``."""
    return str(user_runtime_dir() / SOCKET_NAME)


if __name__ == "__main__":  # used by the agent component's Run script
    import sys

    try:
        print(socket_for_work(sys.argv[1]))
    except AgentError as exc:
        print(f"edgekit agent: {exc}", file=sys.stderr)
        sys.exit(1)
