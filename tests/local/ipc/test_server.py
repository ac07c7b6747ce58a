"""The IPC server against the OFFICIAL awsiot Greengrass IPC clients (classic and V2).

Components connect exactly as on a device: only the env vars
AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT and SVCUID. IoT Core
operations go through a real MQTT broker on loopback, observed with paho.
"""

from __future__ import annotations

import contextlib
import datetime
import queue
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("awsiot.greengrasscoreipc")

import awsiot.greengrasscoreipc  # noqa: E402
import paho.mqtt.client as paho  # noqa: E402
from awsiot.eventstreamrpc import (  # noqa: E402
    Connection,
    LifecycleHandler,
    MessageAmendment,
)
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2  # noqa: E402
from awsiot.greengrasscoreipc.model import (  # noqa: E402
    BinaryMessage,
    FailedUpdateConditionCheckError,
    GetConfigurationRequest,
    InvalidArgumentsError,
    JsonMessage,
    PublishMessage,
    PublishToTopicRequest,
    ResourceNotFoundError,
    ServiceError,
    SubscribeToTopicRequest,
    UnauthorizedError,
)

from edgekit.local.ipc.memory_host import MemoryHost  # noqa: E402
from edgekit.local.ipc.server import IpcServer  # noqa: E402
from edgekit.local.mqtt import Broker  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SOCKET_ENV = "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"
ALL_PUBSUB = {"aws.greengrass.ipc.pubsub": {"all": {"operations": ["*"], "resources": ["*"]}}}


# ---------------------------------------------------------------- fixtures and helpers
@pytest.fixture
def host(broker: Broker) -> MemoryHost:
    return MemoryHost(thing_name="dev1", mqtt_endpoint=broker.endpoint)


@pytest.fixture
def server(host: MemoryHost, sockdir: Path) -> Iterator[IpcServer]:
    srv = IpcServer(sockdir / "ipc.sock", host).start()
    yield srv
    srv.stop()


