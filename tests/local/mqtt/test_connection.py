"""The broker at the packet level: raw sockets speaking MQTT 3.1.1 and 5.0 on loopback.

A raw client lets a test do what real clients avoid (never acknowledge, never
read, send garbage, reuse a client id) and see exactly what the broker sends.
"""

from __future__ import annotations

import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from edgekit.errors import LocalBackendError
from edgekit.local.mqtt import Broker, BrokerLimits, mqtt_ping
from edgekit.local.mqtt import packets as pk
from edgekit.local.mqtt.__main__ import main as broker_main
from edgekit.local.mqtt.connection import _is_loopback
from edgekit.local.mqtt.wire import decode_varint

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

V4, V5 = pk.MQTT_311, pk.MQTT_5


class Raw:
    """A blocking MQTT client made of a socket and the broker's own codec."""

    def __init__(self, port: int, version: int = V4, *, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(5)
        self.sock.connect(("127.0.0.1", port))
        self.version = version
        self.buf = b""
        self.next_id = 1

    def send(self, packet: pk.Packet | bytes) -> None:
        data = packet if isinstance(packet, bytes) else pk.encode(packet, self.version)
        self.sock.sendall(data)

    def _frame(self) -> bytes | None:
        if len(self.buf) < 2:
            return None
        try:
            length, pos = decode_varint(self.buf, 1, len(self.buf))
        except Exception:
            return None  # length not complete yet
        if len(self.buf) < pos + length:
            return None
        frame, self.buf = self.buf[: pos + length], self.buf[pos + length :]
        return frame

    def recv(self, timeout: float = 5.0) -> pk.Packet:
        deadline = time.monotonic() + timeout
        while (frame := self._frame()) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no packet from the broker")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            self.buf += chunk
        return pk.decode(frame, self.version)

    def nothing(self, wait: float = 0.3) -> None:
        """Assert the broker sends nothing for ``wait`` seconds."""
        with pytest.raises(TimeoutError):
            packet = self.recv(wait)
            pytest.fail(f"unexpected {packet!r}")

    def closed_by_broker(self, timeout: float = 5.0) -> list[pk.Packet]:
        """Read until EOF; returns the packets seen before it. Fails if it stays open."""
        seen: list[pk.Packet] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                seen.append(self.recv(max(deadline - time.monotonic(), 0.01)))
            except TimeoutError:  # before OSError: socket timeouts are OSErrors too
                pytest.fail(f"the broker kept the connection open; got {seen!r}")
            except (ConnectionError, OSError):
                return seen

    def connect(
        self,
        client_id: str = "",
        clean: bool = True,
        keep_alive: int = 30,
        will: pk.Will | None = None,
        **props: object,
    ) -> pk.Connack:
        self.send(pk.Connect(client_id, self.version, clean, keep_alive, None, None, will, props))
        ack = self.recv()
        assert isinstance(ack, pk.Connack), ack
        return ack

    def subscribe(self, *filters: tuple[str, int | pk.SubscriptionOptions], **props: object):
        subs = [(f, o if isinstance(o, pk.SubscriptionOptions) else pk.SubscriptionOptions(o))
                for f, o in filters]  # fmt: skip
        pid = self._pid()
        self.send(pk.Subscribe(pid, subs, dict(props)))
        ack = self.recv()
        assert isinstance(ack, pk.Suback) and ack.packet_id == pid, ack
        return ack.reason_codes

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, **props):
        pid = self._pid() if qos else 0
        self.send(pk.Publish(topic, payload, qos, retain, False, pid, dict(props)))
        if qos == 1:
            ack = self.recv()
            assert isinstance(ack, pk.Ack) and ack.kind == pk.PUBACK and ack.packet_id == pid
        return pid

    def _pid(self) -> int:
        pid, self.next_id = self.next_id, self.next_id % 65535 + 1
        return pid

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def broker() -> Iterator[Broker]:
    b = Broker(port=0).start()
    yield b
    t0 = time.monotonic()
    b.stop()
    assert time.monotonic() - t0 < 1.0, "stop() must be quick"


