"""Broker bounds (issue 12, item 9): retained floods, queue bytes, session expiry, session cap.

Each test fails on the broker before these bounds existed: 2000 retained QoS 1
messages made a new subscriber disconnect in a loop; offline queues were bounded
by count only; 3.1.1 persistent sessions never expired and their number had no cap.
Clients are paho-mqtt on loopback, plus a raw socket where a test must not acknowledge.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

paho = pytest.importorskip("paho.mqtt.client")
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

from edgekit.local.mqtt import Broker, BrokerLimits  # noqa: E402
from edgekit.local.mqtt import packets as pk  # noqa: E402
from edgekit.local.mqtt.limits import DEFAULT_SESSION_EXPIRY_S  # noqa: E402
from edgekit.local.mqtt.wire import decode_varint  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def _cid() -> str:
    return f"bound-{uuid.uuid4().hex[:8]}"


class Client:
    """A paho client (3.1.1 unless ``v5``) that records messages, CONNACKs and disconnects."""

    def __init__(
        self,
        port: int,
        client_id: str | None = None,
        *,
        v5: bool = False,
        clean: bool = True,
        expect_refusal: bool = False,
        **connect_props: Any,
    ) -> None:
        self.client_id = client_id or _cid()
        protocol = paho.MQTTv5 if v5 else paho.MQTTv311
        kwargs: dict[str, Any] = {} if v5 else {"clean_session": clean}
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=protocol, **kwargs
        )
        self.client.max_inflight_messages_set(0)  # unlimited on our side: the broker paces
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.connacks: queue.Queue[Any] = queue.Queue()
        self.client.on_connect = lambda c, u, f, rc, p: self.connacks.put((f, rc, p))
        self.disconnects = 0
        self.client.on_disconnect = self._on_disconnect
        self.subacks: queue.Queue[Any] = queue.Queue()
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.subacks.put(mid)
        props = None
        if v5:
            props = Properties(PacketTypes.CONNECT)
            for name, value in connect_props.items():
                setattr(props, name, value)
        self.client.connect(
            "127.0.0.1", port, keepalive=30, clean_start=clean if v5 else 3, properties=props
        )
        self.client.loop_start()
        flags, self.rc, self.connack_props = self.connacks.get(timeout=5)
        self.session_present = bool(flags.session_present)
        if not expect_refusal:
            assert not self.rc.is_failure, self.rc

    def _on_disconnect(self, *args: Any) -> None:
        self.disconnects += 1

    def subscribe(self, topic: str, qos: int = 1) -> None:
        _, mid = self.client.subscribe(topic, qos)
        assert self.subacks.get(timeout=5) == mid

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(10)

    def take(self, count: int, timeout: float = 30.0) -> list[paho.MQTTMessage]:
        deadline = time.monotonic() + timeout
        return [self.messages.get(timeout=max(deadline - time.monotonic(), 0.01))
                for _ in range(count)]  # fmt: skip

    def nothing(self, wait: float = 0.3) -> None:
        with pytest.raises(queue.Empty):
            m = self.messages.get(timeout=wait)
            pytest.fail(f"unexpected message on {m.topic}")

    def close(self, **disconnect_props: Any) -> None:
        props = None
        if disconnect_props:
            props = Properties(PacketTypes.DISCONNECT)
            for name, value in disconnect_props.items():
                setattr(props, name, value)
        self.client.disconnect(properties=props)
        self.client.loop_stop()


@pytest.fixture
def made() -> Iterator[list[Client]]:
    clients: list[Client] = []
    yield clients
    for c in clients:
        c.client.loop_stop()
        c.client.disconnect()


def _connect(broker: Broker, made: list[Client], *args: Any, **kwargs: Any) -> Client:
    c = Client(broker.port, *args, **kwargs)
    made.append(c)
    return c


def _wait(predicate: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _publish_retained(broker: Broker, made: list[Client], count: int, payload: bytes) -> None:
    pub = _connect(broker, made)
    infos = [pub.client.publish(f"flood/{i}", payload, qos=1, retain=True) for i in range(count)]
    for info in infos:
        info.wait_for_publish(30)


# ---------------------------------------------------------------- retained floods
@pytest.mark.parametrize("v5", [False, True], ids=["mqtt311", "mqtt5"])
def test_2000_retained_qos1_messages_reach_a_new_subscriber_without_a_disconnect(
    made: list[Client], v5: bool
) -> None:
    with Broker() as broker:
        _publish_retained(broker, made, 2000, b"r" * 64)
        sub = _connect(broker, made, v5=v5)
        sub.subscribe("flood/#")
        got = sub.take(2000)
        assert sorted(m.topic for m in got) == sorted(f"flood/{i}" for i in range(2000))
        assert all(m.retain for m in got)
        sub.nothing()
        assert sub.disconnects == 0
        stats = broker.stats()
        assert stats["overflow_disconnects"] == 0 and stats["queued_dropped"] == 0
        assert stats["retained_messages"] == 2000
        _wait(lambda: broker.stats()["retained_backlog"] == 0, "the backlog to drain")


def test_retained_messages_larger_than_the_write_buffer_are_paced_not_disconnected(
    made: list[Client],
) -> None:
    # 40 x 100 KiB = 4 MiB of retained messages for a write buffer of 256 KiB
    with Broker(limits=BrokerLimits(max_outgoing_bytes=256 * 1024)) as broker:
        _publish_retained(broker, made, 40, b"b" * 100_000)
        sub = _connect(broker, made)
        sub.subscribe("flood/#")
        got = sub.take(40)
        assert len({m.topic for m in got}) == 40
        assert sub.disconnects == 0
        assert broker.stats()["overflow_disconnects"] == 0


class RawV5:
    """A raw MQTT 5 client that acknowledges only when told to."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def send(self, packet: pk.Packet) -> None:
        self.sock.sendall(pk.encode(packet, pk.MQTT_5))

    def recv(self, timeout: float = 5.0) -> pk.Packet:
        self.sock.settimeout(timeout)
        while True:
            if len(self.buf) >= 2:
                try:
                    length, pos = decode_varint(self.buf, 1, len(self.buf))
                except Exception:
                    length, pos = 1 << 30, 0
                if len(self.buf) >= pos + length:
                    frame, self.buf = self.buf[: pos + length], self.buf[pos + length :]
                    return pk.decode(frame, pk.MQTT_5)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the broker")
            self.buf += chunk

    def close(self) -> None:
        self.sock.close()