@pytest.fixture
def connect(server: IpcServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Connect like a component process: set the two env vars, call the SDK with no arguments."""
    clients: list[Any] = []

    def _connect(token: str, *, v2: bool = True) -> Any:
        monkeypatch.setenv(SOCKET_ENV, str(server.socket_path))
        monkeypatch.setenv("SVCUID", token)
        client = GreengrassCoreIPCClientV2() if v2 else awsiot.greengrasscoreipc.connect()
        clients.append(client)
        return client

    yield _connect
    for client in clients:
        client.close()


class Collector:
    """Stream events into a queue the test can wait on."""

    def __init__(self) -> None:
        self.events: queue.Queue[Any] = queue.Queue()

    def __call__(self, event: Any) -> None:
        self.events.put(event)

    def get(self, timeout: float = 5.0) -> Any:
        return self.events.get(timeout=timeout)

    def assert_empty(self, wait: float = 0.3) -> None:
        time.sleep(wait)
        assert self.events.empty(), f"unexpected event {self.events.queue[0]!r}"


class PahoPeer:
    """An MQTT client on the broker: the 'cloud side' of IoT Core operations."""

    def __init__(self, broker: Broker) -> None:
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self._subacks: queue.Queue[int] = queue.Queue()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"peer-{id(self)}")
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.on_subscribe = lambda c, u, mid, rc, p: self._subacks.put(mid)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        _, mid = self.client.subscribe(topic_filter, qos)
        assert self._subacks.get(timeout=5) == mid

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        self.client.publish(topic, payload, qos=qos).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def peer(broker: Broker) -> Iterator[PahoPeer]:
    p = PahoPeer(broker)
    yield p
    p.close()


@contextlib.contextmanager
def ipc_raises(error: type[Exception], pattern: str) -> Iterator[None]:
    """Like pytest.raises(match=...), but on the SDK error's ``message`` (its str() is empty)."""
    with pytest.raises(error) as caught:
        yield
    text = getattr(caught.value, "message", None) or str(caught.value)
    assert re.search(pattern, text), f"{pattern!r} not in {text!r}"


def _json(message: dict[str, Any]) -> PublishMessage:
    return PublishMessage(json_message=JsonMessage(message=message))


# ---------------------------------------------------------------- connection
def test_v2_client_connects_with_env_vars_and_reads_configuration(
    host: MemoryHost, connect: Callable[..., Any]
) -> None:
    token = host.add_component("com.example.A", configuration={"model": {"threshold": 0.5}})
    host.add_component("com.example.B", configuration={"port": 8080})
    client = connect(token)

    whole = client.get_configuration()
    assert whole.component_name == "com.example.A"
    assert whole.value == {"model": {"threshold": 0.5}}
    assert client.get_configuration(key_path=["model"]).value == {"threshold": 0.5}
    # a leaf comes back wrapped in its own key, as on the nucleus
    assert client.get_configuration(key_path=["model", "threshold"]).value == {"threshold": 0.5}
    # another component's configuration needs no policy
    other = client.get_configuration(component_name="com.example.B", key_path=["port"])
    assert (other.component_name, other.value) == ("com.example.B", {"port": 8080})
    with ipc_raises(ResourceNotFoundError, "Key not found"):
        client.get_configuration(key_path=["model", "missing"])
    with pytest.raises(ResourceNotFoundError):
        client.get_configuration(component_name="com.example.Nope")


def test_classic_client_connect_and_operations(
    host: MemoryHost, connect: Callable[..., Any]
) -> None:
    token = host.add_component("com.example.A", configuration={"k": "v"}, access_control=ALL_PUBSUB)
    client = connect(token, v2=False)

    op = client.new_get_configuration()
    op.activate(GetConfigurationRequest(key_path=["k"])).result(5)
    assert op.get_response().result(5).value == {"k": "v"}

    got = Collector()

    class Handler(awsiot.greengrasscoreipc.client.SubscribeToTopicStreamHandler):
        def on_stream_event(self, event: Any) -> None:
            got(event)

    sub = client.new_subscribe_to_topic(Handler())
    sub.activate(SubscribeToTopicRequest(topic="classic/t")).result(5)
    sub.get_response().result(5)
    pub = client.new_publish_to_topic()
    pub.activate(PublishToTopicRequest(topic="classic/t", publish_message=_json({"n": 1}))).result(
        5
    )
    pub.get_response().result(5)
    event = got.get()
    assert event.json_message.message == {"n": 1}
    assert event.json_message.context.topic == "classic/t"
    sub.close().result(5)


@pytest.mark.parametrize("token", ["not-a-token", ""])
def test_wrong_or_missing_token_is_refused(
    host: MemoryHost, server: IpcServer, connect: Callable[..., Any], token: str
) -> None:
    good = host.add_component("com.example.A")
    with ipc_raises(Exception, "(?i)access denied|AccessDenied"):
        connect(token)
    # the server goes on serving everyone else
    assert connect(good).get_configuration().component_name == "com.example.A"


def test_ping_keeps_the_connection_usable(host: MemoryHost, server: IpcServer) -> None:
    from awscrt.io import (
        ClientBootstrap,
        DefaultHostResolver,
        EventLoopGroup,
        SocketDomain,
        SocketOptions,
    )

    token = host.add_component("com.example.A")
    elg = EventLoopGroup(1)
    options = SocketOptions()
    options.domain = SocketDomain.Local
    connection = Connection(
        host_name=str(server.socket_path),
        port=0,
        bootstrap=ClientBootstrap(elg, DefaultHostResolver(elg)),
        socket_options=options,
        connect_message_amender=MessageAmendment.create_static_authtoken_amender(token),
    )
    connection.connect(LifecycleHandler()).result(5)
    try:
        connection.send_ping().result(5)
        client = GreengrassCoreIPCClientV2(
            awsiot.greengrasscoreipc.client.GreengrassCoreIPCClient(connection)
        )
        assert client.get_configuration().component_name == "com.example.A"
    finally:
        connection.close().result(5)


# ---------------------------------------------------------------- local pub/sub
def test_json_and_binary_messages_between_components(
    host: MemoryHost, connect: Callable[..., Any]
) -> None:
    a = connect(host.add_component("com.example.A", access_control=ALL_PUBSUB))
    b = connect(host.add_component("com.example.B", access_control=ALL_PUBSUB))
    got = Collector()
    a.subscribe_to_topic(topic="factory/+/status", on_stream_event=got)

    b.publish_to_topic(
        topic="factory/line1/status", publish_message=_json({"ok": True, "n": [1, 2]})
    )
    b.publish_to_topic(
        topic="factory/line2/status",
        publish_message=PublishMessage(binary_message=BinaryMessage(message=b"\x00\xffraw")),
    )
    b.publish_to_topic(topic="factory/line1/other", publish_message=_json({"no": 1}))

    first, second = got.get(), got.get()
    assert first.json_message.message == {"ok": True, "n": [1, 2]}
    assert first.json_message.context.topic == "factory/line1/status"
    assert second.binary_message.message == b"\x00\xffraw"
    assert second.binary_message.context.topic == "factory/line2/status"
    got.assert_empty()


def test_multi_level_wildcard_and_receive_modes(
    host: MemoryHost, connect: Callable[..., Any]
) -> None:
    a = connect(host.add_component("com.example.A", access_control=ALL_PUBSUB))
    b = connect(host.add_component("com.example.B", access_control=ALL_PUBSUB))
    own_too, others_only, default_wild = Collector(), Collector(), Collector()
    a.subscribe_to_topic(topic="t/#", receive_mode="RECEIVE_ALL_MESSAGES", on_stream_event=own_too)
    a.subscribe_to_topic(
        topic="t/x", receive_mode="RECEIVE_MESSAGES_FROM_OTHERS", on_stream_event=others_only
    )
    a.subscribe_to_topic(topic="t/#", on_stream_event=default_wild)  # wildcard: from others

    a.publish_to_topic(topic="t/x", publish_message=_json({"from": "A"}))
    assert own_too.get().json_message.message == {"from": "A"}
    others_only.assert_empty(0.1)
    default_wild.assert_empty(0.1)

    b.publish_to_topic(topic="t/x", publish_message=_json({"from": "B"}))
    for c in (own_too, others_only, default_wild):
        assert c.get().json_message.message == {"from": "B"}
    b.publish_to_topic(topic="t", publish_message=_json({"parent": 1}))  # 't/#' matches 't'
    assert own_too.get().json_message.context.topic == "t"


def test_pubsub_authorization(host: MemoryHost, connect: Callable[..., Any]) -> None:
    acl = {
        "aws.greengrass.ipc.pubsub": {
            "pub": {"operations": ["aws.greengrass#PublishToTopic"], "resources": ["out/*"]},
            "sub": {"operations": ["aws.greengrass#SubscribeToTopic"], "resources": ["in/#"]},
        }
    }
    limited = connect(host.add_component("com.example.Limited", access_control=acl))
    nobody = connect(host.add_component("com.example.NoPolicy"))

    limited.publish_to_topic(topic="out/a/b", publish_message=_json({}))
    limited.subscribe_to_topic(topic="in/#", on_stream_event=Collector())
    with ipc_raises(UnauthorizedError, "com.example.Limited.*PublishToTopic.*elsewhere"):
        limited.publish_to_topic(topic="elsewhere", publish_message=_json({}))
    with ipc_raises(UnauthorizedError, "SubscribeToTopic"):
        limited.subscribe_to_topic(topic="in/+", on_stream_event=Collector())
    with pytest.raises(UnauthorizedError):
        nobody.publish_to_topic(topic="out/a", publish_message=_json({}))
    with pytest.raises(UnauthorizedError):
        nobody.subscribe_to_topic(topic="out/a", on_stream_event=Collector())


def test_invalid_publish_requests(host: MemoryHost, connect: Callable[..., Any]) -> None:
    a = connect(host.add_component("com.example.A", access_control=ALL_PUBSUB))
    with ipc_raises(InvalidArgumentsError, "wildcard"):
        a.publish_to_topic(topic="a/+", publish_message=_json({}))
    with ipc_raises(InvalidArgumentsError, "exactly one"):
        a.publish_to_topic(topic="a", publish_message=PublishMessage())
    with ipc_raises(InvalidArgumentsError, "receiveMode"):
        a.subscribe_to_topic(topic="a", receive_mode="SOMETIMES", on_stream_event=Collector())


def test_closing_a_subscription_stops_delivery(
    host: MemoryHost, server: IpcServer, connect: Callable[..., Any]
) -> None:
    a = connect(host.add_component("com.example.A", access_control=ALL_PUBSUB))
    got = Collector()
    _, operation = a.subscribe_to_topic(topic="c/t", on_stream_event=got)
    a.publish_to_topic(topic="c/t", publish_message=_json({"n": 1}))
    got.get()
    operation.close().result(5)
    deadline = time.monotonic() + 5
    while server.router.pubsub.subscription_count and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.02)
    assert server.router.pubsub.subscription_count == 0  # type: ignore[union-attr]
    a.publish_to_topic(topic="c/t", publish_message=_json({"n": 2}))
    got.assert_empty()