@pytest.fixture
def raw(broker: Broker) -> Iterator[type[Raw]]:
    made: list[Raw] = []

    class Tracked(Raw):
        def __init__(self, port: int = broker.port, version: int = V4, **kw: int) -> None:
            super().__init__(port, version, **kw)
            made.append(self)

    yield Tracked
    for c in made:
        c.close()


def _cid() -> str:
    return f"raw-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------- CONNECT
def test_unsupported_protocol_level_is_refused_with_connack_1(raw: type[Raw]) -> None:
    c = raw()
    c.send(b"\x10\x0f\x00\x06MQIsdp\x03\x02\x00\x1e\x00\x01c")  # MQTT 3.1
    assert c.closed_by_broker() == [pk.Connack(False, 0x01)]


def test_empty_client_ids(raw: type[Raw]) -> None:
    assert raw().connect("", clean=True).reason_code == 0
    assert raw().connect("", clean=False).reason_code == 0x02  # 3.1.1: identifier rejected
    ack = raw(version=V5).connect("")
    assert ack.reason_code == 0
    assert ack.properties["assigned_client_identifier"].startswith("edgekit-")
    assert ack.properties["maximum_packet_size"] == BrokerLimits().max_packet_size
    assert ack.properties["topic_alias_maximum"] == 64
    assert ack.properties["shared_subscription_available"] == 0


def test_first_packet_must_be_connect(raw: type[Raw], broker: Broker) -> None:
    c = raw()
    c.send(pk.PingReq())
    assert c.closed_by_broker() == []
    g = raw()
    g.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    g.closed_by_broker()
    assert mqtt_ping("127.0.0.1", broker.port)


def test_enhanced_authentication_is_refused(raw: type[Raw]) -> None:
    ack = raw(version=V5).connect(_cid(), authentication_method="SCRAM-SHA-1")
    assert ack.reason_code == 0x8C


# ---------------------------------------------------------------- keep alive, takeover, wills
def test_keepalive_expiry_closes_the_connection_and_publishes_the_will(raw: type[Raw]) -> None:
    watcher = raw()
    watcher.connect(_cid())
    watcher.subscribe(("wills/#", 1))
    pinger = raw()
    pinger.connect(_cid(), keep_alive=1)
    silent = raw()
    t0 = time.monotonic()
    silent.connect(_cid(), keep_alive=1, will=pk.Will("wills/silent", b"gone", 1))
    for _ in range(4):  # 2 s of PINGREQs every 0.5 s keep the other one alive
        time.sleep(0.5)
        pinger.send(pk.PingReq())
        assert pinger.recv() == pk.PingResp()
    silent.closed_by_broker()
    assert 1.4 <= time.monotonic() - t0 <= 3.0  # 1.5 x keep alive
    will = watcher.recv()
    assert isinstance(will, pk.Publish) and (will.topic, will.payload) == ("wills/silent", b"gone")
    watcher.send(pk.Ack(pk.PUBACK, will.packet_id))


def test_normal_disconnect_discards_the_will_and_v5_reason_4_sends_it(raw: type[Raw]) -> None:
    watcher = raw()
    watcher.connect(_cid())
    watcher.subscribe(("wills/#", 0))
    polite = raw()
    polite.connect(_cid(), will=pk.Will("wills/polite", b"x"))
    polite.send(pk.Disconnect())
    polite.closed_by_broker()
    v5 = raw(version=V5)
    v5.connect(_cid(), will=pk.Will("wills/v5", b"asked"))
    v5.send(pk.Disconnect(0x04))
    v5.closed_by_broker()
    got = watcher.recv()
    assert isinstance(got, pk.Publish) and got.topic == "wills/v5"
    watcher.nothing()


