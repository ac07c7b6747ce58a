"""The AWS transport: endpoint discovery and SigV4 credentials against moto, and the MQTT5
subscriber end to end over websockets against edgekit's own broker on loopback.

AWS IoT Core cannot be reached from tests. What runs here is the same class the
``aws`` backend uses, with one difference: no TLS (``tls=False``), because the
loopback broker has no certificate. The websocket handshake is SigV4-signed
exactly as for IoT Core; the broker keeps the upgrade request, and the tests
check the signed URL (and verify its signature with the secret key).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import boto3
import paho.mqtt.client as paho
import pytest
from botocore.config import Config

from edgekit.errors import ConfigurationError
from edgekit.local.mqtt import Broker
from edgekit.local.mqtt.websocket import Handshake
from edgekit.results import MqttError, collect, subscriber_for
from edgekit.results.aws import (
    SESSION_EXPIRY_S,
    IotCoreSubscriber,
    credentials_provider,
    iot_data_endpoint,
)
from edgekit.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

REGION = "us-east-1"
TOPIC = "qualityinspection/scratch-detection"
E2E_KEYS = {"AKIDE2E": "e2e-secret"}  # the broker checks the SigV4 signature with these


@pytest.fixture
def aws_env(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> str:
    """The ``aws`` backend's normal credential chain, with IoT answered by moto."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_IOT", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEDGEKITTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "edgekit-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "edgekit-token")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_url


def test_endpoint_discovery_from_describe_endpoint(aws_env: str) -> None:
    iot = boto3.client(
        "iot",
        endpoint_url=aws_env,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    # moto makes up a new prefix per call; the shape is IoT Core's ATS data endpoint
    address = iot_data_endpoint(iot)
    assert re.fullmatch(rf"[a-z0-9]+-ats\.iot\.{REGION}\.amazonaws\.com", address), address


def test_aws_backend_builds_a_sigv4_subscriber(aws_env: str) -> None:
    from awscrt import mqtt5

    sub = subscriber_for(Settings(backend="aws", region=REGION))
    assert isinstance(sub, IotCoreSubscriber)
    assert sub.host.endswith(f"-ats.iot.{REGION}.amazonaws.com")
    assert (sub.port, sub.tls, sub.region) == (443, True, REGION)
    creds = sub.provider.get_credentials().result(5)
    assert creds.access_key_id == "AKIDEDGEKITTEST"
    assert creds.secret_access_key == "edgekit-secret"
    assert creds.session_token == "edgekit-token"
    options = sub.client_options()
    assert options.session_behavior == mqtt5.ClientSessionBehaviorType.REJOIN_POST_SUCCESS
    assert options.connect_options.session_expiry_interval_sec == SESSION_EXPIRY_S
    assert options.websocket_handshake_transform is not None
    # awsiotsdk's builder makes the TLS client (not started: nothing is contacted)
    assert isinstance(sub.build_client(), mqtt5.Client)


def test_credentials_provider_wraps_a_boto3_session() -> None:
    session = boto3.Session(
        aws_access_key_id="AKIDSESSION", aws_secret_access_key="s3cr3t", region_name=REGION
    )
    creds = credentials_provider(session).get_credentials().result(5)
    assert (creds.access_key_id, creds.secret_access_key) == ("AKIDSESSION", "s3cr3t")
    assert creds.session_token is None


def test_no_credentials_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    with pytest.raises(ConfigurationError, match="no AWS credentials"):
        credentials_provider(boto3.Session(region_name=REGION))


def test_describe_endpoint_failure_is_a_clear_error(aws_env: str) -> None:
    iot = boto3.client(
        "iot",
        endpoint_url="http://127.0.0.1:9",  # nothing listens on the discard port
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    with pytest.raises(ConfigurationError, match="iot:DescribeEndpoint"):
        iot_data_endpoint(iot)


# --- end to end over websockets, against edgekit's broker ---------------------------------


@pytest.fixture(scope="module")
def ws_broker() -> Iterator[Broker]:
    """The local broker with its websocket listener; it keeps each upgrade request."""
    broker = Broker(port=0, websocket_port=0, websocket_credentials=E2E_KEYS).start()
    yield broker
    broker.stop()


def _session(token: str | None = "e2e-token") -> boto3.Session:
    return boto3.Session(
        aws_access_key_id="AKIDE2E",
        aws_secret_access_key="e2e-secret",
        aws_session_token=token,
        region_name=REGION,
    )


def _subscriber(broker: Broker, session: boto3.Session | None = None) -> IotCoreSubscriber:
    return IotCoreSubscriber(
        "127.0.0.1",
        REGION,
        credentials_provider(session or _session()),
        port=broker.websocket_port,
        tls=False,
        reconnect_delay=(0.1, 0.5),
    )


def _last_handshake(broker: Broker, before: int) -> Handshake:
    seen = broker.websocket_handshakes()
    assert len(seen) > before, "the broker saw no websocket upgrade"
    return seen[-1]


def _sigv4_signature(hs: Handshake, secret: str) -> str:
    """Recompute the query-string SigV4 signature the way IoT Core checks it."""
    query = hs.query
    params = sorted(
        (k, v[0]) for k, v in query.items() if k not in ("X-Amz-Signature", "X-Amz-Security-Token")
    )

    def enc(text: str) -> str:
        return quote(text, safe="-_.~")

    canonical_query = "&".join(f"{enc(k)}={enc(v)}" for k, v in params)
    signed = query["X-Amz-SignedHeaders"][0].split(";")
    headers = "".join(f"{h}:{(hs.header(h) or '').strip()}\n" for h in signed)
    empty = hashlib.sha256(b"").hexdigest()
    request = "\n".join(["GET", hs.path, canonical_query, headers, ";".join(signed), empty])
    scope = query["X-Amz-Credential"][0].split("/", 1)[1]
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            query["X-Amz-Date"][0],
            scope,
            hashlib.sha256(request.encode()).hexdigest(),
        ]
    )
    key = f"AWS4{secret}".encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


