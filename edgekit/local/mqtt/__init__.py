"""The local backend's MQTT broker: IoT Core's message broker on loopback.

A compact asyncio MQTT 3.1.1 and 5.0 broker (stdlib only). `Broker` runs
in-process (tests, notebooks); ``python -m edgekit.local.mqtt`` runs it as the
detached process `edgekit local up` starts.

Owns: the wire format (``wire``, ``packets``, ``properties``), topic rules (``topics``),
sessions, routing, client connections (``connection``, ``websocket``) and limits.
Must not import any other part of edgekit but ``errors`` and ``files`` (IPC and the
device runtime depend on the broker, never the other way round).
"""

from __future__ import annotations

from edgekit.local.mqtt.broker import Broker, mqtt_ping
from edgekit.local.mqtt.limits import BrokerLimits
from edgekit.local.mqtt.wire import ProtocolError

__all__ = ["Broker", "BrokerLimits", "ProtocolError", "mqtt_ping"]