def test_will_delay_is_cancelled_by_a_reconnect(raw: type[Raw]) -> None:
    watcher = raw()
    watcher.connect(_cid())
    watcher.subscribe(("wills/#", 0))
    cid = _cid()
    will = pk.Will("wills/delayed", b"late", 0, False, {"will_delay_interval": 1})
    first = raw(version=V5)
    first.connect(cid, clean=True, will=will, session_expiry_interval=30)
    first.close()  # abrupt
    time.sleep(0.2)
    back = raw(version=V5)
    assert back.connect(cid, clean=False, will=will, session_expiry_interval=30).session_present
    watcher.nothing(1.3)  # the delay passed while the session was back: no will
    back.close()  # abrupt again, and this time nobody comes back
    t0 = time.monotonic()
    got = watcher.recv(3)
    assert isinstance(got, pk.Publish) and got.payload == b"late"
    assert time.monotonic() - t0 >= 0.8


@pytest.mark.parametrize("version", [V4, V5])
def test_duplicate_client_id_takes_over_the_old_connection(raw: type[Raw], version: int) -> None:
    cid = _cid()
    props = {"session_expiry_interval": 60} if version == V5 else {}
    old = raw(version=version)
    old.connect(cid, clean=False, **props)
    old.subscribe(("take/#", 1))
    new = raw(version=version)
    ack = new.connect(cid, clean=False, **props)
    assert ack.session_present  # same session, subscriptions kept
    seen = old.closed_by_broker()
    if version == V5:
        assert seen == [pk.Disconnect(0x8E)]
    pub = raw()
    pub.connect(_cid())
    pub.publish("take/over", b"to the new one", qos=1)
    got = new.recv()
    assert isinstance(got, pk.Publish) and got.payload == b"to the new one"


# ---------------------------------------------------------------- QoS flows
def test_unacknowledged_qos1_is_redelivered_with_dup_on_reconnect(raw: type[Raw]) -> None:
    cid = _cid()
    sub = raw()
    sub.connect(cid, clean=False)
    sub.subscribe(("redo/#", 1))
    pub = raw()
    pub.connect(_cid())
    pub.publish("redo/a", b"first", qos=1)
    first = sub.recv()
    assert isinstance(first, pk.Publish) and not first.dup and first.qos == 1
    sub.close()  # without PUBACK
    time.sleep(0.1)
    pub.publish("redo/a", b"while offline", qos=1)
    pub.publish("redo/a", b"qos0 is not queued", qos=0)
    again = raw()
    assert again.connect(cid, clean=False).session_present
    redelivered = again.recv()
    assert isinstance(redelivered, pk.Publish)
    assert (redelivered.payload, redelivered.dup) == (b"first", True)
    assert redelivered.packet_id == first.packet_id
    again.send(pk.Ack(pk.PUBACK, redelivered.packet_id))
    queued = again.recv()
    assert isinstance(queued, pk.Publish) and (queued.payload, queued.dup) == (
        b"while offline",
        False,
    )
    again.send(pk.Ack(pk.PUBACK, queued.packet_id))
    again.nothing()


def test_clean_session_discards_the_old_session(raw: type[Raw]) -> None:
    cid = _cid()
    first = raw()
    first.connect(cid, clean=False)
    first.subscribe(("gone/#", 1))
    first.send(pk.Disconnect())
    first.closed_by_broker()
    again = raw()
    assert not again.connect(cid, clean=True).session_present
    pub = raw()
    pub.connect(_cid())
    pub.publish("gone/x", b"nobody", qos=1)
    again.nothing()


def test_qos2_exactly_once_in_both_directions(raw: type[Raw]) -> None:
    sub = raw()
    sub.connect(_cid())
    assert sub.subscribe(("q2/#", 2)) == [2]
    pub = raw()
    pub.connect(_cid())
    pub.send(pk.Publish("q2/x", b"once", 2, False, False, 77))
    assert pub.recv() == pk.Ack(pk.PUBREC, 77)
    pub.send(pk.Publish("q2/x", b"once", 2, False, True, 77))  # retransmission
    assert pub.recv() == pk.Ack(pk.PUBREC, 77)
    pub.send(pk.Ack(pk.PUBREL, 77))
    assert pub.recv() == pk.Ack(pk.PUBCOMP, 77)
    got = sub.recv()
    assert isinstance(got, pk.Publish) and (got.qos, got.payload) == (2, b"once")
    sub.send(pk.Ack(pk.PUBREC, got.packet_id))
    assert sub.recv() == pk.Ack(pk.PUBREL, got.packet_id)
    sub.send(pk.Ack(pk.PUBCOMP, got.packet_id))
    sub.nothing()  # the duplicate was not routed again