def test_disconnecting_client_releases_its_subscriptions(
    host: MemoryHost, server: IpcServer, connect: Callable[..., Any]
) -> None:
    a = connect(host.add_component("com.example.A", access_control=ALL_PUBSUB))
    a.subscribe_to_topic(topic="d/t", on_stream_event=Collector())
    assert server.router.pubsub.subscription_count == 1  # type: ignore[union-attr]
    a.close()
    deadline = time.monotonic() + 5
    while server.connection_count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.connection_count == 0
    assert server.router.pubsub.subscription_count == 0  # type: ignore[union-attr]


def test_unsupported_operations_answer_service_error(
    host: MemoryHost, connect: Callable[..., Any]
) -> None:
    a = connect(host.add_component("com.example.A"))
    started = time.monotonic()
    with ipc_raises(ServiceError, "PauseComponent is not supported"):
        a.pause_component(component_name="com.example.B")
    with ipc_raises(ServiceError, "ListComponents is not supported"):
        a.list_components()
    assert time.monotonic() - started < 2.0
    assert a.get_configuration().component_name == "com.example.A"  # stream handling intact


# ---------------------------------------------------------------- IoT Core (MQTT bridge)
MQTT_ACL = {
    "aws.greengrass.ipc.mqttproxy": {
        "results": {
            "operations": ["aws.greengrass#PublishToIoTCore"],
            "resources": ["results/${iot:thingName}/#"],
        },
        "commands": {
            "operations": ["aws.greengrass#SubscribeToIoTCore"],
            "resources": ["cmd/+/go", "broadcast/#"],
        },
    }
}