def test_a_retained_flood_respects_the_mqtt5_receive_maximum(made: list[Client]) -> None:
    with Broker() as broker:
        _publish_retained(broker, made, 300, b"m")
        raw = RawV5(broker.port)
        try:
            raw.send(pk.Connect(_cid(), pk.MQTT_5, True, 30, properties={"receive_maximum": 7}))
            assert isinstance(raw.recv(), pk.Connack)
            raw.send(pk.Subscribe(1, [("flood/#", pk.SubscriptionOptions(1))]))
            assert isinstance(raw.recv(), pk.Suback)
            seen: list[pk.Publish] = []
            for _ in range(7):
                p = raw.recv()
                assert isinstance(p, pk.Publish)
                seen.append(p)
            with pytest.raises(TimeoutError):
                raw.recv(0.3)  # the window is full: nothing more until a PUBACK
            while len(seen) < 300:
                raw.send(pk.Ack(pk.PUBACK, seen[-7].packet_id if len(seen) >= 7 else 0))
                # after each PUBACK exactly one more arrives
                p = raw.recv()
                assert isinstance(p, pk.Publish)
                seen.append(p)
            assert len({p.topic for p in seen}) == 300
        finally:
            raw.close()


# ---------------------------------------------------------------- queue bytes
def test_an_offline_queue_over_its_byte_bound_drops_the_oldest_and_counts(
    made: list[Client], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="edgekit.local.mqtt")
    limits = BrokerLimits(max_queued_bytes=10_000)
    with Broker(limits=limits) as broker:
        cid = _cid()
        sub = _connect(broker, made, cid, clean=False)
        sub.subscribe("q/#")
        sub.close()
        pub = _connect(broker, made)
        for i in range(10):  # 10 x (3 + 3000) bytes; 3 fit in 10,000
            pub.publish("q/x", b"%d" % i + b"." * 2999)
        assert broker.stats()["queued_dropped"] == 7
        assert broker.stats()["queued_bytes"] == 3 * 3003
        back = _connect(broker, made, cid, clean=False)
        assert back.session_present
        assert [m.payload[:1] for m in back.take(3)] == [b"7", b"8", b"9"]
        back.nothing()
    drops = [r.getMessage() for r in caplog.records if "dropped a QoS 1 message" in r.getMessage()]
    assert len(drops) == 7
    assert all(cid in m and "'q/x'" in m for m in drops), drops


def test_a_message_larger_than_the_whole_queue_is_dropped_and_counted(made: list[Client]) -> None:
    with Broker(limits=BrokerLimits(max_queued_bytes=1000)) as broker:
        cid = _cid()
        sub = _connect(broker, made, cid, clean=False)
        sub.subscribe("big/#")
        sub.close()
        pub = _connect(broker, made)
        pub.publish("big/x", b"x" * 2000)
        pub.publish("big/x", b"small")
        assert broker.stats()["queued_dropped"] == 1
        back = _connect(broker, made, cid, clean=False)
        assert [m.payload for m in back.take(1)] == [b"small"]