def test_delivery_qos_is_the_minimum_of_publish_and_subscription(raw: type[Raw]) -> None:
    low = raw()
    low.connect(_cid())
    low.subscribe(("mq/#", 0))
    high = raw()
    high.connect(_cid())
    high.subscribe(("mq/#", 2))
    pub = raw()
    pub.connect(_cid())
    pub.publish("mq/a", b"1", qos=1)
    pub.publish("mq/a", b"0", qos=0)
    assert [(p.payload, p.qos) for p in (low.recv(), low.recv())] == [(b"1", 0), (b"0", 0)]
    first = high.recv()
    assert (first.payload, first.qos) == (b"1", 1)
    high.send(pk.Ack(pk.PUBACK, first.packet_id))
    second = high.recv()
    assert (second.payload, second.qos) == (b"0", 0)


def test_mqtt5_receive_maximum_limits_unacknowledged_deliveries(raw: type[Raw]) -> None:
    sub = raw(version=V5)
    sub.connect(_cid(), receive_maximum=2)
    sub.subscribe(("rm/#", 1))
    pub = raw()
    pub.connect(_cid())
    for i in range(5):
        pub.publish("rm/x", str(i).encode(), qos=1)
    got = [sub.recv(), sub.recv()]
    sub.nothing()
    sub.send(pk.Ack(pk.PUBACK, got[0].packet_id))
    got.append(sub.recv())
    sub.nothing()
    for p in got[1:]:
        sub.send(pk.Ack(pk.PUBACK, p.packet_id))
    got += [sub.recv(), sub.recv()]
    assert [p.payload for p in got] == [b"0", b"1", b"2", b"3", b"4"]


# ---------------------------------------------------------------- sessions
def test_offline_queue_is_bounded_and_drops_the_oldest() -> None:
    with Broker(limits=BrokerLimits(max_queued=5)) as b:
        cid = _cid()
        sub = Raw(b.port)
        sub.connect(cid, clean=False)
        sub.subscribe(("q/#", 1))
        sub.send(pk.Disconnect())
        sub.closed_by_broker()
        pub = Raw(b.port)
        pub.connect(_cid())
        for i in range(8):
            pub.publish("q/x", str(i).encode(), qos=1)
        back = Raw(b.port)
        assert back.connect(cid, clean=False).session_present
        got = []
        for _ in range(5):
            p = back.recv()
            back.send(pk.Ack(pk.PUBACK, p.packet_id))
            got.append(p.payload)
        assert got == [b"3", b"4", b"5", b"6", b"7"]
        back.nothing()
        assert b.call(lambda: b.server.router.sessions[cid].dropped) == 3
        for c in (sub, pub, back):
            c.close()


def test_mqtt5_session_expiry(raw: type[Raw], broker: Broker) -> None:
    cid = _cid()
    sub = raw(version=V5)
    sub.connect(cid, clean=True, session_expiry_interval=1)
    sub.subscribe(("exp/#", 1))
    sub.send(pk.Disconnect())
    sub.closed_by_broker()
    pub = raw(version=V5)
    pub.connect(_cid())
    pub.publish("exp/a", b"kept", qos=1)
    pub.publish("exp/a", b"expired", qos=1, message_expiry_interval=1)
    back = raw(version=V5)
    assert back.connect(cid, clean=False, session_expiry_interval=1).session_present
    got = back.recv()
    assert got.payload == b"kept"
    back.send(pk.Ack(pk.PUBACK, got.packet_id))
    left = back.recv()
    assert left.payload == b"expired" and 0 < left.properties["message_expiry_interval"] <= 1
    back.send(pk.Ack(pk.PUBACK, left.packet_id))
    back.send(pk.Disconnect())
    back.closed_by_broker()
    time.sleep(1.3)
    assert cid not in broker.call(lambda: set(broker.server.router.sessions))
    assert not raw(version=V5).connect(cid, clean=False).session_present


