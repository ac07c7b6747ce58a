"""IoT Core's Device Shadow service on the local broker: MQTT requests, moto's shadows.

A paho client plays the device: it publishes to the reserved shadow topics and reads the
service's answers; boto3 ``iot-data`` (the HTTP data plane, moto) sees the same shadows.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import paho.mqtt.client as paho
import pytest

from edgekit.local.moto_shadows import ShadowService, parse_request
from edgekit.local.mqtt import Broker

pytestmark = pytest.mark.integration
THING, SHADOW = "shadow-line-1", "edgekit-health"
NAMED = f"$aws/things/{THING}/shadow/name/{SHADOW}"
CLASSIC = f"$aws/things/{THING}/shadow"


def _client(moto_url: str, service: str, region: str = "eu-west-1") -> Any:
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=moto_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


class Device:
    """A paho client that publishes shadow requests and collects the service's answers."""

    def __init__(self, broker: Broker) -> None:
        self.answers: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"dev-{id(self)}")
        self.client.on_message = lambda c, u, m: self.answers.put((m.topic, json.loads(m.payload)))
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe(
            [(f"$aws/things/+/shadow/{s}/+", 1) for s in ("update", "get", "delete")]
            + [(f"$aws/things/+/shadow/name/+/{s}/+", 1) for s in ("update", "get", "delete")]
        )
        assert subscribed.wait(5)

    def request(self, topic: str, payload: bytes | dict[str, Any]) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(topic, body, qos=1).wait_for_publish(5)

    def take(self, topic: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no answer on {topic}"
            got, body = self.answers.get(timeout=remaining)
            if got == topic:
                return body

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def service(moto_url: str, broker: Broker) -> Iterator[ShadowService]:
    _client(moto_url, "iot").create_thing(thingName=THING)  # a region other than the default
    shadows = ShadowService(moto_url, lambda: broker.port, client_id="test-shadow-service")
    shadows.start()
    try:
        assert shadows.connected.wait(10), "the shadow service did not subscribe"
        yield shadows
    finally:
        shadows.stop()


@pytest.fixture
def device(service: ShadowService, broker: Broker) -> Iterator[Device]:
    dev = Device(broker)
    try:
        yield dev
    finally:
        dev.close()


def test_an_update_over_mqtt_is_the_shadow_boto3_reads(moto_url: str, device: Device) -> None:
    reported = {"package_sha256": "a" * 64, "results_published": 3, "problem": None}
    device.request(f"{NAMED}/update", {"state": {"reported": reported}, "clientToken": "t-1"})
    accepted = device.take(f"{NAMED}/update/accepted")
    assert accepted["state"] == {"reported": reported} and accepted["clientToken"] == "t-1"
    assert accepted["version"] == 1 and isinstance(accepted["timestamp"], int)
    assert "package_sha256" in accepted["metadata"]["reported"]
    documents = device.take(f"{NAMED}/update/documents")
    assert "previous" not in documents and documents["current"]["version"] == 1
    assert documents["current"]["state"]["reported"]["results_published"] == 3

    data = _client(moto_url, "iot-data")
    shadow = json.loads(data.get_thing_shadow(thingName=THING, shadowName=SHADOW)["payload"].read())
    assert shadow["state"]["reported"] == {"package_sha256": "a" * 64, "results_published": 3}
    assert data.list_named_shadows_for_thing(thingName=THING)["results"] == [SHADOW]

    # A second update merges; null deletes a field; documents shows previous and current.
    device.request(f"{NAMED}/update", {"state": {"reported": {"results_published": None}}})
    assert device.take(f"{NAMED}/update/accepted")["version"] == 2
    documents = device.take(f"{NAMED}/update/documents")
    assert documents["previous"]["state"]["reported"]["results_published"] == 3
    assert documents["current"]["state"]["reported"] == {"package_sha256": "a" * 64}

    device.request(f"{NAMED}/get", b"")
    got = device.take(f"{NAMED}/get/accepted")
    assert got["state"]["reported"] == {"package_sha256": "a" * 64} and got["version"] == 2


def test_bad_requests_get_the_documented_rejections(device: Device) -> None:
    device.request(f"{NAMED}/update", b'{"state": {"reported": ')
    rejected = device.take(f"{NAMED}/update/rejected")
    assert rejected["code"] == 400 and rejected["message"] == "Invalid JSON"
    assert isinstance(rejected["timestamp"], int)
    device.request(f"{NAMED}/update", {"reported": {"a": 1}, "clientToken": "t-2"})
    rejected = device.take(f"{NAMED}/update/rejected")
    assert rejected == {
        "code": 400,
        "message": "Missing required node: state",
        "timestamp": rejected["timestamp"],
        "clientToken": "t-2",
    }
    nobody = "$aws/things/no-such-thing/shadow/name/edgekit-health/update"
    device.request(nobody, {"state": {"reported": {"a": 1}}, "clientToken": "t-3"})
    rejected = device.take(f"{nobody}/rejected")
    assert (rejected["code"], rejected["message"], rejected["clientToken"]) == (
        404,
        "Thing not found",
        "t-3",
    )
    device.request(f"{NAMED}/update", {"state": {"reported": {"a": 1}}, "version": 99})
    assert device.take(f"{NAMED}/update/rejected")["code"] == 409
    device.request(f"{CLASSIC}/name/never-written/get", {"clientToken": "t-4"})
    rejected = device.take(f"{CLASSIC}/name/never-written/get/rejected")
    assert rejected["code"] == 404 and rejected["clientToken"] == "t-4"


def test_the_classic_shadow_delta_and_delete(moto_url: str, device: Device) -> None:
    device.request(f"{CLASSIC}/update", {"state": {"desired": {"mode": "on"}}})
    assert device.take(f"{CLASSIC}/update/accepted")["state"] == {"desired": {"mode": "on"}}
    assert device.take(f"{CLASSIC}/update/delta")["state"] == {"mode": "on"}
    data = _client(moto_url, "iot-data")
    classic = json.loads(data.get_thing_shadow(thingName=THING)["payload"].read())
    assert classic["state"]["desired"] == {"mode": "on"}
    device.request(f"{CLASSIC}/delete", {"clientToken": "t-5"})
    deleted = device.take(f"{CLASSIC}/delete/accepted")
    assert deleted["clientToken"] == "t-5" and deleted["version"] >= 1
    device.request(f"{CLASSIC}/get", b"")
    assert device.take(f"{CLASSIC}/get/rejected")["code"] == 404


def test_request_checks_without_a_broker(service: ShadowService) -> None:
    assert parse_request(b"\xff\xfe", update=True).code == 415  # type: ignore[union-attr]
    big = {"state": {"reported": {"x": "y" * 9000}}}
    assert parse_request(json.dumps(big).encode(), update=True).code == 413  # type: ignore[union-attr]
    deep: dict[str, Any] = {"v": 1}
    for _ in range(7):
        deep = {"n": deep}
    nested = parse_request(json.dumps({"state": {"reported": deep}}).encode(), update=True)
    assert "nesting" in nested.message  # type: ignore[union-attr]
    assert parse_request(b'{"state": {"other": {}}}', update=True).code == 400  # type: ignore[union-attr]
    assert service.handle("$aws/things/x/shadow/update/accepted", b"{}") == []  # not a request


def test_a_request_that_fails_inside_the_service_is_rejected_and_the_service_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unexpected failure (a bug, moto not answering) answers 500 on ``/rejected`` with the
    request's clientToken instead of killing the service's MQTT loop."""
    service = ShadowService("http://127.0.0.1:1", lambda: None)

    def broken(topic: str, payload: bytes) -> list[Any]:
        raise RuntimeError("moto went away")

    monkeypatch.setattr(service, "handle", broken)
    published: list[tuple[str, Any]] = []

    class Client:
        def publish(self, topic: str, body: str, qos: int) -> None:
            published.append((topic, json.loads(body)))

    class Message:
        topic = "$aws/things/t1/shadow/name/edgekit-health/update"
        payload = b'{"state": {"reported": {"a": 1}}, "clientToken": "tok"}'

    service._on_message(Client(), None, Message())  # type: ignore[arg-type]
    [(topic, body)] = published
    assert topic == "$aws/things/t1/shadow/name/edgekit-health/update/rejected"
    assert body["code"] == 500 and "moto went away" in body["message"]
    assert body["clientToken"] == "tok" and service.handled == 1
