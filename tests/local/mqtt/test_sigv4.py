"""The websocket listener checks SigV4 presigned URLs as AWS IoT Core does (issue 12, item 10).

Before, a missing or garbage signature was accepted. Signed URLs here come from
awscrt's signer (the one the results transport uses) and botocore's presigner,
never from the broker's own verifier.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

paho = pytest.importorskip("paho.mqtt.client")

from edgekit.local.endpoints import DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY  # noqa: E402
from edgekit.local.mqtt import Broker  # noqa: E402
from edgekit.local.mqtt.sigv4 import LOCAL_CREDENTIALS, SigV4Verifier  # noqa: E402

pytestmark = [pytest.mark.timeout(60)]

HOST = "127.0.0.1:8443"
SIGNED_AT = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
HEADERS = (("Host", HOST), ("Upgrade", "websocket"), ("Connection", "Upgrade"))


def crt_presign(
    path: str = "/mqtt",
    *,
    host: str = HOST,
    key: str = "testing",
    secret: str = "testing",
    token: str | None = None,
    when: datetime | None = SIGNED_AT,
    expires: int | None = None,
    service: str = "iotdevicegateway",
) -> str:
    """``path`` presigned by awscrt, the token appended after signing (IoT Core's way)."""
    from awscrt import auth, http

    request = http.HttpRequest("GET", path, http.HttpHeaders([("Host", host)]))
    options: dict[str, object] = {}
    if when is not None:
        options["date"] = when
    config = auth.AwsSigningConfig(
        algorithm=auth.AwsSigningAlgorithm.V4,
        signature_type=auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS,
        credentials_provider=auth.AwsCredentialsProvider.new_static(key, secret, token),
        region="us-east-1",
        service=service,
        omit_session_token=True,
        expiration_in_seconds=expires,
        **options,
    )
    auth.aws_sign_request(request, config).result(5)
    return request.path


def _without(target: str, name: str) -> str:
    parts = urlsplit(target)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != name]
    return f"{parts.path}?{urlencode(query)}"


def _replace(target: str, name: str, value: str) -> str:
    parts = urlsplit(target)
    query = [(k, value if k == name else v) for k, v in parse_qsl(parts.query)]
    return f"{parts.path}?{urlencode(query)}"


def check(target: str, now: datetime = SIGNED_AT + timedelta(seconds=10), **kw: object) -> str:
    headers = kw.pop("headers", HEADERS)
    return SigV4Verifier(**kw).check(target, headers, now) or "ok"  # type: ignore[arg-type]


# ---------------------------------------------------------------- the verifier, table-driven
def test_a_valid_signature_passes_with_the_token_appended_after_signing() -> None:
    assert check(crt_presign()) == "ok"
    assert check(crt_presign(token="session-token")) == "ok"
    assert check(crt_presign("/mqtt?x=1&y=a%20b", expires=86400)) == "ok"


@pytest.mark.parametrize(
    "name",
    ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature"],
)
def test_each_missing_parameter_is_named(name: str) -> None:
    problem = check(_without(crt_presign(), name))
    assert problem.startswith("missing SigV4 query parameter") and name in problem


@pytest.mark.parametrize(
    ("target", "now", "expected"),
    [
        ("/mqtt", None, "missing SigV4 query parameter"),
        (_replace(crt_presign(), "X-Amz-Signature", "0" * 64), None, "signature does not match"),
        (_replace(crt_presign(), "X-Amz-Signature", "garbage"), None, "signature does not match"),
        (crt_presign(secret="other"), None, "signature does not match"),
        (crt_presign(key="AKIDUNKNOWN"), None, "'AKIDUNKNOWN' is not known"),
        (crt_presign(service="iotdata"), None, "sign for 'iotdevicegateway'"),
        (_replace(crt_presign(), "X-Amz-Algorithm", "AWS4-HMAC-SHA1"), None, "unsupported"),
        (_replace(crt_presign(), "X-Amz-Date", "yesterday"), None, "not yyyymmddTHHMMSSZ"),
        (crt_presign(expires=60), SIGNED_AT + timedelta(seconds=61), "expired"),
        (crt_presign(), SIGNED_AT + timedelta(minutes=6), "expired"),  # no X-Amz-Expires: 5 min
        (crt_presign(), SIGNED_AT - timedelta(minutes=10), "in the future"),
        (crt_presign(expires=8 * 86400), None, "X-Amz-Expires"),
        (_replace(crt_presign(), "X-Amz-SignedHeaders", "upgrade"), None, "must include host"),
    ],
    ids=[
        "unsigned",
        "zero-signature",
        "garbage-signature",
        "wrong-secret",
        "unknown-key",
        "wrong-service",
        "algorithm",
        "bad-date",
        "expired",
        "expired-default",
        "future",
        "expires-too-long",
        "no-host",
    ],
)
def test_refusals_name_what_was_wrong(target: str, now: datetime | None, expected: str) -> None:
    assert expected in check(target, now or SIGNED_AT + timedelta(seconds=10))


