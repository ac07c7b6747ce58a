"""IoT Core's Device Shadow service on the MQTT reserved topics, for the local backend.

On AWS, a device that publishes to ``$aws/things/<thing>/shadow[/name/<shadow>]/update``
changes the shadow that ``GetThingShadow`` (the HTTP data plane) returns, and the
service answers on ``.../update/accepted`` or ``.../update/rejected``. Locally, moto is
the data plane (its ``iot-data`` backend keeps classic and named shadows) and
``edgekit.local.mqtt`` the message broker; this service joins them. It runs as a
thread of the moto server process, connects to the broker as an MQTT client (paho),
subscribes to the request topics and, for each request:

- ``update``: checks the request document as the service does (the documented error
  codes and messages: 400 invalid JSON, missing or non-object ``state``, invalid node,
  version or clientToken, nesting over 6 levels; 404 thing not found; 409 version
  conflict; 413 state over 8 KB; 415 not UTF-8), applies it with ``UpdateThingShadow``
  and publishes ``update/accepted`` (the request's state with metadata, version,
  timestamp and clientToken), ``update/documents`` (previous and current) and
  ``update/delta`` when desired and reported differ; or ``update/rejected`` with
  ``{"code", "message", "timestamp", "clientToken"}``.
- ``get``: ``get/accepted`` with the document (state with delta, metadata, version,
  timestamp) or ``get/rejected`` (404 thing not found, or no shadow with that name).
- ``delete``: ``delete/accepted`` (version, timestamp) or ``delete/rejected``.

It calls moto over HTTP on loopback (boto3 ``iot-data`` and ``iot``), like any other
client of the moto server, so every change goes through the server's request path
(the state snapshots of ``moto_keeper`` see it). A thing must exist in moto's IoT
registry, in any region; the service finds the region by asking ``DescribeThing`` in
each region moto has IoT state for.

The broker may start after moto or restart on another port: the service reads the
broker's port file before each connection attempt and retries every few seconds. Its
MQTT session is persistent (clean session off, QoS 1), so requests published while the
moto server restarts are answered when it is back.

Call :func:`install` once in the moto server process. Must not import any edgekit
module but ``errors`` (it imports moto, boto3 and paho at the top: only the moto server
process and tests import it).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import paho.mqtt.client as paho
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.core import DEFAULT_ACCOUNT_ID
from moto.iot.models import iot_backends

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
CLIENT_ID = "edgekit-shadow-service"
REQUEST_FILTERS = tuple(
    f"$aws/things/+/shadow/{prefix}{operation}"
    for prefix in ("", "name/+/")
    for operation in ("update", "get", "delete")
)
_REQUEST = re.compile(r"^\$aws/things/([^/]+)/shadow/(?:name/([^/]+)/)?(update|get|delete)$")
MAX_STATE_BYTES = 8 * 1024
MAX_DEPTH = 6
MAX_CLIENT_TOKEN = 64
RETRY_MIN, RETRY_MAX = 0.2, 3.0

Publish = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Rejection:
    """A request the Device Shadow service rejects: its HTTP-style code and message."""

    code: int
    message: str


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def parse_request(payload: bytes, *, update: bool) -> dict[str, Any] | Rejection:
    """The request document, checked as the Device Shadow service checks it, or why the
    service rejects it. ``get`` and ``delete`` accept an empty payload (no clientToken)."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return Rejection(415, "Unsupported documented encoding; supported encoding is UTF-8")
    if not update and not text.strip():
        return {}
    try:
        document = json.loads(text)
    except ValueError:
        return Rejection(400, "Invalid JSON")
    if not isinstance(document, dict):
        return Rejection(400, "Invalid JSON")
    token = document.get("clientToken")
    if token is not None and (not isinstance(token, str) or len(token.encode()) > MAX_CLIENT_TOKEN):
        return Rejection(400, "Invalid clientToken")
    if not update:
        return document
    return _check_update(document)


def _check_update(document: dict[str, Any]) -> dict[str, Any] | Rejection:
    version = document.get("version")
    if "version" in document and (isinstance(version, bool) or not isinstance(version, int)):
        return Rejection(400, "Invalid version")
    if "state" not in document:
        return Rejection(400, "Missing required node: state")
    state = document["state"]
    if state is None:
        return document
    if not isinstance(state, dict):
        return Rejection(400, "State node must be an object")
    if any(key not in ("desired", "reported") for key in state):
        return Rejection(400, "State contains an invalid node")
    for key in ("desired", "reported"):
        if state.get(key) is not None and not isinstance(state[key], dict):
            return Rejection(400, f"{key.capitalize()} node must be an object")
    if _depth(state) - 1 > MAX_DEPTH:
        return Rejection(400, "JSON contains too many levels of nesting; maximum is 6")
    if len(json.dumps(state, separators=(",", ":")).encode()) > MAX_STATE_BYTES:
        return Rejection(413, "The payload exceeds the maximum size allowed")
    return document


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 500)


