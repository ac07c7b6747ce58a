"""The local backend's MQTT broker with a blocking start/stop API, and a CONNECT probe.

`Broker` runs an `MqttServer` (this package's own asyncio MQTT 3.1.1 + 5.0
broker) on a thread and event loop of its own, so tests and notebooks need no
event loop. Clients are anonymous and accepted from loopback only, like a
developer's stand-in for IoT Core. With ``websocket_port`` (0 picks one) it
also serves MQTT over WebSocket, the way IoT Core serves SigV4 clients: the
upgrade must be presigned with a key in ``websocket_credentials`` (access key
id -> secret; the local backend's ``testing``/``testing`` by default). With
``state_dir`` its persistent sessions (their subscriptions and queued messages) and
retained messages survive a crash (`edgekit.local.mqtt.persistence`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from edgekit.errors import LocalBackendError
from edgekit.local.mqtt.limits import BrokerLimits
from edgekit.local.mqtt.server import MqttServer
from edgekit.local.mqtt.websocket import Handshake

log = logging.getLogger("edgekit.local.mqtt")

T = TypeVar("T")


class Broker:
    """An MQTT broker serving on its own thread and event loop.

    >>> b = Broker(); b.start(); b.port  # doctest: +SKIP
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        limits: BrokerLimits | None = None,
        websocket_port: int | None = None,
        websocket_credentials: Mapping[str, str] | None = None,
        state_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.host = host
        self.limits = limits or BrokerLimits()
        self.state_dir = None if state_dir is None else Path(state_dir)
        self.websocket_credentials = websocket_credentials
        self._requested_port = port
        self._requested_websocket_port = websocket_port
        self._port: int | None = None
        self._websocket_port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: MqttServer | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise LocalBackendError("the MQTT broker is not started; call start() first")
        return self._port

    @property
    def websocket_port(self) -> int:
        """The MQTT-over-WebSocket port (clients use ``ws://host:port/mqtt``)."""
        if self._websocket_port is None:
            if self._requested_websocket_port is None:
                raise LocalBackendError(
                    "this MQTT broker has no websocket listener; create it with "
                    "Broker(..., websocket_port=0)"
                )
            raise LocalBackendError("the MQTT broker is not started; call start() first")
        return self._websocket_port

    def websocket_handshakes(self) -> list[Handshake]:
        """The most recent websocket upgrade requests accepted, oldest first (path, query...)."""
        return self.call(lambda: list(self.server.websocket_handshakes))

    def stats(self) -> dict[str, int]:
        """What the broker dropped or refused so far, and its current sizes (`BrokerStats`)."""
        return self.call(self.server.router.snapshot)

    @property
    def endpoint(self) -> str:
        """``host:port``, the form EDGEKIT_MQTT_ENDPOINT uses."""
        return f"{self.host}:{self.port}"

    @property
    def server(self) -> MqttServer:
        """The running server (its `router` holds sessions and retained messages)."""
        if self._server is None:
            raise LocalBackendError("the MQTT broker is not started; call start() first")
        return self._server

    def start(self, timeout: float = 10.0) -> Broker:
        if self._thread is not None:
            raise LocalBackendError("this MQTT broker was already started")
        self._thread = threading.Thread(target=self._run, name="edgekit-mqtt-broker", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise LocalBackendError(f"the MQTT broker did not start within {timeout:.0f} s")
        if self._error is not None:
            self._thread.join(timeout)
            self._thread = None
            raise self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start() through self._error
            if not self._started.is_set():
                self._error = exc
                self._started.set()
            else:
                log.exception("MQTT broker thread failed")
        finally:
            _cancel_leftovers(loop)
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        self._server = MqttServer(
            self.host,
            self._requested_port,
            self.limits,
            self._requested_websocket_port,
            self.websocket_credentials,
            state_dir=self.state_dir,
        )
        self._port = await self._server.start()
        self._websocket_port = self._server.websocket_port
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await self._server.close()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the broker's loop and return its result (for tests, inspection).

        The broker's state is only ever touched from its loop thread; this is the safe way in.
        """
        if self._loop is None:
            raise LocalBackendError("the MQTT broker is not started; call start() first")

        async def run() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(5)

    def stop(self, timeout: float = 10.0) -> None:
        """Disconnect every client and close the listener; safe to call twice."""
        if self._thread is None or self._loop is None or self._stop is None:
            return
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise LocalBackendError(f"the MQTT broker did not stop within {timeout:.0f} s")
        self._thread = None

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop, deadline: float = 0.5) -> None:
    """Cancel tasks still pending on the broker's loop (as asyncio.run does), with a deadline."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.wait(pending, timeout=deadline))
    for _ in range(2):  # let closed transports run their connection_lost (closes the socket)
        loop.run_until_complete(asyncio.sleep(0))


def mqtt_ping(host: str, port: int, timeout: float = 2.0) -> bool:
    """True if an MQTT 3.1.1 broker accepts an anonymous CONNECT at host:port.

    A real protocol round trip (CONNECT -> CONNACK 0, then DISCONNECT), not just
    an open port, so `edgekit local status` reports "answering" honestly.
    """
    # A unique client id: a shared one would make concurrent probes take over each other.
    client_id = f"edgekit-ping-{os.getpid()}-{secrets.token_hex(4)}".encode()
    variable = b"\x00\x04MQTT\x04\x02\x00\x05"  # protocol name, level 4, clean session, keepalive 5
    payload = len(client_id).to_bytes(2, "big") + client_id
    remaining = len(variable) + len(payload)
    packet = bytes([0x10, remaining]) + variable + payload
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(packet)
            reply = b""
            while len(reply) < 4:
                chunk = sock.recv(4 - len(reply))
                if not chunk:
                    return False
                reply += chunk
            ok = reply[0] == 0x20 and reply[3] == 0x00
            if ok:
                sock.sendall(b"\xe0\x00")
            return ok
    except OSError:
        return False