def test_expired_messages_are_not_delivered_from_the_offline_queue(raw: type[Raw]) -> None:
    cid = _cid()
    sub = raw(version=V5)
    sub.connect(cid, session_expiry_interval=60)
    sub.subscribe(("mx/#", 1))
    sub.close()
    pub = raw(version=V5)
    pub.connect(_cid())
    pub.publish("mx/a", b"stale", qos=1, message_expiry_interval=1)
    pub.publish("mx/a", b"fresh", qos=1)
    time.sleep(1.1)
    back = raw(version=V5)
    assert back.connect(cid, clean=False, session_expiry_interval=60).session_present
    got = back.recv()
    assert got.payload == b"fresh" and "message_expiry_interval" not in got.properties


# ---------------------------------------------------------------- MQTT 5 features
def test_mqtt5_subscription_options_and_identifiers(raw: type[Raw]) -> None:
    me = raw(version=V5)
    me.connect(_cid())
    opts = pk.SubscriptionOptions(1, no_local=True, retain_as_published=True)
    assert me.subscribe(("so/#", opts), subscription_identifier=[7]) == [1]
    me.publish("so/mine", b"not echoed", qos=1)
    other = raw(version=V5)
    other.connect(_cid())
    other.publish("so/theirs", b"hello", qos=1, retain=True, content_type="text/plain",
                  response_topic="so/reply", correlation_data=b"\x01",
                  user_property=[("k", "v")])  # fmt: skip
    got = me.recv()
    assert isinstance(got, pk.Publish) and got.topic == "so/theirs"
    assert got.retain  # retain as published
    assert got.properties == {
        "content_type": "text/plain",
        "response_topic": "so/reply",
        "correlation_data": b"\x01",
        "user_property": [("k", "v")],
        "subscription_identifier": [7],
    }
    me.send(pk.Ack(pk.PUBACK, got.packet_id))
    me.nothing()
    plain = raw(version=V5)
    plain.connect(_cid())
    plain.subscribe(("so/theirs", pk.SubscriptionOptions(0, retain_handling=2)))
    plain.nothing()  # retain handling 2: no retained message on subscribe
    other.publish("so/theirs", b"live", qos=0, retain=True)
    assert not plain.recv().retain  # live messages lose the flag without retain-as-published
    again = pk.SubscriptionOptions(0, retain_handling=1)
    assert plain.subscribe(("so/#", again)) == [0]
    assert plain.recv().payload == b"live"  # new subscription: retained sent
    assert plain.subscribe(("so/#", again)) == [0]
    plain.nothing()  # existing subscription: not again


def test_invalid_and_shared_filters_get_failure_codes(raw: type[Raw]) -> None:
    v5 = raw(version=V5)
    v5.connect(_cid())
    assert v5.subscribe(("a/#/b", 0), ("$share/g/x", 1), ("ok/+", 1)) == [0x8F, 0x9E, 1]
    v4 = raw()
    v4.connect(_cid())
    assert v4.subscribe(("a+", 1), ("ok/#", 2)) == [0x80, 2]
    pid = v5._pid()
    v5.send(pk.Unsubscribe(pid, ["ok/+", "never"]))
    assert v5.recv() == pk.Unsuback(pid, [0, 0x11])


def test_topic_aliases(raw: type[Raw]) -> None:
    sub = raw()
    sub.connect(_cid())
    sub.subscribe(("alias/#", 0))
    pub = raw(version=V5)
    pub.connect(_cid())
    pub.publish("alias/one", b"1", topic_alias=1)
    pub.publish("", b"2", topic_alias=1)
    pub.publish("alias/two", b"3", topic_alias=1)  # remapped
    pub.publish("", b"4", topic_alias=1)
    assert [(p.topic, p.payload) for p in (sub.recv() for _ in range(4))] == [
        ("alias/one", b"1"),
        ("alias/one", b"2"),
        ("alias/two", b"3"),
        ("alias/two", b"4"),
    ]
    unknown = raw(version=V5)
    unknown.connect(_cid())
    unknown.publish("", b"?", topic_alias=5)
    assert [p.reason_code for p in unknown.closed_by_broker()] == [0x82]
    too_big = raw(version=V5)
    too_big.connect(_cid())
    too_big.publish("alias/x", b"?", topic_alias=65)
    assert [p.reason_code for p in too_big.closed_by_broker()] == [0x94]


