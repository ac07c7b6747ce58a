"""Who is at the other end of the agent's unix sockets: the checks a client makes before it
trusts an answer (the agent runs models, so only this user's or root's process may be it).

Must not import any other edgekit module but :mod:`edgekit.agent.status`.
"""

from __future__ import annotations

import os
import socket
import struct

from edgekit.agent.status import AgentStatusError


def listening(path: str) -> bool:
    """Something accepts connections on unix socket ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(5.0)
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def check_peer(path: str, *, method: str = "") -> bool:
    """PERMISSION_DENIED unless the process listening on unix socket ``path`` runs as this
    user or root; True when checked. False when nobody listens (the call itself reports
    UNAVAILABLE) or there is no SO_PEERCRED (not Linux: the socket's folder is the guard)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(5.0)
        try:
            probe.connect(path)
        except OSError:
            return False
        check_connected_peer(probe, path, method=method)
    finally:
        probe.close()
    return True


def check_connected_peer(sock: socket.socket, path: str, *, method: str = "") -> None:
    """PERMISSION_DENIED unless the process at the other end of ``sock`` (connected to
    ``path``) runs as this user or root (:func:`check_peer` on a connection made)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return
    raw = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", raw)
    me = os.geteuid()
    if uid not in (me, 0):
        raise AgentStatusError(
            "PERMISSION_DENIED",
            f"{path}: the process listening there (pid {pid}) runs as uid {uid}, not as this "
            f"user (uid {me}) or root, so it is not this device's model agent; stop it, "
            "remove the socket and restart the agent component",
            method=method,
        )
