"""collect() and LiveCollector end to end: a real MQTT broker on loopback, paho publishing."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import paho.mqtt.client as paho
import pytest

from edgekit.errors import ConfigurationError
from edgekit.results import LiveCollector, MqttError, ResultsTable, collect, subscriber_for
from edgekit.results.local import PahoSubscriber, parse_endpoint
from edgekit.results.subscriber import OnMessage
from edgekit.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TOPIC = "qualityinspection/scratch-detection"


def result(seq: int, thing: str = "dev-1", **extra: Any) -> dict[str, Any]:
    return {
        "timestamp": f"2026-11-23T10:00:{seq % 60:02d}.{seq % 1000:03d}Z",
        "thing_name": thing,
        "image_name": f"img-{seq:03d}.jpg",
        "model": {"name": "tag-scratch-detector", "version": "1.0.0"},
        "detections": [],
        "defect": False,
        "latency_ms": {"preprocess": 1.0, "inference": 5.0, "total": 6.5},
        "message_id": f"{thing}-{seq:06d}",
        "sequence": seq,
        **extra,
    }


@pytest.fixture
def publisher(broker_endpoint: str) -> Iterator[Any]:
    host, port = parse_endpoint(broker_endpoint)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"test-pub-{time.time_ns()}")
    client.connect(host, port)
    client.loop_start()

    def publish(payload: Any, topic: str = TOPIC) -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        client.publish(topic, raw, qos=1).wait_for_publish(5)

    try:
        yield publish
    finally:
        client.disconnect()
        client.loop_stop()


class SignallingSubscriber(PahoSubscriber):
    """A real PahoSubscriber that tells the test when its subscription is in place."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint)
        self.subscribed = threading.Event()

    def subscribe(self, topic_filter: str, on_message: OnMessage, timeout: float = 10.0) -> None:
        super().subscribe(topic_filter, on_message, timeout)
        self.subscribed.set()