def test_dollar_topics_are_published_but_hidden_from_first_level_wildcards(
    raw: type[Raw],
) -> None:
    everything = raw()
    everything.connect(_cid())
    everything.subscribe(("#", 1), ("+/things/#", 1))
    aws = raw()
    aws.connect(_cid())
    aws.subscribe(("$aws/things/+/shadow/#", 1))
    pub = raw()
    pub.connect(_cid())
    pub.publish("$aws/things/t1/shadow/update", b"{}", qos=1)  # not disconnected
    got = aws.recv()
    assert isinstance(got, pk.Publish) and got.topic == "$aws/things/t1/shadow/update"
    everything.nothing()


# ---------------------------------------------------------------- robustness
@pytest.mark.parametrize("version", [V4, V5])
def test_malformed_packet_closes_only_that_connection(raw: type[Raw], version: int) -> None:
    sub = raw()
    sub.connect(_cid())
    sub.subscribe(("ok/#", 1))
    bad = raw(version=version)
    bad.connect(_cid())
    bad.send(b"\x36\x05\x00\x01a\x00\x01")  # PUBLISH with QoS 3
    seen = bad.closed_by_broker()
    assert [p.reason_code for p in seen] == ([0x81] if version == V5 else [])
    pub = raw()
    pub.connect(_cid())
    pub.publish("ok/still", b"fine", qos=1)
    assert sub.recv().payload == b"fine"


def test_oversized_packet_is_refused() -> None:
    with Broker(limits=BrokerLimits(max_packet_size=2048)) as b:
        c = Raw(b.port, V5)
        assert c.connect(_cid()).properties["maximum_packet_size"] == 2048
        c.publish("big", b"x" * 4096)
        assert [p.reason_code for p in c.closed_by_broker()] == [0x95]
        assert mqtt_ping("127.0.0.1", b.port)
        c.close()


def test_messages_larger_than_a_v5_clients_maximum_are_skipped(raw: type[Raw]) -> None:
    small = raw(version=V5)
    small.connect(_cid(), maximum_packet_size=100)
    small.subscribe(("mps/#", 1))
    pub = raw()
    pub.connect(_cid())
    pub.publish("mps/a", b"x" * 200, qos=1)
    pub.publish("mps/a", b"small", qos=1)
    assert small.recv().payload == b"small"


def _pubacks(client: Raw, count: int) -> None:
    for _ in range(count):
        ack = client.recv(10)
        assert isinstance(ack, pk.Ack) and ack.kind == pk.PUBACK


@pytest.mark.parametrize(
    "limits",
    [
        BrokerLimits(max_inflight=32, max_queued=2000),  # the queue overflows first
        BrokerLimits(max_outgoing_bytes=256 * 1024, max_inflight=60_000, max_queued=60_000),
    ],
    ids=["queue", "write-buffer"],
)
def test_a_stuck_subscriber_does_not_block_publishers_or_other_subscribers(
    limits: BrokerLimits,
) -> None:
    count, payload = 3000, b"p" * 4096  # 12 MiB: more than loopback socket buffers hold
    with Broker(limits=limits) as b:
        stuck_id = _cid()
        stuck = Raw(b.port, rcvbuf=4096)
        stuck.connect(stuck_id, clean=False)
        stuck.subscribe(("load/#", 1))  # ...and never reads again
        healthy = Raw(b.port)
        healthy.connect(_cid())
        healthy.subscribe(("load/#", 1))
        received: list[int] = []

        def drain() -> None:
            while len(received) < count:
                p = healthy.recv(10)
                healthy.send(pk.Ack(pk.PUBACK, p.packet_id))
                received.append(int(p.payload[:8]))

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        pub = Raw(b.port)
        pub.connect(_cid())
        t0 = time.monotonic()
        for start in range(0, count, 20):
            batch = range(start, min(start + 20, count))
            pub.send(b"".join(
                pk.encode(pk.Publish("load/x", b"%08d" % i + payload, 1, False, False, i + 1), V4)
                for i in batch))  # fmt: skip
            _pubacks(pub, len(batch))
        elapsed = time.monotonic() - t0
        reader.join(20)
        assert received == list(range(count))
        assert elapsed < 10, f"publishing took {elapsed:.1f} s"
        # The stuck client was disconnected; its persistent session stays, offline.
        assert b.call(lambda: b.server.router.sessions[stuck_id].link) is None
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 1.0  # stop() with a stuck client connected
    for c in (stuck, healthy, pub):
        c.close()


