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


# ---------------------------------------------------------------- the disk spool (item 2)
def _free_port() -> int:
    probe = Broker(host="127.0.0.1", port=0).start()
    port = probe.port
    probe.stop()
    return port


class _Subscriber:
    """A cloud-side paho client that reconnects with a persistent session, as a results
    notebook would: QoS 1 messages published while it is away are kept for it."""

    def __init__(self, endpoint: str, topic: str = "results/#") -> None:
        host, port = endpoint.rsplit(":", 1)
        self.got: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id="cloud-side-spool", clean_session=False
        )
        self.client.on_message = lambda c, u, m: self.got.put(m)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, 1)
        self.client.reconnect_delay_set(0.05, 0.2)
        self.client.connect_async(host, int(port))
        self.client.loop_start()

    def topics(self, n: int, timeout: float = 20) -> list[str]:
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"got {len(out)} of {n} messages: {out}")
            try:
                out.append(self.got.get(timeout=left).topic)
            except queue.Empty:
                continue
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_qos1_messages_spooled_while_the_broker_is_down_survive_a_server_restart(
    sockdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Acknowledged to the component means on disk: a new IPC server (a restarted runtime)
    sends them, oldest first and before anything published after the restart."""
    port = _free_port()
    endpoint = f"127.0.0.1:{port}"
    host = MemoryHost(thing_name="dev1", mqtt_endpoint=endpoint)
    token = host.add_component("com.example.A", access_control=PUBLISH_ANY)
    spool = tmp_path / "spool"
    with IpcServer(
        sockdir / "a.sock", host, mqtt_reconnect_delay=(0.05, 0.2), spool_dir=spool
    ) as server:
        a = _client(server, token, monkeypatch)
        try:
            for i in range(20):
                a.publish_to_iot_core(topic_name=f"results/old/{i}", qos="1", payload=b"x")
            stats = server.mqtt_stats()
            assert (stats["queued"], stats["queued_bytes"], stats["storage"]) == (20, 20, "Disk")
        finally:
            a.close()
    assert list(spool.glob("*.log"))  # on disk, not only in the old process

    broker = Broker(host="127.0.0.1", port=port).start()
    sub = _Subscriber(endpoint)
    try:
        with IpcServer(
            sockdir / "b.sock", host, mqtt_reconnect_delay=(0.05, 0.2), spool_dir=spool
        ) as server:
            assert server.mqtt_stats()["replayed"] == 20
            b = _client(server, token, monkeypatch)
            try:
                b.publish_to_iot_core(topic_name="results/new/0", qos="1", payload=b"y")
                topics = sub.topics(21)
            finally:
                b.close()
            assert topics == [f"results/old/{i}" for i in range(20)] + ["results/new/0"]
            deadline = time.monotonic() + 10
            while server.mqtt_stats()["queued"] and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server.mqtt_stats()["queued"] == 0  # PUBACKs removed them
        assert not list(spool.glob("*.log"))
    finally:
        sub.close()
        broker.stop()


def test_a_full_spool_refuses_with_an_error_naming_the_limit(
    sockdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from awsiot.greengrasscoreipc.model import ServiceError

    host = MemoryHost(thing_name="dev1", mqtt_endpoint=f"127.0.0.1:{_free_port()}")
    host.add_component(
        "aws.greengrass.Nucleus", configuration={"mqtt": {"spooler": {"maxSizeInBytes": 100}}}
    )
    token = host.add_component("com.example.A", access_control=PUBLISH_ANY)
    with IpcServer(sockdir / "f.sock", host, spool_dir=tmp_path / "spool") as server:
        a = _client(server, token, monkeypatch)
        try:
            a.publish_to_iot_core(topic_name="results/a/1", qos="1", payload=b"x" * 60)
            with pytest.raises(ServiceError) as refused:
                a.publish_to_iot_core(topic_name="results/a/2", qos="1", payload=b"x" * 60)
            text = str(refused.value.message)
            assert "results/a/2" in text and "maxSizeInBytes" in text and "100 bytes" in text
            with pytest.raises(ServiceError) as offline:  # QoS 0 is not spooled
                a.publish_to_iot_core(topic_name="results/a/3", qos="0", payload=b"x")
            assert "not connected" in str(offline.value.message)
            stats = server.mqtt_stats()
            assert (stats["queued"], stats["max_bytes"], stats["refused_full"]) == (1, 100, 1)
        finally:
            a.close()


def test_keep_qos0_when_offline_spools_qos0_in_memory(
    sockdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _free_port()
    endpoint = f"127.0.0.1:{port}"
    host = MemoryHost(thing_name="dev1", mqtt_endpoint=endpoint)
    host.add_component(
        "aws.greengrass.Nucleus",
        configuration={"mqtt": {"spooler": {"keepQos0WhenOffline": True, "storageType": "Memory"}}},
    )
    token = host.add_component("com.example.A", access_control=PUBLISH_ANY)
    with IpcServer(sockdir / "q.sock", host, mqtt_reconnect_delay=(0.05, 0.2)) as server:
        a = _client(server, token, monkeypatch)
        try:
            a.publish_to_iot_core(topic_name="results/q0", qos="0", payload=b"0")
            a.publish_to_iot_core(topic_name="results/q1", qos="1", payload=b"1")
            assert server.mqtt_stats()["storage"] == "Memory"
            broker = Broker(host="127.0.0.1", port=port).start()
            sub = _Subscriber(endpoint)
            try:
                # the subscriber may connect after the bridge: the QoS 0 message may go first
                # to nobody, so only the QoS 1 one is awaited; both left the spool
                seen: list[str] = []
                while "results/q1" not in seen:
                    seen += sub.topics(1)
                assert seen in (["results/q1"], ["results/q0", "results/q1"])  # in order
                deadline = time.monotonic() + 10
                while server.mqtt_stats()["queued"] and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert server.mqtt_stats()["queued"] == 0
            finally:
                sub.close()
                broker.stop()
        finally:
            a.close()


def test_a_new_max_size_applies_at_once(sockdir: Path, tmp_path: Path) -> None:
    """As on the nucleus, a deployment changing mqtt.spooler.maxSizeInBytes needs no restart."""
    host = MemoryHost(thing_name="dev1", mqtt_endpoint=f"127.0.0.1:{_free_port()}")
    host.add_component("aws.greengrass.Nucleus", configuration={})
    with IpcServer(sockdir / "m.sock", host, spool_dir=tmp_path / "spool") as server:
        assert server.mqtt_stats()["max_bytes"] == 2_621_440
        host.update_configuration(
            "aws.greengrass.Nucleus", ["mqtt"], {"spooler": {"maxSizeInBytes": 4096}}, time.time()
        )
        assert server.mqtt_stats()["max_bytes"] == 4096
        host.update_configuration(
            "aws.greengrass.Nucleus", ["other"], {"x": 1}, time.time()
        )  # an unrelated key changes nothing
        assert server.mqtt_stats()["max_bytes"] == 4096
