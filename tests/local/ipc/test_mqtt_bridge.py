"""The IPC server's MQTT bridge when the broker refuses a message (issue 12, item 1).

A broker that will not take a message (here: one larger than its packet limit, so it
drops the connection, as a 1 MiB IoT Core limit or a stricter broker would) used to
wedge the bridge: paho resent that message first on every reconnect, and every
component's IoT Core traffic stopped. Now the refused message is retried a bounded
number of times, dropped, counted in `MqttBridge.stats()` and logged with its topic,
and the other messages keep flowing.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("awsiot.greengrasscoreipc")

import paho.mqtt.client as paho  # noqa: E402
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2  # noqa: E402

from edgekit.local.ipc.memory_host import MemoryHost  # noqa: E402
from edgekit.local.ipc.mqtt_bridge import DEFAULT_MAX_PUBLISH_ATTEMPTS  # noqa: E402
from edgekit.local.ipc.server import IpcServer  # noqa: E402
from edgekit.local.mqtt import Broker  # noqa: E402
from edgekit.local.mqtt.limits import BrokerLimits  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SOCKET_ENV = "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"
PUBLISH_ANY = {
    "aws.greengrass.ipc.mqttproxy": {
        "p": {"operations": ["aws.greengrass#PublishToIoTCore"], "resources": ["results/#"]}
    }
}
BROKER_LIMIT = 64 * 1024  # below IoT Core's 128 KiB, so the IPC check lets the message through


@pytest.fixture
def small_broker() -> Iterator[Broker]:
    b = Broker(host="127.0.0.1", port=0, limits=BrokerLimits(max_packet_size=BROKER_LIMIT)).start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def subscriber(small_broker: Broker) -> Iterator[queue.Queue[paho.MQTTMessage]]:
    got: queue.Queue[paho.MQTTMessage] = queue.Queue()
    subacks: queue.Queue[int] = queue.Queue()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="cloud-side")
    client.on_message = lambda c, u, m: got.put(m)
    client.on_subscribe = lambda c, u, mid, rc, p: subacks.put(mid)
    client.connect(small_broker.host, small_broker.port)
    client.loop_start()
    _, mid = client.subscribe("results/#", 1)
    assert subacks.get(timeout=5) == mid
    yield got
    client.disconnect()
    client.loop_stop()


def _client(server: IpcServer, token: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv(SOCKET_ENV, str(server.socket_path))
    monkeypatch.setenv("SVCUID", token)
    return GreengrassCoreIPCClientV2()


def _collect(got: queue.Queue[paho.MQTTMessage], n: int, timeout: float) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    deadline = time.monotonic() + timeout
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            m = got.get(timeout=left)
        except queue.Empty:
            break
        out[m.topic] = m.payload
    return out


def test_a_message_the_broker_refuses_is_dropped_and_the_queue_keeps_flowing(
    small_broker: Broker,
    subscriber: queue.Queue[paho.MQTTMessage],
    sockdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = MemoryHost(thing_name="dev1", mqtt_endpoint=small_broker.endpoint)
    token_a = host.add_component("com.example.A", access_control=PUBLISH_ANY)
    token_b = host.add_component("com.example.B", access_control=PUBLISH_ANY)
    caplog.set_level(logging.WARNING, logger="edgekit.local.ipc.mqtt_bridge")
    with IpcServer(sockdir / "ipc.sock", host, mqtt_reconnect_delay=(0.05, 0.2)) as server:
        bridge = server.bridge
        assert bridge is not None and bridge.wait_connected(5)
        a = _client(server, token_a, monkeypatch)
        b = _client(server, token_b, monkeypatch)
        try:
            a.publish_to_iot_core(topic_name="results/a/before", qos="1", payload=b"1")
            assert _collect(subscriber, 1, 5) == {"results/a/before": b"1"}

            # Under the IPC limit, over the broker's: the broker drops the bridge's connection.
            a.publish_to_iot_core(
                topic_name="results/a/refused", qos="1", payload=b"x" * (BROKER_LIMIT + 1)
            )
            # Later publishes of the same and another component still arrive.
            a.publish_to_iot_core(topic_name="results/a/after", qos="1", payload=b"2")
            b.publish_to_iot_core(topic_name="results/b/after", qos="1", payload=b"3")
            got = _collect(subscriber, 2, 20)
            assert got == {"results/a/after": b"2", "results/b/after": b"3"}

            # ...and keep arriving (the bridge is not stuck reconnecting).
            for i in range(5):
                b.publish_to_iot_core(topic_name=f"results/b/{i}", qos="1", payload=b"%d" % i)
            assert len(_collect(subscriber, 5, 10)) == 5

            deadline = time.monotonic() + 5  # the last PUBACK may still be on its way
            while bridge.stats()["queued"] and time.monotonic() < deadline:
                time.sleep(0.05)
            stats = server.mqtt_stats()
            assert stats == bridge.stats()
            assert stats["dropped"] == 1
            assert stats["queued"] == 0
            assert 1 <= stats["refusals"] <= DEFAULT_MAX_PUBLISH_ATTEMPTS
            assert stats["connected"] is True
            reconnects = stats["reconnects"]
            time.sleep(0.5)
            assert bridge.stats()["reconnects"] == reconnects  # no reconnect loop
        finally:
            a.close()
            b.close()
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert any("results/a/refused" in m for m in dropped), dropped


def test_a_refused_message_queued_while_offline_is_dropped_too(
    small_broker: Broker,
    subscriber: queue.Queue[paho.MQTTMessage],
    sockdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Spooled while the broker was away, the refused message must not wedge the reconnect."""
    host = MemoryHost(thing_name="dev1", mqtt_endpoint=small_broker.endpoint)
    token = host.add_component("com.example.A", access_control=PUBLISH_ANY)
    with IpcServer(sockdir / "ipc.sock", host, mqtt_reconnect_delay=(0.05, 0.2)) as server:
        bridge = server.bridge
        assert bridge is not None and bridge.wait_connected(5)
        a = _client(server, token, monkeypatch)
        try:
            bridge.stop()  # offline: QoS 1 messages are queued
            assert not bridge.connected
            a.publish_to_iot_core(topic_name="results/a/1", qos="1", payload=b"1")
            a.publish_to_iot_core(
                topic_name="results/a/refused", qos="1", payload=b"x" * (BROKER_LIMIT + 1)
            )
            a.publish_to_iot_core(topic_name="results/a/2", qos="1", payload=b"2")
            assert bridge.stats()["queued"] == 3
            bridge.start()
            got = _collect(subscriber, 2, 20)
            assert got == {"results/a/1": b"1", "results/a/2": b"2"}
            assert server.mqtt_stats()["dropped"] == 1
        finally:
            a.close()


def test_max_publish_attempts_must_be_positive() -> None:
    from edgekit.errors import LocalBackendError
    from edgekit.local.ipc.mqtt_bridge import MqttBridge

    with pytest.raises(LocalBackendError, match="max_publish_attempts"):
        MqttBridge("127.0.0.1:1883", "x", max_publish_attempts=0)


def test_no_broker_means_no_mqtt_stats(sockdir: Path) -> None:
    with IpcServer(sockdir / "nb.sock", MemoryHost(mqtt_endpoint=None)) as server:
        assert server.mqtt_stats() == {}