def test_a_different_host_header_breaks_the_signature() -> None:
    other = (("Host", "127.0.0.1:9999"),)
    assert "signature does not match" in check(crt_presign(), headers=other)
    assert "not in the request" in check(crt_presign(), headers=(("Upgrade", "websocket"),))


def test_botocore_presigned_urls_verify_too() -> None:
    # over http botocore hashes the empty payload, as IoT Core's canonical request does
    request = AWSRequest("GET", f"http://{HOST}/mqtt", headers={"host": HOST})
    request.context["timestamp"] = SIGNED_AT.strftime("%Y%m%dT%H%M%SZ")
    signer = SigV4QueryAuth(Credentials("testing", "testing"), "iotdevicegateway", "eu-west-1", 600)
    signer._modify_request_before_signing(request)  # what add_auth does, at a fixed time
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    url = urlsplit(request.url)
    assert check(f"{url.path}?{url.query}&X-Amz-Signature={signature}") == "ok"


def test_the_default_credentials_are_the_local_backends() -> None:
    assert dict(LOCAL_CREDENTIALS) == {DUMMY_ACCESS_KEY_ID: DUMMY_SECRET_ACCESS_KEY}


# ---------------------------------------------------------------- the listener
@pytest.fixture
def broker() -> Iterator[Broker]:
    b = Broker(port=0, websocket_port=0).start()
    yield b
    b.stop()


def _upgrade(port: int, target: str) -> tuple[int, str]:
    """Send an upgrade request for ``target``; (status, body) of the reply."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: mqtt\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            if data.startswith(b"HTTP/1.1 101") and b"\r\n\r\n" in data:
                break
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body.decode()


def test_the_listener_refuses_with_403_and_says_why(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="edgekit.local.mqtt")
    port = broker.websocket_port
    host = f"127.0.0.1:{port}"
    now = datetime.now(UTC)
    cases = {
        "/mqtt": "missing SigV4 query parameter",
        _replace(crt_presign(host=host, when=now), "X-Amz-Signature", "garbage"): "does not match",
        crt_presign(host=host, when=now - timedelta(hours=2), expires=60): "expired",
    }
    for target, reason in cases.items():
        status, body = _upgrade(port, target)
        assert (status, reason in body) == (403, True), (status, body)
    assert _upgrade(port, crt_presign(host=host, when=now, token="t"))[0] == 101
    refusals = [r.getMessage() for r in caplog.records if "refused /mqtt" in r.getMessage()]
    assert len(refusals) == 3


def _paho(port: int, path: str) -> tuple[paho.Client, threading.Event, list[object]]:
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2,
        client_id=f"ws-{uuid.uuid4().hex[:8]}",
        transport="websockets",
    )
    client.ws_set_options(path=path)
    connected, errors = threading.Event(), []
    client.on_connect = lambda c, u, f, rc, p: connected.set()
    try:
        client.connect("127.0.0.1", port, keepalive=30)
        client.loop_start()
    except Exception as exc:  # paho raises on the upgrade's HTTP status
        errors.append(exc)
    return client, connected, errors


def test_paho_connects_only_with_a_valid_signature(broker: Broker) -> None:
    port = broker.websocket_port
    signed = crt_presign(host=f"127.0.0.1:{port}", when=datetime.now(UTC))
    good, connected, _ = _paho(port, signed)
    try:
        assert connected.wait(5)
    finally:
        good.loop_stop()
        good.disconnect()
    bad, bad_connected, errors = _paho(port, "/mqtt")
    try:
        assert errors or not bad_connected.wait(1)
    finally:
        bad.loop_stop()