def run_collect(**kwargs: Any) -> tuple[Future[ResultsTable], ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(1)
    return pool.submit(collect, Settings(), **kwargs), pool


def test_collect_in_order_dedup_and_invalid(broker_endpoint: str, publisher: Any) -> None:
    sub = SignallingSubscriber(broker_endpoint)
    seen: list[int] = []
    future, pool = run_collect(
        subscriber=sub, max_messages=5, timeout=20, on_message=lambda r: seen.append(r["sequence"])
    )
    try:
        assert sub.subscribed.wait(10)
        publisher(result(1))
        publisher(result(2))
        publisher(result(2))  # re-sent by the device's spool: same message_id
        publisher(b"{broken")
        publisher(result(3, latency_ms={"preprocess": 1, "inference": 1}))  # no total
        publisher(result(4))
        publisher(result(1, thing="dev-2"))  # another device, its own ids
        publisher({"unrelated": True}, topic="qualityinspection/health")  # not our topic
        publisher(result(5))
        publisher(result(6))  # beyond max_messages
        table = future.result(20)
    finally:
        pool.shutdown()
        sub.close()
    assert [(r["thing_name"], r["sequence"]) for r in table] == [
        ("dev-1", 1),
        ("dev-1", 2),
        ("dev-1", 4),
        ("dev-2", 1),
        ("dev-1", 5),
    ]
    assert seen == [1, 2, 4, 1, 5]
    assert table.duplicates == 1
    assert [i.field for i in table.invalid] == ["(payload)", "latency_ms.total"]
    assert all(i.topic == TOPIC for i in table.invalid)
    assert not table.timed_out
    assert {row["thing_name"]: row["results"] for row in table.summary()} == {
        "dev-1": 4,
        "dev-2": 1,
    }


def test_collect_stops_at_timeout(broker_endpoint: str) -> None:
    sub = PahoSubscriber(broker_endpoint)
    start = time.monotonic()
    with sub:
        table = collect(Settings(), subscriber=sub, max_messages=3, timeout=0.6)
    elapsed = time.monotonic() - start
    assert len(table) == 0 and table.timed_out
    assert 0.5 <= elapsed < 5


def test_collect_from_settings_uses_env_endpoint(
    broker_endpoint: str, publisher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No subscriber given: the local transport finds the broker via EDGEKIT_MQTT_ENDPOINT."""
    monkeypatch.setenv("EDGEKIT_MQTT_ENDPOINT", broker_endpoint)
    settings = Settings(backend="local")
    made = subscriber_for(settings)
    assert isinstance(made, PahoSubscriber) and made.endpoint == broker_endpoint

    stop = threading.Event()

    def keep_publishing() -> None:  # collect subscribes on its own; publish until it has enough
        seq = 0
        while not stop.is_set():
            seq += 1
            publisher(result(seq, thing="dev-env"))
            time.sleep(0.05)

    thread = threading.Thread(target=keep_publishing, daemon=True)
    thread.start()
    try:
        table = collect(settings, topic="qualityinspection/#", max_messages=3, timeout=15)
    finally:
        stop.set()
        thread.join(5)
    assert len(table) == 3
    seqs = [r["sequence"] for r in table]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3


def test_collect_needs_a_bound() -> None:
    with pytest.raises(ConfigurationError, match="max_messages=N, timeout=SECONDS"):
        collect(Settings())
    with pytest.raises(ConfigurationError, match="at least 1"):
        collect(Settings(), max_messages=0)


def test_unreachable_broker_is_a_clear_error() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(MqttError, match=f"127.0.0.1:{port}.*edgekit local"):
        PahoSubscriber(f"127.0.0.1:{port}").connect(timeout=2)
    with pytest.raises(ConfigurationError, match="HOST:PORT"):
        PahoSubscriber("localhost")


def test_bad_topic_filter(broker_endpoint: str) -> None:
    with PahoSubscriber(broker_endpoint) as sub, pytest.raises(MqttError, match="not valid MQTT"):
        sub.subscribe("a/#/b", lambda m: None)


def test_live_collector_keeps_latest(broker_endpoint: str, publisher: Any) -> None:
    sub = SignallingSubscriber(broker_endpoint)
    heard: list[int] = []
    with sub, LiveCollector(Settings(), subscriber=sub, maxlen=3) as live:
        live.add_listener(lambda r: heard.append(r["sequence"]))
        assert sub.subscribed.wait(10)
        for seq in range(1, 6):
            publisher(result(seq))
        publisher(result(5))  # duplicate
        publisher(b"nope")
        assert live.wait_for(5, timeout=10)
        deadline = time.monotonic() + 5
        while live.invalid < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [r["sequence"] for r in live.latest()] == [3, 4, 5]
        assert [r["sequence"] for r in live.latest(2)] == [4, 5]
        assert live.received == 5 and live.duplicates == 1 and live.invalid == 1
        assert heard == [1, 2, 3, 4, 5]
        snap = live.snapshot()
        assert len(snap) == 3 and snap.duplicates == 1 and len(snap.invalid) == 1
        assert "running" in repr(live)
    assert not live.running
    # the subscriber was ours: LiveCollector unsubscribed but left it to us to close
    assert sub._client is None  # closed by `with sub`


def test_live_collector_survives_a_broken_listener(broker_endpoint: str, publisher: Any) -> None:
    sub = SignallingSubscriber(broker_endpoint)
    with sub, LiveCollector(Settings(), subscriber=sub, maxlen=10) as live:
        live.add_listener(lambda r: 1 / 0)
        assert sub.subscribed.wait(10)
        publisher(result(1))
        publisher(result(2))
        assert live.wait_for(2, timeout=10)
        assert len(live.latest()) == 2
        deadline = time.monotonic() + 5
        while len(live.errors) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(live.errors) == 2 and "division by zero" in live.errors[0]


def test_subscriber_resubscribes_after_the_broker_restarts() -> None:
    """A clean-session reconnect forgets subscriptions; the subscriber makes them again."""
    from edgekit.local.mqtt import Broker

    first = Broker(host="127.0.0.1", port=0).start()
    port = first.port
    got: list[bytes] = []
    arrived = threading.Event()

    def on_message(message: Any) -> None:
        got.append(message.payload)
        arrived.set()

    sub = PahoSubscriber(first.endpoint)
    second = None
    try:
        sub.connect()
        sub.subscribe(TOPIC, on_message)
        first.stop()
        second = Broker(host="127.0.0.1", port=port).start()
        pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="restart-pub")
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        try:
            deadline = time.monotonic() + 15
            while not arrived.is_set() and time.monotonic() < deadline:
                pub.publish(TOPIC, b'{"after": "restart"}', qos=1).wait_for_publish(5)
                arrived.wait(0.2)
        finally:
            pub.disconnect()
            pub.loop_stop()
        assert got and got[0] == b'{"after": "restart"}'
    finally:
        sub.close()
        first.stop()
        if second is not None:
            second.stop()
