"""Greengrass IPC for the local device runtime: the official awsiot SDK talks to it unchanged.

`IpcServer` serves the event-stream RPC protocol on a unix socket; the device
runtime supplies an `IpcHost` (components, tokens, configuration).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgekit.local.ipc.host import IpcHost
    from edgekit.local.ipc.server import IpcServer

__all__ = ["IpcHost", "IpcServer"]


def __getattr__(name: str) -> Any:
    # Lazy: the device runtime imports `host` without pulling in the server.
    if name == "IpcServer":
        from edgekit.local.ipc.server import IpcServer

        return IpcServer
    if name == "IpcHost":
        from edgekit.local.ipc.host import IpcHost

        return IpcHost
    raise AttributeError(name)