# ---------------------------------------------------------------- session expiry
def _session_gone(broker: Broker, cid: str) -> bool:
    return cid not in broker.call(lambda: set(broker.server.router.sessions))


def test_mqtt5_session_expiry_of_1s_then_no_session(made: list[Client]) -> None:
    with Broker() as broker:
        cid = _cid()
        first = _connect(broker, made, cid, v5=True, SessionExpiryInterval=1)
        first.subscribe("exp/#")
        first.close()
        assert not _session_gone(broker, cid)  # kept for now
        _wait(lambda: _session_gone(broker, cid), "the session to expire")
        back = _connect(broker, made, cid, v5=True, clean=False, SessionExpiryInterval=1)
        assert not back.session_present
        assert broker.stats()["sessions_expired"] == 1


def test_mqtt5_disconnect_changes_the_session_expiry(made: list[Client]) -> None:
    with Broker() as broker:
        cid = _cid()
        first = _connect(broker, made, cid, v5=True, SessionExpiryInterval=600)
        first.close(SessionExpiryInterval=0)  # 0 on DISCONNECT: the session ends now
        _wait(lambda: _session_gone(broker, cid), "the session to end")
        second = _connect(broker, made, cid, v5=True, clean=False, SessionExpiryInterval=600)
        assert not second.session_present
        second.close(SessionExpiryInterval=1)
        _wait(lambda: _session_gone(broker, cid), "the session to expire after 1 s")


def test_mqtt5_session_expiry_is_capped_and_connack_says_so(made: list[Client]) -> None:
    with Broker() as broker:
        c = _connect(broker, made, v5=True, SessionExpiryInterval=0xFFFFFFFF)
        assert c.connack_props.SessionExpiryInterval == DEFAULT_SESSION_EXPIRY_S
        short = _connect(broker, made, v5=True, SessionExpiryInterval=60)
        assert not hasattr(short.connack_props, "SessionExpiryInterval")  # kept as asked


def test_mqtt311_persistent_sessions_expire(made: list[Client]) -> None:
    with Broker(limits=BrokerLimits(session_expiry=1)) as broker:
        cid = _cid()
        first = _connect(broker, made, cid, clean=False)
        first.subscribe("exp311/#")
        first.close()
        back = _connect(broker, made, cid, clean=False)  # within the second: still there
        assert back.session_present
        back.close()
        _wait(lambda: _session_gone(broker, cid), "the 3.1.1 session to expire")
        again = _connect(broker, made, cid, clean=False)
        assert not again.session_present


def test_the_default_311_session_expiry_is_iot_cores_hour() -> None:
    assert BrokerLimits().session_expiry == 3600 == DEFAULT_SESSION_EXPIRY_S


# ---------------------------------------------------------------- session cap
def test_the_session_cap_ends_the_oldest_offline_session_first(made: list[Client]) -> None:
    with Broker(limits=BrokerLimits(max_sessions=3)) as broker:
        old, newer = _cid(), _cid()
        _connect(broker, made, old, clean=False).close()
        _wait(lambda: broker.stats()["sessions_online"] == 0, "the first to go offline")
        _connect(broker, made, newer, clean=False).close()
        _wait(lambda: broker.stats()["sessions_online"] == 0, "the second to go offline")
        _connect(broker, made)  # online: 3 sessions
        _connect(broker, made)  # a 4th: the oldest offline session makes room
        assert _session_gone(broker, old) and not _session_gone(broker, newer)
        assert broker.stats()["sessions_evicted"] == 1
        assert broker.stats()["sessions"] == 3


# 3.1.1 CONNACK return code 3 "server unavailable" (paho reports it as 0x88); MQTT 5 0x97.
@pytest.mark.parametrize(
    ("v5", "code"), [(False, "Server unavailable"), (True, "Quota exceeded")], ids=["311", "5"]
)
def test_a_client_over_the_cap_with_all_sessions_online_is_refused(
    made: list[Client], v5: bool, code: str
) -> None:
    with Broker(limits=BrokerLimits(max_sessions=2)) as broker:
        _connect(broker, made)
        _connect(broker, made)
        refused = _connect(broker, made, v5=v5, expect_refusal=True)
        assert refused.rc.getName() == code
        assert broker.stats()["sessions_refused"] == 1
        assert broker.stats()["sessions"] == 2


