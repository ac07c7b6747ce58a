"""Greengrass IPC for the local device runtime: the official awsiot SDK talks to it unchanged.

Owns: the event-stream RPC protocol on a unix socket (`IpcServer`: ``eventstream``,
``rpc``, ``server``), the IPC operations (``handlers``), authorization of them
(``authorization``, ``topics``), local publish/subscribe and the bridge to the MQTT
broker. The device runtime supplies an `IpcHost` (components, tokens, configuration);
``memory_host`` is an in-memory one for tests.

Must not import ``edgekit.local.device`` (the runtime depends on IPC, never the other
way round: `IpcHost` is the only contract), nor anything above the local backend
(``edgekit.clients``, ``deploy``, ``provision``...).
"""

from __future__ import annotations

from edgekit.local.ipc.host import IpcHost
from edgekit.local.ipc.server import IpcServer

__all__ = ["IpcHost", "IpcServer"]
