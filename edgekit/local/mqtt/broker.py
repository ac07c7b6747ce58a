"""An MQTT 3.1.1 broker on loopback, built on amqtt.

amqtt gives QoS 0/1/2, retained messages and ``+``/``#`` wildcards. We run it
anonymous (loopback only, like a developer's IoT Core stand-in) without the
``$SYS`` and packet-logging plugins, and give it a blocking start/stop API on a
thread of its own so tests and notebooks need no event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import threading
from typing import Any

from edgekit.errors import LocalBackendError

log = logging.getLogger(__name__)

_ANONYMOUS = "amqtt.plugins.authentication.AnonymousAuthPlugin"


def broker_config(host: str, port: int) -> dict[str, Any]:
    """amqtt 0.12 configuration: one TCP listener, anonymous clients, no other plugins."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 0}},
        "plugins": {_ANONYMOUS: {"allow_anonymous": True}},
    }


def _bound_port(broker: Any) -> int:
    """The port the OS picked for the default listener (we bind port 0)."""
    server = broker._servers["default"].instance  # amqtt keeps the asyncio.Server here
    return int(server.sockets[0].getsockname()[1])


async def start_amqtt(host: str, port: int) -> tuple[Any, int]:
    """Start an amqtt broker on the running loop; returns (broker, bound port)."""
    from amqtt.broker import Broker as AmqttBroker
    from amqtt.errors import BrokerError

    broker = AmqttBroker(broker_config(host, port))
    try:
        await broker.start()
    except BrokerError as exc:
        raise LocalBackendError(f"MQTT broker cannot listen on {host}:{port}: {exc}") from exc
    return broker, _bound_port(broker)


class Broker:
    """An MQTT broker serving on its own thread and event loop.

    >>> b = Broker(); b.start(); b.port  # doctest: +SKIP
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise LocalBackendError("the MQTT broker is not started; call start() first")
        return self._port

    @property
    def endpoint(self) -> str:
        """``host:port``, the form EDGEKIT_MQTT_ENDPOINT uses."""
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> Broker:
        if self._thread is not None:
            raise LocalBackendError("this MQTT broker was already started")
        self._thread = threading.Thread(target=self._run, name="edgekit-mqtt-broker", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise LocalBackendError(f"the MQTT broker did not start within {timeout:.0f} s")
        if self._error is not None:
            self._thread.join(timeout)
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
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        self._broker, self._port = await start_amqtt(self.host, self._requested_port)
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await self._broker.shutdown()

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