def test_publish_to_iot_core_reaches_an_mqtt_subscriber(
    host: MemoryHost, server: IpcServer, connect: Callable[..., Any], peer: PahoPeer
) -> None:
    assert server.bridge is not None and server.bridge.wait_connected(5)
    peer.subscribe("results/#")
    a = connect(host.add_component("com.example.A", access_control=MQTT_ACL))

    a.publish_to_iot_core(topic_name="results/dev1/image-1", qos="0", payload=b'{"defect": true}')
    a.publish_to_iot_core(topic_name="results/dev1/image-2", qos="1", payload=b"\x00\x01")
    got = {m.topic: m for m in (peer.messages.get(timeout=5), peer.messages.get(timeout=5))}
    assert got["results/dev1/image-1"].payload == b'{"defect": true}'
    assert got["results/dev1/image-2"].payload == b"\x00\x01"
    # a QoS 1 subscription gets each message at the QoS it was published with
    assert (got["results/dev1/image-1"].qos, got["results/dev1/image-2"].qos) == (0, 1)

    with ipc_raises(UnauthorizedError, "PublishToIoTCore.*results/dev2/x"):
        a.publish_to_iot_core(topic_name="results/dev2/x", qos="0", payload=b"")
    with ipc_raises(InvalidArgumentsError, "qos"):
        a.publish_to_iot_core(topic_name="results/dev1/x", qos="2", payload=b"")


