"""The local backend's MQTT broker: IoT Core's message broker on loopback.

`Broker` runs in-process (tests, notebooks); ``python -m edgekit.local.mqtt``
runs it as the detached process `edgekit local up` starts.
"""

from __future__ import annotations

from edgekit.local.mqtt.broker import Broker, broker_config, mqtt_ping

__all__ = ["Broker", "broker_config", "mqtt_ping"]