def test_a_stuck_qos0_subscriber_loses_messages_but_stays_connected() -> None:
    with Broker(limits=BrokerLimits(max_outgoing_bytes=32 * 1024)) as b:
        stuck_id = _cid()
        stuck = Raw(b.port, rcvbuf=4096)
        stuck.connect(stuck_id)
        stuck.subscribe(("zero/#", 0))
        pub = Raw(b.port)
        pub.connect(_cid())
        t0 = time.monotonic()
        chunk = b"".join(pk.encode(pk.Publish("zero/x", b"z" * 8192), V4) for _ in range(100))
        for _ in range(20):  # 16 MiB of QoS 0
            pub.send(chunk)
        pub.publish("zero/x", b"sync", qos=1)  # PUBACK: everything before it was routed
        assert time.monotonic() - t0 < 10
        assert b.call(lambda: b.server.router.sessions[stuck_id].link) is not None
        for c in (stuck, pub):
            c.close()


def test_many_concurrent_connections(broker: Broker) -> None:
    clients = [Raw(broker.port) for _ in range(50)]
    try:
        for i, c in enumerate(clients):
            c.send(pk.Connect(f"many-{i}", V4, True, 30))
        for c in clients:
            assert c.recv() == pk.Connack(False, 0)
        assert broker.call(lambda: broker.server.connection_count) == 50
    finally:
        for c in clients:
            c.close()


def test_stop_is_quick_with_clients_connected_and_closes_them() -> None:
    b = Broker().start()
    v5 = Raw(b.port, V5)
    v5.connect(_cid())
    v4 = Raw(b.port)
    v4.connect(_cid())
    silent = Raw(b.port)  # never sent CONNECT
    t0 = time.monotonic()
    b.stop()
    assert time.monotonic() - t0 < 1.0
    assert [p.reason_code for p in v5.closed_by_broker()] == [0x8B]
    v4.closed_by_broker()
    silent.closed_by_broker()
    for c in (v5, v4, silent):
        c.close()


def test_garbage_after_connect_never_hits_an_unexpected_error(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(1234)
    for version in (V4, V5) * 15:
        c = Raw(broker.port, version)
        c.connect(_cid())
        body = rng.randbytes(rng.randint(0, 40))
        first = rng.choice([0x30, 0x32, 0x40, 0x62, 0x82, 0xA2, 0xC0, 0xE0, 0xF0, 0x00])
        try:
            c.send(bytes([first, len(body)]) + body)
            while True:  # read whatever comes until the broker closes or goes quiet
                c.recv(0.2)
        except (TimeoutError, ConnectionError, OSError):
            pass
        c.close()
    assert "unexpected error" not in caplog.text
    assert mqtt_ping("127.0.0.1", broker.port)


def test_loopback_detection() -> None:
    assert _is_loopback(("127.0.0.1", 1)) and _is_loopback(("127.5.0.1", 1))
    assert _is_loopback(("::1", 1, 0, 0)) and _is_loopback(("::ffff:127.0.0.1", 1, 0, 0))
    assert not _is_loopback(("10.1.2.3", 1)) and not _is_loopback(("::ffff:10.1.2.3", 1, 0, 0))
    assert not _is_loopback("")


def test_a_busy_port_is_a_clear_error(broker: Broker, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(LocalBackendError, match=f"cannot listen on 127.0.0.1:{broker.port}"):
        Broker(port=broker.port).start()
    assert broker_main(["--port", str(broker.port)]) == 1
    assert "cannot listen" in capsys.readouterr().err
