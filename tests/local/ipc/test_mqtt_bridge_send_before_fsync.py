"""The IoT Core bridge hands a QoS 1 message to the broker before its fsync (issue 16, item 4).

PublishToIoTCore still answers only once the message is durable in the disk spool, but
the broker does not wait for the disk: an fsync took 4 ms p50 on the benchmark machine,
all of it between the app's result and the subscriber. A spool whose fsync blocks until
the test lets it go shows the order without timing anything.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from edgekit.local.ipc.mqtt_bridge import MqttBridge
from edgekit.local.ipc.mqtt_spool import MqttSpool
from edgekit.local.mqtt import Broker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


class SlowDisk(MqttSpool):
    """A disk spool whose fsync waits until ``release`` is set."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.syncing = threading.Event()
        self.release = threading.Event()

    def _sync(self, end: int) -> None:
        self.syncing.set()
        self.release.wait(30)
        super()._sync(end)


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    b = Broker(host="127.0.0.1", port=0).start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def received(broker: Broker) -> Iterator[queue.Queue[paho.MQTTMessage]]:
    got: queue.Queue[paho.MQTTMessage] = queue.Queue()
    subacks: queue.Queue[int] = queue.Queue()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="cloud-side")
    client.on_message = lambda c, u, m: got.put(m)
    client.on_subscribe = lambda c, u, mid, rc, p: subacks.put(mid)
    client.connect(broker.host, broker.port)
    client.loop_start()
    _, mid = client.subscribe("results/#", 1)
    assert subacks.get(timeout=10) == mid
    yield got
    client.disconnect()
    client.loop_stop()


def test_a_qos1_message_reaches_the_broker_while_its_fsync_runs(
    broker: Broker, received: queue.Queue[paho.MQTTMessage], tmp_path: Path
) -> None:
    spool = SlowDisk(tmp_path / "spool")
    bridge = MqttBridge(f"{broker.host}:{broker.port}", "device", spool=spool)
    bridge.start()
    try:
        assert bridge.wait_connected(10)
        errors: list[BaseException] = []

        def publish() -> None:
            try:
                bridge.publish("results/one", b"first", 1)
            except BaseException as exc:  # reported below
                errors.append(exc)

        caller = threading.Thread(target=publish)
        caller.start()
        assert spool.syncing.wait(10)
        try:
            # The fsync has not finished, and the subscriber has the message already.
            message = received.get(timeout=10)
            assert caller.is_alive(), "PublishToIoTCore answered before the fsync finished"
        finally:
            spool.release.set()
            caller.join(10)
        assert (message.topic, message.payload) == ("results/one", b"first")
        assert not errors
        # The caller heard success only after the record was durable.
        assert spool._synced >= spool._written
    finally:
        spool.release.set()
        bridge.stop()
        spool.close()


def test_a_failed_fsync_is_still_an_error_for_the_caller(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = MqttSpool(tmp_path / "spool")
    bridge = MqttBridge(f"{broker.host}:{broker.port}", "device-2", spool=spool)
    bridge.start()
    try:
        assert bridge.wait_connected(10)

        def no_space(fd: int) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr("edgekit.local.ipc.mqtt_spool.os.fsync", no_space)
        with pytest.raises(Exception, match="cannot write the IoT Core spool in"):
            bridge.publish("results/two", b"second", 1)
    finally:
        monkeypatch.undo()
        bridge.stop()
        spool.close()