# ---------------------------------------------------------------- retained store bytes
def test_the_retained_store_is_bounded_by_bytes(
    made: list[Client], caplog: pytest.LogCaptureFixture
) -> None:
    with Broker(limits=BrokerLimits(max_retained_bytes=1000)) as broker:
        live = _connect(broker, made)
        live.subscribe("keep/#")
        pub = _connect(broker, made)
        for name in ("a", "b", "c"):  # 406 bytes each: the third does not fit
            pub.publish(f"keep/{name}", b"v" * 400, retain=True)
        assert len(live.take(3)) == 3  # delivered all the same
        assert broker.stats()["retained_refused"] == 1
        pub.publish("keep/a", b"small", retain=True)  # replacing one frees its bytes
        pub.publish("keep/c", b"v" * 400, retain=True)
        late = _connect(broker, made)
        late.subscribe("keep/#")
        got = {m.topic: m.payload for m in late.take(3)}
        assert got == {"keep/a": b"small", "keep/b": b"v" * 400, "keep/c": b"v" * 400}
        assert broker.stats()["retained_bytes"] == 3 * 6 + 5 + 800
    assert any("keep/c" in r.getMessage() for r in caplog.records)


def test_stats_start_at_zero() -> None:
    with Broker() as broker:
        stats = broker.stats()
    assert {k: v for k, v in stats.items() if v} == {}
    assert {"queued_dropped", "qos0_dropped", "sessions_refused", "retained_bytes"} <= set(stats)


def test_a_stuck_live_subscriber_is_still_disconnected_and_its_session_kept(
    made: list[Client],
) -> None:
    # Live traffic overflowing an online queue still means "not keeping up".
    with Broker(limits=BrokerLimits(max_inflight=2, max_queued=5)) as broker:
        cid = _cid()
        raw = RawV5(broker.port)
        raw.send(pk.Connect(cid, pk.MQTT_5, True, 30, properties={"session_expiry_interval": 60}))
        assert isinstance(raw.recv(), pk.Connack)
        raw.send(pk.Subscribe(1, [("stuck/#", pk.SubscriptionOptions(1))]))
        assert isinstance(raw.recv(), pk.Suback)
        pub = _connect(broker, made)
        for i in range(8):
            pub.publish("stuck/x", b"%d" % i)
        _wait(lambda: broker.stats()["overflow_disconnects"] == 1, "the disconnect")
        assert not _session_gone(broker, cid)
        raw.close()
    threading.Event().wait(0)  # nothing left running


@pytest.mark.parametrize("v5", [False, True], ids=["mqtt311", "mqtt5"])
def test_subscriptions_per_session_are_capped(made: list[Client], v5: bool) -> None:
    with Broker(limits=BrokerLimits(max_subscriptions=3)) as broker:
        c = _connect(broker, made, v5=v5)
        codes: list[Any] = []
        c.client.on_subscribe = lambda cl, u, mid, rcs, p: codes.append(rcs)
        _, mid = c.client.subscribe([(f"cap/{i}", 1) for i in range(5)])
        _wait(lambda: bool(codes), "the SUBACK")
        names = [rc.getName() for rc in codes[0]]
        refused = "Quota exceeded" if v5 else "Unspecified error"
        assert names == ["Granted QoS 1"] * 3 + [refused] * 2, names
        assert broker.stats()["subscriptions_refused"] == 2
        codes.clear()
        c.client.subscribe("cap/0", 1)  # subscribing again to a filter it has is fine
        _wait(lambda: bool(codes), "the second SUBACK")
        assert [rc.getName() for rc in codes[0]] == ["Granted QoS 1"]


def test_in_flight_deliveries_are_bounded_in_bytes(made: list[Client]) -> None:
    with Broker(limits=BrokerLimits(max_inflight_bytes=10_000)) as broker:
        raw = RawV5(broker.port)
        try:
            raw.send(pk.Connect(_cid(), pk.MQTT_5, True, 30))
            assert isinstance(raw.recv(), pk.Connack)
            raw.send(pk.Subscribe(1, [("fat/#", pk.SubscriptionOptions(1))]))
            assert isinstance(raw.recv(), pk.Suback)
            pub = _connect(broker, made)
            for i in range(4):  # 4 x 4005 bytes: two fit in 10,000 in flight
                pub.publish("fat/x", b"%d" % i + b"." * 3999)
            first = [raw.recv(), raw.recv()]
            with pytest.raises(TimeoutError):
                raw.recv(0.3)
            raw.send(pk.Ack(pk.PUBACK, first[0].packet_id))  # type: ignore[union-attr]
            third = raw.recv()
            assert isinstance(third, pk.Publish) and third.payload[:1] == b"2"
        finally:
            raw.close()