def test_publish_to_iot_core_over_the_iot_core_size_limit_is_refused_before_spooling(
    host: MemoryHost, server: IpcServer, connect: Callable[..., Any], peer: PahoPeer
) -> None:
    """A 2 MiB QoS 1 publish used to return success and then wedge the bridge (issue 12, item 1).

    The nucleus checks the payload against mqtt.maxMessageSizeInBytes (default 128 KiB, AWS
    IoT Core's message size limit) before spooling and answers a ServiceError naming both sizes.
    """
    assert server.bridge is not None and server.bridge.wait_connected(5)
    peer.subscribe("results/#")
    a = connect(host.add_component("com.example.A", access_control=MQTT_ACL))
    big = 2 * 1024 * 1024
    for qos in ("1", "0"):
        with ipc_raises(ServiceError, rf"results/dev1/big.*{big} bytes.*131072 bytes"):
            a.publish_to_iot_core(topic_name="results/dev1/big", qos=qos, payload=b"x" * big)
    with ipc_raises(ServiceError, r"131073 bytes exceeds.*131072 bytes"):
        a.publish_to_iot_core(topic_name="results/dev1/big", qos="1", payload=b"x" * 131073)
    # exactly the limit is accepted, and nothing was spooled for the refused ones
    a.publish_to_iot_core(topic_name="results/dev1/edge", qos="1", payload=b"y" * 131072)
    got = peer.messages.get(timeout=5)
    assert (got.topic, len(got.payload)) == ("results/dev1/edge", 131072)
    assert peer.messages.empty()
    assert server.bridge.stats()["dropped"] == 0


def test_subscribe_to_iot_core_receives_broker_messages(
    host: MemoryHost, server: IpcServer, connect: Callable[..., Any], peer: PahoPeer
) -> None:
    assert server.bridge is not None and server.bridge.wait_connected(5)
    a = connect(host.add_component("com.example.A", access_control=MQTT_ACL))
    b = connect(host.add_component("com.example.B", access_control=MQTT_ACL))
    got_a, got_b = Collector(), Collector()
    _, op_a = a.subscribe_to_iot_core(topic_name="cmd/+/go", qos="1", on_stream_event=got_a)
    b.subscribe_to_iot_core(topic_name="cmd/+/go", qos="0", on_stream_event=got_b)
    assert server.bridge.filters == {"cmd/+/go": 1}  # one broker subscription, highest QoS

    peer.publish("cmd/line7/go", b"start")
    for got in (got_a, got_b):
        event = got.get()
        assert event.message.topic_name == "cmd/line7/go"
        assert event.message.payload == b"start"
    peer.publish("cmd/line7/stop", b"no")
    got_a.assert_empty(0.2)

    op_a.close().result(5)
    peer.publish("cmd/x/go", b"again")
    assert got_b.get().message.payload == b"again"
    got_a.assert_empty(0.2)

    with ipc_raises(UnauthorizedError, "SubscribeToIoTCore"):
        a.subscribe_to_iot_core(topic_name="cmd/#", qos="0", on_stream_event=Collector())