class ShadowService:
    """Answers shadow requests from MQTT with moto's ``iot-data`` backend.

    :meth:`handle` is the whole service for one request (tests call it directly);
    :meth:`start` runs it on the broker whose port ``port_of()`` returns.
    """

    def __init__(
        self,
        moto_url: str,
        port_of: Callable[[], int | None],
        *,
        account_id: str = DEFAULT_ACCOUNT_ID,
        client_id: str = CLIENT_ID,
    ) -> None:
        self.moto_url = moto_url
        self.port_of = port_of
        self.account_id = account_id
        self.client_id = client_id
        self._clients: dict[tuple[str, str], Any] = {}
        self._regions: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        """Set while subscribed to the request topics (tests wait for it)."""
        self.handled = 0

    # --- moto over HTTP ----------------------------------------------------------------------

    def _client(self, service: str, region: str) -> Any:
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = boto3.client(
                service,
                region_name=region,
                endpoint_url=self.moto_url,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
            )
        return self._clients[key]

    def _region_of(self, thing: str) -> str | None:
        """The region whose IoT registry has ``thing`` (None: no region has it)."""
        known = self._regions.get(thing)
        candidates = [known] if known else []
        candidates += [r for r in list(iot_backends[self.account_id].keys()) if r != known]
        for region in candidates:
            try:
                self._client("iot", region).describe_thing(thingName=thing)
            except ClientError as exc:
                if _status(exc) == 404:
                    continue
                raise
            self._regions[thing] = region
            return region
        self._regions.pop(thing, None)
        return None

    def _get(self, region: str, thing: str, shadow: str | None) -> dict[str, Any] | None:
        try:
            answer = self._client("iot-data", region).get_thing_shadow(**_names(thing, shadow))
        except ClientError as exc:
            if _status(exc) == 404:
                return None
            raise
        return json.loads(answer["payload"].read())

    # --- the service -------------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes) -> list[Publish]:
        """The messages the Device Shadow service publishes for one request on ``topic``."""
        match = _REQUEST.match(topic)
        if match is None:
            return []
        thing, shadow, operation = match.groups()
        document = parse_request(payload, update=operation == "update")
        if isinstance(document, Rejection):
            return [(f"{topic}/rejected", _error(document, _token_of(payload)))]
        token = document.get("clientToken")
        try:
            answer = self._answer(topic, operation, thing, shadow, document, token)
        except ClientError as exc:  # moto refused: its status and message, as the service's
            message = exc.response.get("Error", {}).get("Message") or "Internal service failure"
            answer = Rejection(_status(exc), message)
        if isinstance(answer, Rejection):
            return [(f"{topic}/rejected", _error(answer, token))]
        return answer

    def _answer(
        self,
        topic: str,
        operation: str,
        thing: str,
        shadow: str | None,
        document: dict[str, Any],
        token: str | None,
    ) -> list[Publish] | Rejection:
        region = self._region_of(thing)
        if region is None:
            return Rejection(404, "Thing not found")
        if operation == "update":
            return self._update(topic, region, thing, shadow, document, token)
        current = self._get(region, thing, shadow)
        if current is None:
            return Rejection(404, f"No shadow exists with name: '{shadow or thing}'")
        if operation == "get":
            return [(f"{topic}/accepted", _with_token(current, token))]
        answer = self._client("iot-data", region).delete_thing_shadow(**_names(thing, shadow))
        deleted = json.loads(answer["payload"].read())
        body = {"version": deleted.get("version"), "timestamp": deleted.get("timestamp")}
        return [(f"{topic}/accepted", _with_token(body, token))]

    def _update(
        self,
        base: str,
        region: str,
        thing: str,
        shadow: str | None,
        document: dict[str, Any],
        token: str | None,
    ) -> list[Publish] | Rejection:
        previous = self._get(region, thing, shadow)
        if "version" in document and (
            previous is None or previous.get("version") != document["version"]
        ):
            return Rejection(409, "Version conflict")
        request = {k: v for k, v in document.items() if k != "clientToken"}
        answer = self._client("iot-data", region).update_thing_shadow(
            payload=json.dumps(request).encode(), **_names(thing, shadow)
        )
        accepted = json.loads(answer["payload"].read())
        current = self._get(region, thing, shadow) or {}
        messages = [(f"{base}/accepted", _with_token(accepted, token))]
        documents: dict[str, Any] = {
            "current": _snapshot(current),
            "timestamp": accepted.get("timestamp", int(time.time())),
        }
        if previous is not None:
            documents["previous"] = _snapshot(previous)
        messages.append((f"{base}/documents", _with_token(documents, token)))
        delta = (current.get("state") or {}).get("delta")
        if delta and ((document.get("state") or {}).get("desired") is not None):
            body = {
                "state": delta,
                "metadata": (current.get("metadata") or {}).get("desired", {}),
                "version": current.get("version"),
                "timestamp": accepted.get("timestamp"),
            }
            messages.append((f"{base}/delta", _with_token(body, token)))
        return messages

    # --- MQTT --------------------------------------------------------------------------------

    def start(self) -> ShadowService:
        self._thread = threading.Thread(target=self._run, name="moto-shadows", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        payload = bytes(message.payload)
        try:
            answers = self.handle(message.topic, payload)
        except Exception as exc:  # a bug or moto failing: answer as the service does, go on
            log.exception("shadow request on %s failed", message.topic)
            failure = Rejection(500, f"Internal service failure: {exc!r}"[:1000])
            answers = [(f"{message.topic}/rejected", _error(failure, _token_of(payload)))]
        for topic, body in answers:
            client.publish(topic, json.dumps(body, separators=(",", ":")), qos=1)
        self.handled += 1

    def _run(self) -> None:
        delay = RETRY_MIN
        while not self._stop.is_set():
            port = self.port_of()
            if port is not None and self._serve(port):
                delay = RETRY_MIN  # it was up: try again at once, then back off
            self._stop.wait(delay)
            delay = min(delay * 2, RETRY_MAX)

    def _serve(self, port: int) -> bool:
        """Connect to the broker on ``port`` and answer requests until it goes away."""
        client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=False
        )
        subscribed = threading.Event()

        def on_connect(c: paho.Client, u: Any, flags: Any, reason: Any, props: Any) -> None:
            if not reason.is_failure:
                c.subscribe([(topic, 1) for topic in REQUEST_FILTERS])

        client.on_connect = on_connect
        client.on_subscribe = lambda *args: (subscribed.set(), self.connected.set())
        client.on_message = self._on_message
        try:
            client.connect(HOST, port, keepalive=30)
        except OSError:
            return False
        try:
            while not self._stop.is_set():
                if client.loop(timeout=0.5) != paho.MQTT_ERR_SUCCESS:
                    break
        finally:
            self.connected.clear()
            client.disconnect()
            client.loop(timeout=0.1)  # sends DISCONNECT and closes the socket
        return subscribed.is_set()


