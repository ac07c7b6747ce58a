"""The AWS transport: endpoint discovery and SigV4 credentials against moto, and the awscrt
subscriber end to end over websockets against a real broker on loopback.

AWS IoT Core cannot be reached from tests. What runs here is the same class the
``aws`` backend uses, with one difference: no TLS (``tls=False``), because the
loopback broker has no certificate. The websocket handshake is SigV4-signed
exactly as for IoT Core, and the test checks the broker received the signed URL.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import paho.mqtt.client as paho
import pytest
from botocore.config import Config

from edgekit.errors import ConfigurationError
from edgekit.results import collect, subscriber_for
from edgekit.results.aws import (
    IotCoreSubscriber,
    credentials_provider,
    iot_data_endpoint,
)
from edgekit.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

REGION = "us-east-1"
TOPIC = "qualityinspection/scratch-detection"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


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
    sub = subscriber_for(Settings(backend="aws", region=REGION))
    assert isinstance(sub, IotCoreSubscriber)
    assert sub.host.endswith(f"-ats.iot.{REGION}.amazonaws.com")
    assert (sub.port, sub.tls, sub.region) == (443, True, REGION)
    creds = sub.provider.get_credentials().result(5)
    assert creds.access_key_id == "AKIDEDGEKITTEST"
    assert creds.secret_access_key == "edgekit-secret"
    assert creds.session_token == "edgekit-token"
    assert sub._tls_context() is not None  # TLS for IoT Core


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


# --- end to end over websockets --------------------------------------------------------------


@dataclass
class WsBroker:
    tcp_port: int = 0
    ws_port: int = 0
    paths: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def ws_broker() -> Iterator[WsBroker]:
    """amqtt with a TCP and a websocket listener; records each websocket request path."""
    from amqtt.broker import Broker

    info = WsBroker()

    class RecordingBroker(Broker):
        async def ws_connected(self, websocket: Any, listener_name: str) -> None:
            info.paths.append(websocket.request.path)
            await super().ws_connected(websocket, listener_name)

    config = {
        "listeners": {
            "default": {"type": "tcp", "bind": "127.0.0.1:0"},
            "ws": {"type": "ws", "bind": "127.0.0.1:0"},
        },
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> Any:
            broker = RecordingBroker(config)
            await broker.start()
            return broker

        holder["broker"] = broker = loop.run_until_complete(start())
        info.tcp_port = broker._servers["default"].instance.sockets[0].getsockname()[1]
        info.ws_port = next(iter(broker._servers["ws"].instance.sockets)).getsockname()[1]
        ready.set()
        loop.run_forever()
        loop.run_until_complete(broker.shutdown())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield info
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def _publish(port: int, payloads: list[bytes]) -> None:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"pub-{time.time_ns()}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for raw in payloads:
            client.publish(TOPIC, raw, qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


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


def test_awscrt_subscriber_end_to_end_over_signed_websockets(ws_broker: WsBroker) -> None:
    session = boto3.Session(
        aws_access_key_id="AKIDE2E",
        aws_secret_access_key="e2e-secret",
        aws_session_token="e2e-token",
        region_name=REGION,
    )
    sub = IotCoreSubscriber(
        "127.0.0.1", REGION, credentials_provider(session), port=ws_broker.ws_port, tls=False
    )
    before = len(ws_broker.paths)
    with sub:
        # the handshake URL was signed with SigV4 for iotdevicegateway
        path = ws_broker.paths[before]
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        assert parts.path == "/mqtt"
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
        assert query["X-Amz-Credential"][0].startswith("AKIDE2E/")
        assert query["X-Amz-Credential"][0].endswith(f"/{REGION}/iotdevicegateway/aws4_request")
        assert len(query["X-Amz-Signature"][0]) == 64
        assert query["X-Amz-Security-Token"] == ["e2e-token"]  # appended, not signed
        assert "x-amz-security-token" not in query["X-Amz-SignedHeaders"][0]

        results: list[Any] = []
        done = threading.Event()

        def publish_when_subscribed() -> None:
            # collect() subscribes first; publish until it reports enough
            seq = 0
            while not done.is_set():
                seq += 1
                _publish(ws_broker.tcp_port, [_result(seq), _result(seq)])
                time.sleep(0.05)

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
    assert len(table) == 3
    ids = [r["message_id"] for r in table]
    assert len(set(ids)) == 3  # each was sent twice; repeats dropped
    assert table.duplicates >= 2
    assert results == table.results
