"""Greengrass IPC for the local device runtime: the official awsiot SDK talks to it unchanged.

Owns: the event-stream RPC protocol on a unix socket (`IpcServer`: ``eventstream``,
``rpc``, ``server``), the IPC operations (``handlers``), authorization of them
(``authorization``, ``topics``), local publish/subscribe and the bridge to the MQTT
broker (``mqtt_bridge``) with its spool of messages waiting for the broker, on disk
(``mqtt_spool``, the nucleus' ``mqtt.spooler``), the secret manager
(``secrets``: ``aws.greengrass.SecretManager``'s cloud sync, disk cache and
GetSecretValue) and the component update policy's subscribers and deferrals
(``component_updates``). The device runtime supplies an
`IpcHost` (components, tokens, configuration); ``memory_host`` is an in-memory one for
tests.

Must not import ``edgekit.local.device`` (the runtime depends on IPC, never the other
way round: `IpcHost` is the only contract), nor anything above the local backend
(``edgekit.clients``, ``deploy``, ``provision``...).

Its public API raises `edgekit.errors.LocalBackendError`. ``modeled_errors`` are the
Greengrass IPC error shapes sent to components over the socket, not Python exceptions
for edgekit's callers; the protocol errors of ``eventstream``/``rpc`` and
``mqtt_bridge.MqttBridgeError`` / ``mqtt_spool.SpoolError`` are internal (they end one
connection or one request).
"""

from __future__ import annotations

from edgekit.local.ipc.host import IpcHost
from edgekit.local.ipc.server import IpcServer

__all__ = ["IpcHost", "IpcServer"]