class Publisher:
    """A paho client on the broker's TCP port: the device side."""

    def __init__(self, port: int) -> None:
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=f"pub-{time.time_ns()}"
        )
        self.port = port
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, payload: bytes, topic: str = TOPIC) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _result(seq: int) -> bytes:
    return json.dumps(
        {
            "timestamp": "2026-11-23T10:00:00.123Z",
            "thing_name": "aws-device",
            "image_name": f"img-{seq}.jpg",
            "model": {"name": "m", "version": "1"},
            "detections": [{"class_id": 0, "label": "scratch", "score": 0.5, "box": [0, 0, 2, 2]}],
            "defect": True,
            "latency_ms": {"preprocess": 1, "inference": 2, "total": 3},
            "message_id": f"aws-{seq}",
        }
    ).encode()


def _wait(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_the_handshake_is_sigv4_signed_for_iotdevicegateway(ws_broker: Broker) -> None:
    before = len(ws_broker.websocket_handshakes())
    with _subscriber(ws_broker):
        hs = _last_handshake(ws_broker, before)
    query = hs.query
    assert hs.path == "/mqtt"
    assert hs.subprotocols == ["mqtt"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    access_key, day, region, service, terminator = query["X-Amz-Credential"][0].split("/")
    assert (access_key, region, service, terminator) == (
        "AKIDE2E",
        REGION,
        "iotdevicegateway",
        "aws4_request",
    )
    assert query["X-Amz-Date"][0].startswith(day)
    assert len(query["X-Amz-Signature"][0]) == 64
    assert query["X-Amz-Security-Token"] == ["e2e-token"]  # appended, not signed
    assert "x-amz-security-token" not in query["X-Amz-SignedHeaders"][0]
    assert query["X-Amz-Signature"][0] == _sigv4_signature(hs, "e2e-secret")
    assert query["X-Amz-Signature"][0] != _sigv4_signature(hs, "another-secret")


def test_without_a_session_token_none_is_sent(ws_broker: Broker) -> None:
    before = len(ws_broker.websocket_handshakes())
    with _subscriber(ws_broker, _session(token=None)):
        hs = _last_handshake(ws_broker, before)
    assert "X-Amz-Security-Token" not in hs.query
    assert hs.query["X-Amz-Signature"][0] == _sigv4_signature(hs, "e2e-secret")


def test_mqtt5_subscriber_end_to_end_over_signed_websockets(ws_broker: Broker) -> None:
    sub = _subscriber(ws_broker)
    results: list[Any] = []
    done = threading.Event()
    publisher = Publisher(ws_broker.port)

    def publish_when_subscribed() -> None:
        # collect() subscribes first; publish until it reports enough
        seq = 0
        while not done.is_set():
            seq += 1
            publisher.publish(_result(seq))
            publisher.publish(_result(seq))
            time.sleep(0.05)

    with sub:
        versions = ws_broker.call(
            lambda: [
                c.version for c in ws_broker.server.connections if c.client_id == sub.client_id
            ]
        )
        assert versions == [5]  # MQTT 5 over the websocket
        thread = threading.Thread(target=publish_when_subscribed, daemon=True)
        thread.start()
        try:
            table = collect(
                Settings(backend="aws"),
                subscriber=sub,
                max_messages=3,
                timeout=15,
                on_message=results.append,
            )
        finally:
            done.set()
            thread.join(10)
            publisher.close()
    assert len(table) == 3
    ids = [r["message_id"] for r in table]
    assert len(set(ids)) == 3  # each was sent twice; repeats dropped
    # Each message is sent twice. The subscription may start between the two copies of the
    # first one and collect() stops at the third new message, so only the second message's
    # repeat is sure to have arrived and been dropped.
    assert table.duplicates >= 1
    assert results == table.results
    # close() ended the session (expiry 0): the broker keeps nothing for us
    _wait(
        lambda: sub.client_id not in ws_broker.call(lambda: dict(ws_broker.server.router.sessions))
    )


def test_wildcards_unsubscribe_and_refusals(ws_broker: Broker) -> None:
    publisher = Publisher(ws_broker.port)
    got: dict[str, list[bytes]] = {"a": [], "b": []}
    try:
        with _subscriber(ws_broker) as sub:
            sub.subscribe("site/+/results", lambda m: got["a"].append(m.payload))
            sub.subscribe("site/#", lambda m: got["b"].append(m.payload))
            publisher.publish(b"1", "site/line1/results")
            publisher.publish(b"2", "site/line1/health")
            _wait(lambda: len(got["b"]) == 2 and len(got["a"]) == 1, what="deliveries")
            sub.unsubscribe("site/+/results")
            publisher.publish(b"3", "site/line2/results")
            _wait(lambda: len(got["b"]) == 3, what="the third message")
            assert got == {"a": [b"1"], "b": [b"1", b"2", b"3"]}
            with pytest.raises(MqttError, match="refused the subscription"):
                sub.subscribe("$share/g/site/#", lambda m: None)  # the broker refuses shares
            with pytest.raises(MqttError, match="not valid MQTT"):
                sub.subscribe("site/#/x", lambda m: None)
    finally:
        publisher.close()


def test_a_dropped_connection_rejoins_its_session_and_loses_nothing(ws_broker: Broker) -> None:
    publisher = Publisher(ws_broker.port)
    got: list[bytes] = []
    try:
        with _subscriber(ws_broker) as sub:
            sub.subscribe(TOPIC, lambda m: got.append(m.payload))
            before = len(ws_broker.websocket_handshakes())

            def drop() -> int:
                mine = [c for c in ws_broker.server.connections if c.client_id == sub.client_id]
                for c in mine:
                    c.transport.abort()  # the network fails; no DISCONNECT
                return len(mine)

            assert ws_broker.call(drop) == 1
            publisher.publish(b"while-away")  # queued in the persistent session (QoS 1)
            _wait(lambda: len(ws_broker.websocket_handshakes()) > before, what="a reconnect")
            _wait(lambda: got == [b"while-away"], what="the queued message")
            publisher.publish(b"after")
            _wait(lambda: got == [b"while-away", b"after"], what="the next message")
            assert sub.resubscribed == 0  # the session (and its subscription) was still there
    finally:
        publisher.close()


def test_a_lost_session_is_resubscribed_after_a_broker_restart() -> None:
    first = Broker(port=0, websocket_port=0, websocket_credentials=E2E_KEYS).start()
    port, ws_port = first.port, first.websocket_port
    got: list[bytes] = []
    second: Broker | None = None
    try:
        sub = _subscriber(first)
        with sub:
            sub.subscribe(TOPIC, lambda m: got.append(m.payload))
            first.stop()  # sessions live in memory: the restarted broker knows none
            second = Broker(
                port=port, websocket_port=ws_port, websocket_credentials=E2E_KEYS
            ).start()
            _wait(lambda: sub.resubscribed == 1, what="the re-subscription")
            publisher = Publisher(port)
            try:
                # the SUBACK may trail the resubscribed count: publish until one arrives
                deadline = time.monotonic() + 10
                while not got:
                    assert time.monotonic() < deadline, "no message after the restart"
                    publisher.publish(b"after-restart")
                    time.sleep(0.1)
            finally:
                publisher.close()
        assert set(got) == {b"after-restart"}
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_connect_failure_is_a_clear_error() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sub = IotCoreSubscriber(
        "127.0.0.1", REGION, credentials_provider(_session()), port=port, tls=False
    )
    with pytest.raises(MqttError, match="cannot connect to AWS IoT Core at 127.0.0.1"):
        sub.connect(timeout=5)
    sub.close()  # safe after a failed connect
    with pytest.raises(MqttError, match="not connected"):
        sub.subscribe(TOPIC, lambda m: None)
