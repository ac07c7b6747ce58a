"""The broker with the real clients edgekit uses: paho-mqtt (3.1.1 and 5) and awscrt's MQTT5."""

from __future__ import annotations

import importlib.util
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

paho = pytest.importorskip("paho.mqtt.client")
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from paho.mqtt.subscribeoptions import SubscribeOptions  # noqa: E402

from edgekit.local.mqtt import Broker  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


class Paho:
    """A connected paho client (3.1.1 unless ``v5``) queueing what it receives."""

    def __init__(
        self,
        port: int,
        client_id: str | None = None,
        *,
        v5: bool = False,
        clean: bool = True,
        will: tuple[str, bytes, int] | None = None,
        **connect_props: Any,
    ) -> None:
        self.client_id = f"paho-{uuid.uuid4().hex[:8]}" if client_id is None else client_id
        protocol = paho.MQTTv5 if v5 else paho.MQTTv311
        kwargs: dict[str, Any] = {} if v5 else {"clean_session": clean}
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=protocol, **kwargs
        )
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self._acks: queue.Queue[Any] = queue.Queue()
        self.client.on_subscribe = lambda c, u, mid, codes, p: self._acks.put((mid, codes))
        self.connack: queue.Queue[Any] = queue.Queue()
        self.client.on_connect = lambda c, u, flags, rc, p: self.connack.put((flags, rc, p))
        self.disconnected = threading.Event()
        self.client.on_disconnect = lambda *a: self.disconnected.set()
        if will:
            self.client.will_set(*will)
        props = None
        if v5:
            props = Properties(PacketTypes.CONNECT)
            for name, value in connect_props.items():
                setattr(props, name, value)
        self.client.connect(
            "127.0.0.1", port, keepalive=30, clean_start=clean if v5 else 3, properties=props
        )
        self.client.loop_start()
        flags, rc, self.connack_props = self.connack.get(timeout=5)
        assert not rc.is_failure, rc
        self.session_present = bool(flags.session_present)

    def subscribe(self, topic: str, qos: int | SubscribeOptions, **props: Any) -> list[Any]:
        properties = None
        if props:
            properties = Properties(PacketTypes.SUBSCRIBE)
            for name, value in props.items():
                setattr(properties, name, value)
        if isinstance(qos, SubscribeOptions):
            _, mid = self.client.subscribe(topic, options=qos, properties=properties)
        else:
            _, mid = self.client.subscribe(topic, qos, properties=properties)
        got_mid, codes = self._acks.get(timeout=5)
        assert got_mid == mid
        return codes

    def get(self, timeout: float = 5.0) -> paho.MQTTMessage:
        return self.messages.get(timeout=timeout)

    def nothing(self, wait: float = 0.3) -> None:
        with pytest.raises(queue.Empty):
            m = self.messages.get(timeout=wait)
            pytest.fail(f"unexpected message on {m.topic}: {m.payload!r}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def drop(self) -> None:
        """Vanish without DISCONNECT, like a crashed process."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    b = Broker(port=0).start()
    yield b
    t0 = time.monotonic()
    b.stop()
    assert time.monotonic() - t0 < 1.0


@pytest.fixture
def clients(broker: Broker) -> Iterator[Any]:
    made: list[Paho] = []

    def make(*args: Any, **kwargs: Any) -> Paho:
        c = Paho(broker.port, *args, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def _topic(prefix: str) -> str:
    return f"{prefix}/{uuid.uuid4().hex[:8]}"


def test_1000_qos1_messages_to_a_fast_subscriber_arrive_in_order(clients: Any) -> None:
    topic = _topic("fast")
    sub = clients()
    sub.subscribe(topic, 1)
    pub = clients()
    infos = [pub.client.publish(topic, b"%d" % i, qos=1) for i in range(1000)]
    for info in infos:
        info.wait_for_publish(5)
    got = [sub.get() for _ in range(1000)]
    assert [int(m.payload) for m in got] == list(range(1000))
    assert {m.qos for m in got} == {1}
    sub.nothing(0.2)


def test_dollar_aws_topics_work_and_hash_does_not_see_them(clients: Any) -> None:
    everything = clients()
    everything.subscribe("#", 1)
    shadow = clients()
    shadow.subscribe("$aws/things/+/shadow/update", 1)
    pub = clients()
    pub.client.publish("$aws/things/dev1/shadow/update", b"{}", qos=1).wait_for_publish(5)
    assert shadow.get().topic == "$aws/things/dev1/shadow/update"
    assert pub.client.is_connected()  # publishing to a $ topic is allowed
    pub.client.publish("plain/topic", b"seen", qos=1).wait_for_publish(5)
    got = everything.get()
    assert got.topic == "plain/topic"  # the $aws message never reached "#"
    everything.nothing(0.2)


@pytest.mark.parametrize("sub_qos,pub_qos,expected", [(1, 0, 0), (0, 1, 0), (1, 1, 1), (2, 1, 1)])
def test_delivery_qos_is_min_of_publish_and_granted(
    clients: Any, sub_qos: int, pub_qos: int, expected: int
) -> None:
    topic = _topic("minqos")
    sub = clients()
    assert sub.subscribe(topic, sub_qos)[0].value == sub_qos
    pub = clients()
    pub.client.publish(topic, b"x", qos=pub_qos).wait_for_publish(5)
    assert sub.get().qos == expected


def test_qos2_with_paho_is_delivered_exactly_once(clients: Any) -> None:
    topic = _topic("q2")
    sub = clients()
    sub.subscribe(topic, 2)
    pub = clients()
    for i in range(20):
        pub.client.publish(topic, b"%d" % i, qos=2).wait_for_publish(5)
    got = [sub.get() for _ in range(20)]
    assert [int(m.payload) for m in got] == list(range(20)) and {m.qos for m in got} == {2}
    sub.nothing(0.2)


def test_persistent_session_queues_qos1_while_offline(clients: Any) -> None:
    topic = _topic("offline")
    cid = f"persist-{uuid.uuid4().hex[:8]}"
    first = clients(cid, clean=False)
    first.subscribe(topic, 1)
    first.close()
    pub = clients()
    for i in range(10):
        pub.client.publish(topic, b"%d" % i, qos=1).wait_for_publish(5)
    pub.client.publish(topic, b"qos0-is-dropped", qos=0).wait_for_publish(5)
    back = clients(cid, clean=False)
    assert back.session_present
    got = [back.get() for _ in range(10)]
    assert [int(m.payload) for m in got] == list(range(10))
    back.nothing(0.2)


def test_will_message_on_abrupt_loss(clients: Any) -> None:
    topic = _topic("will")
    watcher = clients()
    watcher.subscribe(topic, 1)
    doomed = clients(will=(topic, b"device lost", 1))
    doomed.drop()
    got = watcher.get()
    assert (got.topic, got.payload) == (topic, b"device lost")
    polite = clients(will=(topic, b"should not appear", 1))
    polite.close()
    watcher.nothing(0.3)


def test_duplicate_client_id_takes_over(clients: Any) -> None:
    topic = _topic("dup")
    cid = f"dup-{uuid.uuid4().hex[:8]}"
    old = clients(cid)
    old.client.reconnect_delay_set(30, 30)  # do not fight back for the id during the test
    new = clients(cid)
    assert old.disconnected.wait(5)
    new.subscribe(topic, 1)
    pub = clients()
    pub.client.publish(topic, b"to new", qos=1).wait_for_publish(5)
    assert new.get().payload == b"to new"


def test_retained_empty_payload_clears(clients: Any) -> None:
    topic = _topic("retain")
    pub = clients()
    pub.client.publish(topic, b"v1", qos=1, retain=True).wait_for_publish(5)
    pub.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    late = clients()
    late.subscribe(topic, 1)
    late.nothing(0.3)


def test_paho_mqtt5_round_trip_with_properties(clients: Any) -> None:
    topic = _topic("v5")
    sub = clients(v5=True, SessionExpiryInterval=0)
    assert sub.connack_props.MaximumPacketSize == 1 << 20
    opts = SubscribeOptions(qos=1, noLocal=True, retainAsPublished=True)
    assert sub.subscribe(topic, opts, SubscriptionIdentifier=42)[0].value == 1
    sub.client.publish(topic, b"echo?", qos=1).wait_for_publish(5)  # no-local: not delivered
    pub = clients(v5=True)
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "application/json"
    props.ResponseTopic = f"{topic}/reply"
    props.CorrelationData = b"req-7"
    props.UserProperty = [("model", "scratches"), ("version", "3")]
    props.MessageExpiryInterval = 60
    pub.client.publish(
        topic, b'{"ok": true}', qos=1, retain=True, properties=props
    ).wait_for_publish(5)
    got = sub.get()
    assert (got.topic, got.payload, got.qos, bool(got.retain)) == (topic, b'{"ok": true}', 1, True)
    p = got.properties
    assert p.ContentType == "application/json" and p.ResponseTopic == f"{topic}/reply"
    assert p.CorrelationData == b"req-7"
    assert p.UserProperty == [("model", "scratches"), ("version", "3")]
    assert p.SubscriptionIdentifier == [42]
    assert 58 <= p.MessageExpiryInterval <= 60
    sub.nothing(0.2)


def test_paho_mqtt5_assigned_client_id_and_session_resume(clients: Any) -> None:
    anonymous = clients("", v5=True)
    assert anonymous.connack_props.AssignedClientIdentifier.startswith("edgekit-")
    topic = _topic("v5resume")
    cid = f"v5-{uuid.uuid4().hex[:8]}"
    first = clients(cid, v5=True, clean=True, SessionExpiryInterval=60)
    first.subscribe(topic, 1)
    first.close()
    pub = clients(v5=True)
    pub.client.publish(topic, b"kept for you", qos=1).wait_for_publish(5)
    back = clients(cid, v5=True, clean=False, SessionExpiryInterval=60)
    assert back.session_present
    assert back.get().payload == b"kept for you"


def test_awscrt_mqtt5_client_round_trip(broker: Broker) -> None:
    mqtt5 = pytest.importorskip("awscrt.mqtt5")
    connected = threading.Event()
    stopped = threading.Event()
    received: queue.Queue[Any] = queue.Queue()
    client = mqtt5.Client(
        mqtt5.ClientOptions(
            host_name="127.0.0.1",
            port=broker.port,
            connect_options=mqtt5.ConnectPacket(
                client_id=f"crt5-{uuid.uuid4().hex[:8]}", keep_alive_interval_sec=30
            ),
            topic_aliasing_options=mqtt5.TopicAliasingOptions(
                outbound_behavior=mqtt5.OutboundTopicAliasBehaviorType.LRU
            ),
            on_publish_callback_fn=lambda data: received.put(data.publish_packet),
            on_lifecycle_event_connection_success_fn=lambda data: connected.set(),
            on_lifecycle_event_stopped_fn=lambda data: stopped.set(),
        )
    )
    client.start()
    try:
        assert connected.wait(5), "awscrt MQTT5 did not connect (plain TCP)"
        topic = _topic("crt5")
        suback = client.subscribe(
            mqtt5.SubscribePacket(
                subscriptions=[mqtt5.Subscription(topic, mqtt5.QoS.AT_LEAST_ONCE)],
                subscription_identifier=9,
            )
        ).result(5)
        assert suback.reason_codes == [mqtt5.SubackReasonCode.GRANTED_QOS_1]
        for i in range(3):  # with LRU aliasing the repeats go out with an empty topic
            done = client.publish(
                mqtt5.PublishPacket(
                    topic=topic,
                    payload=b"crt %d" % i,
                    qos=mqtt5.QoS.AT_LEAST_ONCE,
                    user_properties=[mqtt5.UserProperty("k", "v")],
                )
            ).result(5)
            assert done.puback.reason_code == mqtt5.PubackReasonCode.SUCCESS
        aliases = broker.call(lambda: [c.aliases for c in broker.server.connections if c.aliases])
        assert aliases == [{1: topic}]  # awscrt really used a topic alias
        got = [received.get(timeout=5) for _ in range(3)]
        assert [(p.topic, p.payload) for p in got] == [(topic, b"crt %d" % i) for i in range(3)]
        assert got[0].subscription_identifiers == [9]
        assert [(u.name, u.value) for u in got[0].user_properties] == [("k", "v")]
    finally:
        client.stop()
        assert stopped.wait(5)


@pytest.mark.slow
def test_benchmark_script_runs(capsys: pytest.CaptureFixture[str]) -> None:
    script = Path(__file__).resolve().parents[3] / "benchmarks" / "mqtt_broker.py"
    spec = importlib.util.spec_from_file_location("mqtt_broker_benchmark", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--rate", "200", "--seconds", "0.25", "--count", "200"]) == 0
    out = capsys.readouterr().out
    # markdown rows: | run | sent | received | msg/s | ... |
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in out.splitlines()
        if line.startswith(("| paced", "| flat"))
    ]
    assert [r[:3] for r in rows] == [["paced 200/s", "50", "50"], ["flat out", "200", "200"]]
    assert "_Machine: " in out  # the CPU and load under the table