def test_iot_core_without_a_broker_is_a_clear_service_error(
    sockdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = MemoryHost(mqtt_endpoint=None)
    token = host.add_component(
        "com.example.A",
        access_control={
            "aws.greengrass.ipc.mqttproxy": {"p": {"operations": ["*"], "resources": ["*"]}}
        },
    )
    with IpcServer(sockdir / "nb.sock", host) as srv:
        monkeypatch.setenv(SOCKET_ENV, str(srv.socket_path))
        monkeypatch.setenv("SVCUID", token)
        client = GreengrassCoreIPCClientV2()
        try:
            with ipc_raises(ServiceError, "no MQTT broker"):
                client.publish_to_iot_core(topic_name="a", qos="0", payload=b"")
        finally:
            client.close()


# ---------------------------------------------------------------- configuration, state, details
def test_update_and_watch_configuration(
    host: MemoryHost, server: IpcServer, connect: Callable[..., Any]
) -> None:
    token = host.add_component(
        "com.example.A", configuration={"model": {"threshold": 0.5, "name": "m"}}
    )
    host.add_component("com.example.B", configuration={"x": 1})
    a = connect(token)
    events = Collector()
    a.subscribe_to_configuration_update(key_path=["model"], on_stream_event=events)

    now = datetime.datetime.now(datetime.UTC)
    a.update_configuration(key_path=["model"], timestamp=now, value_to_merge={"threshold": 0.7})
    assert a.get_configuration(key_path=["model"]).value == {"threshold": 0.7, "name": "m"}
    event = events.get().configuration_update_event
    assert (event.component_name, event.key_path) == ("com.example.A", ["model"])

    with pytest.raises(FailedUpdateConditionCheckError):
        a.update_configuration(
            key_path=["model"],
            timestamp=now - datetime.timedelta(seconds=60),
            value_to_merge={"threshold": 0},
        )
    with ipc_raises(InvalidArgumentsError, "accessControl"):
        a.update_configuration(
            key_path=[],
            timestamp=now + datetime.timedelta(seconds=1),
            value_to_merge={"accessControl": {}},
        )

    # the device runtime reports a deployment's change through the server API
    server.notify_configuration_changed("com.example.A", ["model", "name"])
    assert events.get().configuration_update_event.key_path == ["model", "name"]
    server.notify_configuration_changed("com.example.A", ["other"])  # not under ["model"]
    server.notify_configuration_changed("com.example.B", ["model"])  # another component
    events.assert_empty()

    watch_b = Collector()
    a.subscribe_to_configuration_update(component_name="com.example.B", on_stream_event=watch_b)
    server.notify_configuration_changed("com.example.B", ["x"])
    assert watch_b.get().configuration_update_event.component_name == "com.example.B"
    with pytest.raises(ResourceNotFoundError):
        a.subscribe_to_configuration_update(key_path=["nope"], on_stream_event=Collector())


def test_update_state_reaches_the_host(host: MemoryHost, connect: Callable[..., Any]) -> None:
    a = connect(host.add_component("com.example.A", state="STARTING"))
    a.update_state(state="RUNNING")
    assert host.reported_states == [("com.example.A", "RUNNING")]
    with ipc_raises(InvalidArgumentsError, "RUNNING or ERRORED"):
        a.update_state(state="FINISHED")


def test_get_component_details_needs_a_cli_policy(
    host: MemoryHost, connect: Callable[..., Any]
) -> None:
    cli_acl = {
        "aws.greengrass.Cli": {
            "details": {
                "operations": ["aws.greengrass#GetComponentDetails"],
                "resources": ["com.example.*"],
            }
        }
    }
    a = connect(host.add_component("com.example.A", version="1.2.3", access_control=cli_acl))
    host.add_component("com.example.B", version="2.0.0", configuration={"p": 1}, state="ERRORED")
    host.add_component("other.C")
    details = a.get_component_details(component_name="com.example.B").component_details
    assert (details.component_name, details.version, details.state) == (
        "com.example.B",
        "2.0.0",
        "ERRORED",
    )
    assert details.configuration == {"p": 1}
    with pytest.raises(UnauthorizedError):
        a.get_component_details(component_name="other.C")
    with pytest.raises(ResourceNotFoundError):
        a.get_component_details(component_name="com.example.Missing")
    b = connect(host.add_component("com.example.NoCli"))
    with pytest.raises(UnauthorizedError):
        b.get_component_details(component_name="com.example.B")


# ---------------------------------------------------------------- socket path handling
def test_socket_path_rules(sockdir: Path) -> None:
    import socket

    from edgekit.errors import LocalBackendError

    host = MemoryHost()
    with pytest.raises(LocalBackendError, match="unix sockets allow 107"):
        IpcServer(sockdir / ("x" * 120), host)

    stale = sockdir / "stale.sock"
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(stale))  # a socket file nobody listens on, as after a crash
    leftover.close()
    with IpcServer(stale, host) as first:
        with pytest.raises(LocalBackendError, match="already serving"):
            IpcServer(stale, host).start()
        assert first.socket_path.exists()
    assert not stale.exists()  # removed on stop

    not_a_socket = sockdir / "file.sock"
    not_a_socket.write_text("keep me")
    with pytest.raises(LocalBackendError, match="not a socket"):
        IpcServer(not_a_socket, host).start()
    assert not_a_socket.read_text() == "keep me"