def _with_token(body: Mapping[str, Any], token: str | None) -> dict[str, Any]:
    out = dict(body)
    if token is not None:
        out["clientToken"] = token
    return out


def _token_of(payload: bytes) -> str | None:
    """The request's clientToken if it has a valid one (for a rejected request's answer)."""
    try:
        document = json.loads(payload)
    except ValueError:
        return None
    token = document.get("clientToken") if isinstance(document, dict) else None
    valid = isinstance(token, str) and len(token.encode()) <= MAX_CLIENT_TOKEN
    return token if valid else None


def _names(thing: str, shadow: str | None) -> dict[str, str]:
    return {"thingName": thing} | ({"shadowName": shadow} if shadow else {})


def _error(rejection: Rejection, token: str | None) -> dict[str, Any]:
    """The error document of ``*/rejected``: code, message, timestamp, clientToken."""
    body = {"code": rejection.code, "message": rejection.message, "timestamp": int(time.time())}
    return _with_token(body, token)


def _snapshot(document: Mapping[str, Any]) -> dict[str, Any]:
    """A shadow document as ``update/documents`` shows it: state without delta, metadata,
    version."""
    state = {k: v for k, v in (document.get("state") or {}).items() if k != "delta"}
    return {
        "state": state,
        "metadata": document.get("metadata") or {},
        "version": document.get("version"),
    }


def port_file_reader(path: Path) -> Callable[[], int | None]:
    """A ``port_of`` that reads the broker's port file (None while it is missing or empty)."""

    def read() -> int | None:
        try:
            text = path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    return read


def install(*, moto_port: int, mqtt_port_file: Path | None) -> ShadowService | None:
    """Start the service in this moto server process (None without a broker port file)."""
    if mqtt_port_file is None:
        return None
    return ShadowService(f"http://{HOST}:{moto_port}", port_file_reader(mqtt_port_file)).start()


__all__ = ["REQUEST_FILTERS", "Rejection", "ShadowService", "install", "parse_request"]
