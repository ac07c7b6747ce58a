"""kill -9 of the broker loses nothing it acknowledged (issue 12, item 2 and the chaos test).

The broker runs as a real process with ``--state-dir``. A paho subscriber with a
persistent session (clean session 0) and a QoS 1 publisher sending 2000 numbered
messages; the broker is killed with SIGKILL midway and restarted on the same port
and directory; both clients reconnect on their own (paho resends what was not
acknowledged; the subscriber does not subscribe again), and the subscriber must
receive every number (duplicates allowed). Also: a retained message survives.

In-process (`Broker(state_dir=...)`): a restart keeps persistent sessions, their
queues and retained messages, not clean sessions; a session that expired while
the broker was down is not restored; a PUBACK waits for the disk; what a session
drops (its queue is full) leaves the store. And the broker `edgekit local up` starts
keeps its sessions when it is killed and `up` restarts it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

paho = pytest.importorskip("paho.mqtt.client")
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from edgekit.local import endpoints, process  # noqa: E402
from edgekit.local.mqtt import Broker, BrokerLimits, mqtt_ping  # noqa: E402
from edgekit.local.mqtt import journal as journal_module  # noqa: E402
from edgekit.local.mqtt.store import (  # noqa: E402
    DurableStore,
    StoredMessage,
    StoredSession,
    StoredState,
    StoredSubscription,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

COUNT = 2000
OFFLINE_AT = 1100  # received when the offline-at-the-kill subscriber leaves
KILL_AT = 1500  # PUBACKs the publisher has when the broker is killed
TOPIC = "results/line-1"


class BrokerProcess:
    """``python -m edgekit.local.mqtt`` with a state directory, killable with SIGKILL."""

    def __init__(self, state_dir: Path, log: Path) -> None:
        self.state_dir = state_dir
        self.log = log
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        port_file = self.state_dir.parent / "mqtt.port"
        port_file.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "edgekit.local.mqtt", "--port", str(self.port)]
        argv += ["--port-file", str(port_file), "--state-dir", str(self.state_dir)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        _wait(
            lambda: port_file.exists() and mqtt_ping("127.0.0.1", int(port_file.read_text())),
            20,
            lambda: f"the broker did not start; its log:\n{self.log.read_text()}",
        )
        self.port = int(port_file.read_text())

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _wait(condition: Callable[[], bool], timeout: float, why: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(why())
        time.sleep(0.02)


class Client:
    """A paho 3.1.1 client that reconnects by itself (a persistent session unless ``clean``)."""

    def __init__(self, port: int, client_id: str, *, clean: bool = False) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean
        )
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
        self.lock = threading.Lock()
        self.received: list[bytes] = []
        self.connected = threading.Event()
        self.session_present: list[bool] = []
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert self.connected.wait(10), "no CONNACK"

    def _on_connect(self, c: object, u: object, flags: object, rc: object, p: object) -> None:
        self.session_present.append(bool(getattr(flags, "session_present", False)))
        self.connected.set()

    def _on_message(self, c: object, u: object, msg: paho.MQTTMessage) -> None:
        with self.lock:
            self.received.append(msg.payload)

    def numbers(self) -> set[int]:
        with self.lock:
            return {int(p) for p in self.received if p.isdigit()}

    def subscribe(self, topic_filter: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        self.client.subscribe(topic_filter, qos=1)
        assert done.wait(10), "no SUBACK"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(tmp_path / "mqtt-state", tmp_path / "mqtt.log")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.mark.parametrize("subscriber", ["online", "offline-at-the-kill"])
def test_every_result_is_delivered_across_kill_9_of_the_broker(
    broker: BrokerProcess, subscriber: str
) -> None:
    sub = Client(broker.port, f"results-reader-{uuid.uuid4().hex[:6]}")
    sub.subscribe("results/#")
    pub = Client(broker.port, f"device-{uuid.uuid4().hex[:6]}", clean=True)
    pub.client.publish("config/line-1", b"retained-config", qos=1, retain=True).wait_for_publish(10)
    infos = [pub.client.publish(TOPIC, str(n).encode(), qos=1) for n in range(COUNT)]

    def acked() -> int:
        return sum(1 for info in infos if info.is_published())

    if subscriber == "offline-at-the-kill":
        # Its session queues what arrives meanwhile: at most COUNT - OFFLINE_AT messages,
        # under the broker's max_queued (1000), so none is dropped for being over it.
        _wait(lambda: len(sub.numbers()) >= OFFLINE_AT, 60, lambda: "the subscriber got little")
        sub.client.disconnect()
        sub.client.loop_stop()
    _wait(lambda: acked() >= KILL_AT, 60, lambda: f"only {acked()} messages acknowledged")
    before = acked()
    broker.kill9()
    broker.start()  # same port, same directory
    if subscriber == "offline-at-the-kill":
        sub.client.reconnect()
        sub.client.loop_start()

    _wait(lambda: acked() == COUNT, 90, lambda: f"the publisher got {acked()} of {COUNT} PUBACKs")
    _wait(
        lambda: len(sub.numbers()) == COUNT,
        60,
        lambda: (
            f"{subscriber}: the subscriber received {len(sub.numbers())} of {COUNT} "
            f"(missing e.g. {sorted(set(range(COUNT)) - sub.numbers())[:10]}); "
            f"{before} were acknowledged before the kill; the broker's log ends:\n"
            + "\n".join(broker.log.read_text().splitlines()[-20:])
        ),
    )
    assert sub.numbers() == set(range(COUNT))
    assert sub.session_present[-1] is True  # the session and its subscription came back
    print(
        f"\n{subscriber}: {before} of {COUNT} acknowledged before kill -9; "
        f"received {len(sub.received)} messages, {len(sub.numbers())} distinct"
    )

    late = Client(broker.port, f"late-{uuid.uuid4().hex[:6]}", clean=True)
    late.subscribe("config/#")
    _wait(lambda: b"retained-config" in late.received, 10, lambda: "the retained message is gone")
    for client in (late, pub, sub):
        client.close()


# ---------------------------------------------------------------- in-process: Broker(state_dir=...)
def _restart(broker: Broker, state_dir: Path) -> Broker:
    port = broker.port
    broker.stop()
    return Broker(port=port, state_dir=state_dir).start()


def _stored(broker: Broker) -> StoredState:
    store = broker.server.store
    assert store is not None
    return broker.call(store.load)


def test_a_restart_keeps_persistent_sessions_their_queues_and_retained_messages(
    tmp_path: Path,
) -> None:
    broker = Broker(state_dir=tmp_path / "state").start()
    try:
        sub = Client(broker.port, "keeper")
        sub.subscribe("line/#")
        sub.close()  # offline: what follows is queued in its session
        clean = Client(broker.port, "forgetful", clean=True)
        clean.subscribe("line/#")
        pub = Client(broker.port, "device", clean=True)
        for n in range(50):
            pub.client.publish("line/1", str(n).encode(), qos=1).wait_for_publish(10)
        pub.client.publish("cfg/1", b"retained", qos=1, retain=True).wait_for_publish(10)
        stored = _stored(broker)
        assert set(stored.sessions) == {"keeper"}  # clean sessions stay in memory
        assert len(stored.sessions["keeper"].messages) == 50
        for client in (pub, clean):
            client.close()

        broker = _restart(broker, tmp_path / "state")
        sub = Client(broker.port, "keeper")
        assert sub.session_present == [True]
        _wait(lambda: sub.numbers() == set(range(50)), 20, lambda: f"got {sub.numbers()}")
        late = Client(broker.port, "late", clean=True)
        late.subscribe("cfg/#")
        _wait(lambda: late.received == [b"retained"], 10, lambda: f"got {late.received}")
        _wait(
            lambda: _stored(broker).sessions["keeper"].messages == [],
            10,
            lambda: "acknowledged messages stay in the store",
        )
        for client in (sub, late):
            client.close()
    finally:
        broker.stop()


def test_a_session_that_expired_while_the_broker_was_down_is_not_restored(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    with DurableStore.open(state) as store:
        gone = time.time() - 10
        store.save_session(StoredSession("expired", 4, 5, gone))
        store.save_session(StoredSession("alive", 4, 3600, gone))
        for client_id in ("expired", "alive"):
            store.subscribe(client_id, StoredSubscription("t/#", 1))
            store.enqueue(client_id, StoredMessage("t/1", b"queued", 1))
    broker = Broker(state_dir=state).start()
    try:
        assert set(_stored(broker).sessions) == {"alive"}
        expired = Client(broker.port, "expired")
        alive = Client(broker.port, "alive")
        assert (expired.session_present, alive.session_present) == ([False], [True])
        _wait(lambda: alive.received == [b"queued"], 10, lambda: f"got {alive.received}")
        for client in (expired, alive):
            client.close()
    finally:
        broker.stop()


def test_puback_waits_until_the_queued_message_is_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    armed = threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        if armed.is_set():
            gate.wait(20)
        real_fsync(fd)

    monkeypatch.setattr(journal_module.os, "fsync", slow_fsync)
    broker = Broker(state_dir=tmp_path / "state").start()
    try:
        sub = Client(broker.port, "persistent")
        sub.subscribe("r/#")
        pub = Client(broker.port, "device", clean=True)
        armed.set()
        info = pub.client.publish("r/1", b"1", qos=1)
        info.wait_for_publish(0.5)
        assert not info.is_published()  # the disk has not said yes yet
        gate.set()
        info.wait_for_publish(10)
        assert info.is_published()
        for client in (sub, pub):
            client.close()
    finally:
        gate.set()
        broker.stop()


def test_messages_a_session_drops_leave_the_store_too(tmp_path: Path) -> None:
    broker = Broker(limits=BrokerLimits(max_queued=5), state_dir=tmp_path / "state").start()
    try:
        sub = Client(broker.port, "slow")
        sub.subscribe("line/#")
        sub.close()
        pub = Client(broker.port, "device", clean=True)
        for n in range(20):
            pub.client.publish("line/1", str(n).encode(), qos=1).wait_for_publish(10)
        pub.close()
        kept = [m.payload for m in _stored(broker).sessions["slow"].messages]
        assert kept == [str(n).encode() for n in range(15, 20)]  # the oldest were dropped
    finally:
        broker.stop()


@pytest.mark.skipif(not endpoints.greengrass_available(), reason="no Greengrass emulator here")
def test_the_broker_of_edgekit_local_up_keeps_sessions_across_kill_9(tmp_path: Path) -> None:
    home = tmp_path / "home"
    try:
        local = endpoints.up(home)
        sub = Client(local.mqtt_port, "notebook")
        sub.subscribe("results/#")
        sub.close()
        pub = Client(local.mqtt_port, "device", clean=True)
        for n in range(20):
            pub.client.publish("results/a", str(n).encode(), qos=1).wait_for_publish(10)
        pub.close()
        os.kill(process.running(home)["mqtt"], signal.SIGKILL)
        again = endpoints.up(home)  # restarts the dead broker on its port, same directory
        assert again.mqtt == local.mqtt
        sub = Client(again.mqtt_port, "notebook")
        assert sub.session_present == [True]
        _wait(lambda: sub.numbers() == set(range(20)), 20, lambda: f"got {sub.numbers()}")
        sub.close()
    finally:
        endpoints.down(home)
