"""The local backend's MQTT broker: IoT Core's message broker on loopback.

A compact asyncio MQTT 3.1.1 and 5.0 broker (stdlib, and botocore's SigV4 signer to
check websocket upgrades, ``sigv4``). `Broker` runs
in-process (tests, notebooks); ``python -m edgekit.local.mqtt`` runs it as the
detached process `edgekit local up` starts.

Owns: the wire format (``wire``, ``packets``, ``properties``), topic rules (``topics``),
sessions, routing, client connections (``connection``, ``websocket``, ``sigv4``), limits
and the counters of what it drops or refuses (``stats``, `Broker.stats`), and the
durable state that survives a crash (``store``, ``journal``, ``persistence``).
Must not import any other part of edgekit but ``errors``, ``files`` and ``lazy`` (IPC and the
device runtime depend on the broker, never the other way round).

Its public API raises `edgekit.errors.LocalBackendError`. ``wire.ProtocolError`` and its
subclasses (``MalformedPacket``, ``websocket.WebSocketError``...) are internal: they
close the one connection that broke the protocol and never reach a caller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgekit.lazy import lazy_attributes

if TYPE_CHECKING:  # pragma: no cover
    from edgekit.local.mqtt.broker import Broker, mqtt_ping
    from edgekit.local.mqtt.limits import BrokerLimits

# Loaded on first use: a device runtime needs only ``topics``, and the broker's server
# loads botocore (``sigv4``), tens of MB for the runtime's whole life.
_LAZY = {
    "Broker": "edgekit.local.mqtt.broker",
    "mqtt_ping": "edgekit.local.mqtt.broker",
    "BrokerLimits": "edgekit.local.mqtt.limits",
}


__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = ["Broker", "BrokerLimits", "mqtt_ping"]
