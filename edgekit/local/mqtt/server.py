"""The asyncio server: accepts connections and runs each one concurrently.

It listens on TCP and, if asked, on a second port for MQTT over WebSocket
(`edgekit.local.mqtt.websocket`); both feed the same `Connection`. A websocket
upgrade must carry a valid SigV4 presigned query (`edgekit.local.mqtt.sigv4`),
signed with one of ``websocket_credentials`` (the local backend's by default).

`MqttServer` lives on whatever event loop starts it (``python -m
edgekit.local.mqtt`` runs it under ``asyncio.run``; `Broker` on a thread).
`close` never hangs: it stops listening, tells MQTT 5 clients the server is
shutting down, aborts every connection and cancels their tasks with a deadline.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgekit.errors import LocalBackendError
from edgekit.local.mqtt.connection import Connection
from edgekit.local.mqtt.limits import BrokerLimits
from edgekit.local.mqtt.persistence import Persistence
from edgekit.local.mqtt.router import Router
from edgekit.local.mqtt.sigv4 import LOCAL_CREDENTIALS, SigV4Verifier
from edgekit.local.mqtt.store import DurableStore
from edgekit.local.mqtt.websocket import MAX_HANDSHAKE_BYTES, Handshake, accept

HANDSHAKES_KEPT = 64  # the most recent websocket upgrade requests, for inspection

log = logging.getLogger("edgekit.local.mqtt")


class MqttServer:
    """An MQTT 3.1.1/5.0 broker listening on ``host:port`` of the running event loop."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: BrokerLimits | None = None,
        websocket_port: int | None = None,
        websocket_credentials: Mapping[str, str] | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.host = host
        self.state_dir = state_dir  # persistent sessions and retained messages survive here
        self.store: DurableStore | None = None
        self.requested_port = port
        self.requested_websocket_port = websocket_port
        self.limits = limits or BrokerLimits()
        self.router = Router(self.limits)
        creds = LOCAL_CREDENTIALS if websocket_credentials is None else websocket_credentials
        self.verifier = SigV4Verifier(dict(creds))
        self.port = 0
        self.websocket_port: int | None = None
        self.websocket_handshakes: collections.deque[Handshake] = collections.deque(
            maxlen=HANDSHAKES_KEPT
        )
        self._server: asyncio.Server | None = None
        self._ws_server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], Connection] = {}
        self._upgrading: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def start(self) -> int:
        """Restore the durable state (with ``state_dir``), listen; returns the bound port."""
        if self.state_dir is not None:
            self.store = DurableStore.open(self.state_dir)
            self.router.restore(Persistence(self.store))
        try:
            return await self._listen()
        except BaseException:
            if self.store is not None:
                self.store.close()
            raise

    async def _listen(self) -> int:
        """Listen; returns the bound port (the OS picks one for port 0)."""
        try:
            self._server = await asyncio.start_server(
                self._serve_client, self.host, self.requested_port
            )
        except OSError as exc:
            raise LocalBackendError(
                f"MQTT broker cannot listen on {self.host}:{self.requested_port}: {exc}; "
                "pick another --port or stop what is using it"
            ) from exc
        self.port = int(self._server.sockets[0].getsockname()[1])
        if self.requested_websocket_port is not None:
            try:
                self._ws_server = await asyncio.start_server(
                    self._serve_websocket,
                    self.host,
                    self.requested_websocket_port,
                    limit=MAX_HANDSHAKE_BYTES,
                )
            except OSError as exc:
                self._server.close()
                raise LocalBackendError(
                    f"MQTT broker cannot listen for websockets on {self.host}:"
                    f"{self.requested_websocket_port}: {exc}; pick another --websocket-port "
                    "or stop what is using it"
                ) from exc
            self.websocket_port = int(self._ws_server.sockets[0].getsockname()[1])
        return self.port

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self.router.closing:
            writer.transport.abort()
            return
        await self._run(Connection(self.router, reader, writer, self.limits))

    async def _serve_websocket(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self.router.closing:
            writer.transport.abort()
            return
        self._upgrading[task] = writer
        try:
            stream = await accept(
                reader,
                writer,
                max_frame=self.limits.max_packet_size,
                timeout=self.limits.connect_timeout,
                authenticate=self.verifier.check,
            )
        except asyncio.CancelledError:
            return  # close() during the handshake
        finally:
            self._upgrading.pop(task, None)
        if stream is None:
            return
        if self.router.closing:
            stream.transport.abort()
            return
        self.websocket_handshakes.append(stream.handshake)
        pump = asyncio.create_task(stream.pump(), name=f"edgekit-mqtt-ws-{stream.handshake.peer}")
        # `stream` stands in for the StreamWriter: Connection uses .transport and .get_extra_info
        writer_like: Any = stream
        try:
            await self._run(Connection(self.router, stream.reader, writer_like, self.limits))
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([pump])

    async def _run(self, connection: Connection) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = connection
        try:
            await connection.run()
        except asyncio.CancelledError:
            # Only close() cancels these tasks. Ending normally keeps Python 3.11's stream
            # callback from logging the cancellation as an unhandled error.
            log.debug("%r cancelled at shutdown", connection)
        finally:
            self._connections.pop(task, None)

    @property
    def connections(self) -> list[Connection]:
        """The open connections (read it on the broker's loop, e.g. through `Broker.call`)."""
        return list(self._connections.values())

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def close(self, deadline: float = 0.5) -> None:
        """Stop listening, drop every client, and wait at most ``deadline`` seconds for them."""
        self.router.close()
        if self._server is not None:
            # Stop accepting first, and give a connection accepted just now the few loop
            # iterations it needs to reach _serve_client (which aborts it, as we are closing):
            # Python 3.11 leaks the socket of a connection accepted by a server closed before
            # the connection's transport attached to it.
            loop = asyncio.get_running_loop()
            servers = [s for s in (self._server, self._ws_server) if s is not None]
            for server in servers:
                for sock in server.sockets:
                    loop.remove_reader(sock.fileno())
            for _ in range(4):
                await asyncio.sleep(0)
            for server in servers:
                server.close()
        for writer in list(self._upgrading.values()):
            writer.transport.abort()  # its handshake read ends; the task returns
        tasks = list(self._connections) + list(self._upgrading)
        for connection in list(self._connections.values()):
            connection.shutdown()  # aborts the transport: the task sees the connection lost
        if tasks:
            _, still = await asyncio.wait(tasks, timeout=deadline / 2)
            for task in still:
                task.cancel()
            if still:
                _, still = await asyncio.wait(still, timeout=deadline / 2)
            if still:
                log.warning("%d MQTT connections did not finish in %.1f s", len(still), deadline)
        self._connections.clear()
        for _ in range(2):  # aborted transports close their sockets in a callback
            await asyncio.sleep(0)
        if self.store is not None:
            self.store.close()  # writes what is pending
