"""The local MQTT broker, exercised with real paho-mqtt (and awscrt) clients on loopback."""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

paho = pytest.importorskip("paho.mqtt.client")
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from edgekit.local import process  # noqa: E402
from edgekit.local.mqtt import Broker, mqtt_ping  # noqa: E402

pytestmark = pytest.mark.integration


class Collector:
    """A connected paho client that records what it receives."""

    def __init__(self, port: int, client_id: str | None = None) -> None:
        self.messages: list[tuple[str, bytes, int, bool]] = []
        self.cond = threading.Condition()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or f"t-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_message = self._on_message
        connected = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: connected.set()
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        assert connected.wait(5), "no CONNACK from the broker"

    def _on_message(self, client: object, userdata: object, msg: paho.MQTTMessage) -> None:
        with self.cond:
            self.messages.append((msg.topic, msg.payload, msg.qos, bool(msg.retain)))
            self.cond.notify_all()

    def subscribe(self, *filters: tuple[str, int]) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda c, u, mid, codes, p: done.set()
        self.client.subscribe(list(filters))
        assert done.wait(5), "no SUBACK"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[str, bytes, int, bool]]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker() -> Iterator[Broker]:
    b = Broker(port=0).start()
    yield b
    b.stop()


@pytest.fixture
def clients(broker: Broker) -> Iterator[list[Collector]]:
    made: list[Collector] = []
    yield made
    for c in made:
        c.close()


def _client(broker: Broker, made: list[Collector], client_id: str | None = None) -> Collector:
    c = Collector(broker.port, client_id)
    made.append(c)
    return c


def test_port_zero_picks_a_port_and_answers_connect(broker: Broker) -> None:
    assert broker.port > 0
    assert broker.endpoint == f"127.0.0.1:{broker.port}"
    assert mqtt_ping("127.0.0.1", broker.port)


def test_qos0_and_qos1_with_wildcards(broker: Broker, clients: list[Collector]) -> None:
    sub = _client(broker, clients)
    sub.subscribe(("plant/+/temp", 1), ("results/#", 1))
    pub = _client(broker, clients)
    pub.client.publish("plant/line1/temp", b"q0", qos=0)
    pub.client.publish("plant/line1/humidity", b"not-matched", qos=1)
    pub.client.publish("plant/line1/x/temp", b"too-deep", qos=1)
    pub.client.publish("results/a/b/c", b"q1", qos=1).wait_for_publish(5)
    got = sub.wait_for(2)
    time.sleep(0.1)  # anything unmatched would have arrived by now
    assert sorted((t, p) for t, p, _, _ in sub.messages) == [
        ("plant/line1/temp", b"q0"),
        ("results/a/b/c", b"q1"),
    ]
    assert {t: q for t, _, q, _ in got}["results/a/b/c"] == 1


def test_200_qos1_messages_arrive_in_order(broker: Broker, clients: list[Collector]) -> None:
    sub = _client(broker, clients)
    sub.subscribe(("seq/#", 1))
    pub = _client(broker, clients)
    infos = [pub.client.publish("seq/n", str(i).encode(), qos=1) for i in range(200)]
    for info in infos:
        info.wait_for_publish(5)  # PUBACK from the broker for every message
    got = sub.wait_for(200)
    assert [int(p) for _, p, _, _ in got] == list(range(200))


def test_retained_message_reaches_late_subscriber(broker: Broker, clients: list[Collector]) -> None:
    pub = _client(broker, clients)
    pub.client.publish("config/model", b"v1", qos=1, retain=True).wait_for_publish(5)
    pub.client.publish("config/model", b"v2", qos=1, retain=True).wait_for_publish(5)
    late = _client(broker, clients)
    late.subscribe(("config/#", 1))
    got = late.wait_for(1)
    assert got[0][:2] == ("config/model", b"v2")
    assert got[0][3] is True  # delivered with the retain flag
    assert len(late.messages) == 1


def test_a_client_dropping_does_not_disturb_others(
    broker: Broker, clients: list[Collector]
) -> None:
    steady = _client(broker, clients)
    steady.subscribe(("drop/#", 1))
    flaky = _client(broker, clients)
    flaky.subscribe(("drop/#", 1))
    flaky.client.loop_stop()
    flaky.client.socket().close()  # abrupt: no DISCONNECT packet
    clients.remove(flaky)
    pub = _client(broker, clients)
    for i in range(20):
        pub.client.publish("drop/x", str(i).encode(), qos=1)
    got = steady.wait_for(20)
    assert [int(p) for _, p, _, _ in got] == list(range(20))
    assert mqtt_ping("127.0.0.1", broker.port)


def test_stop_closes_the_listener() -> None:
    b = Broker(port=0).start()
    port = b.port
    b.stop()
    b.stop()  # idempotent
    assert not mqtt_ping("127.0.0.1", port, timeout=0.5)


def test_awscrt_mqtt3_client_round_trip(broker: Broker) -> None:
    awscrt_mqtt = pytest.importorskip("awscrt.mqtt")
    from awscrt import io

    bootstrap = io.ClientBootstrap(
        io.EventLoopGroup(1), io.DefaultHostResolver(io.EventLoopGroup(1))
    )
    conn = awscrt_mqtt.Connection(
        client=awscrt_mqtt.Client(bootstrap, None),
        host_name="127.0.0.1",
        port=broker.port,
        client_id=f"crt-{uuid.uuid4().hex[:8]}",
        clean_session=True,
        keep_alive_secs=30,
    )
    conn.connect().result(5)
    received: list[tuple[str, bytes]] = []
    arrived = threading.Event()

    def on_message(topic: str, payload: bytes, **kwargs: object) -> None:
        received.append((topic, payload))
        arrived.set()

    future, _ = conn.subscribe("crt/+", awscrt_mqtt.QoS.AT_LEAST_ONCE, on_message)
    future.result(5)
    future, _ = conn.publish("crt/hello", b"from awscrt", awscrt_mqtt.QoS.AT_LEAST_ONCE)
    future.result(5)
    assert arrived.wait(5)
    assert received == [("crt/hello", b"from awscrt")]
    conn.disconnect().result(5)


def test_module_entry_point_runs_detached(tmp_path: Path) -> None:
    port_file = tmp_path / "mqtt.port"

    def ready() -> bool:
        return port_file.exists() and mqtt_ping("127.0.0.1", int(port_file.read_text()))

    pid = process.start_process(
        tmp_path,
        "mqtt",
        [sys.executable, "-m", "edgekit.local.mqtt", "--port", "0", "--port-file", str(port_file)],
        ready=ready,
        timeout=20,
    )
    try:
        assert process.running(tmp_path) == {"mqtt": pid}
        port = int(port_file.read_text())
        c = Collector(port)
        c.subscribe(("a/#", 0))
        c.client.publish("a/b", b"x", qos=0)
        assert c.wait_for(1)[0][:2] == ("a/b", b"x")
        c.close()
    finally:
        assert process.stop_process(tmp_path, "mqtt")
    assert not process.is_running(tmp_path, "mqtt")
    assert "listening on 127.0.0.1:" in (tmp_path / "logs" / "mqtt.log").read_text()
