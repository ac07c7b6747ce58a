"""`IpcServer`: Greengrass IPC on a unix socket, for the official SDK unchanged.

A component process gets ``AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT``
(this socket) and ``SVCUID`` (its token) and calls
``awsiot.greengrasscoreipc.connect()`` or ``GreengrassCoreIPCClientV2()`` as on a
real device. The server runs an asyncio loop on a background thread; the host
(the device runtime, `IpcHost`) is called from that loop or its thread pool.

    server = IpcServer("/path/ipc.socket", host)
    server.start()
    ...
    server.notify_configuration_changed("com.example.App", ["threshold"])
    server.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from edgekit.errors import LocalBackendError
from edgekit.local.ipc.handlers import OperationRouter
from edgekit.local.ipc.host import IpcHost
from edgekit.local.ipc.mqtt_bridge import MqttBridge
from edgekit.local.ipc.mqtt_spool import MEMORY, NUCLEUS, MqttSpool, SpoolerConfig
from edgekit.local.ipc.rpc import RpcConnection, SendQueuePolicy
from edgekit.unix_socket import (
    UNIX_SOCKET_LIMIT,
    clear_stale_socket,
    make_user_socket_dir,
    private_dir_problem,
    user_socket_dir,
)

log = logging.getLogger(__name__)


class IpcServer:
    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        host: IpcHost,
        *,
        send_queue: SendQueuePolicy | None = None,
        mqtt_reconnect_delay: tuple[float, float] = (0.25, 2.0),
        host_threads: int = 4,
        spool_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """``spool_dir``: where the IoT Core bridge keeps QoS 1 messages until the broker
        acknowledges them (the nucleus' ``mqtt.spooler`` with ``storageType: Disk``); None
        keeps them in memory only."""
        self.socket_path = Path(socket_path)
        size = len(os.fsencode(self.socket_path))
        if size > UNIX_SOCKET_LIMIT:
            raise LocalBackendError(
                f"IPC socket path {self.socket_path} is {size} bytes; "
                f"unix sockets allow {UNIX_SOCKET_LIMIT}: use a shorter device root or a "
                f"path in {user_socket_dir()}"
            )
        self.host = host
        self.policy = send_queue or SendQueuePolicy()
        self._reconnect_delay = mqtt_reconnect_delay
        self._host_threads = host_threads
        self._spool_dir = Path(spool_dir) if spool_dir is not None else None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stopping: asyncio.Event | None = None
        self._connections: set[RpcConnection] = set()
        self._executor: ThreadPoolExecutor | None = None
        self._remove_listener: Any = None
        self.router: OperationRouter | None = None
        self.bridge: MqttBridge | None = None

    # ---------------------------------------------------------------- public API
    def start(self, timeout: float = 10.0) -> IpcServer:
        if self._thread is not None:
            raise LocalBackendError(f"IPC server on {self.socket_path} was already started")
        self._thread = threading.Thread(
            target=self._run, name=f"edgekit-ipc-{self.socket_path.name}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout):
            raise LocalBackendError(
                f"IPC server on {self.socket_path} did not start in {timeout} s"
            )
        if self._error is not None:
            self._thread.join(timeout)
            self._thread = None
            raise LocalBackendError(
                f"IPC server cannot listen on {self.socket_path}: {self._error}"
            ) from self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection, the broker bridge and the socket; safe to call twice."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if thread.is_alive() and self._stopping is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._stopping.set)
            thread.join(timeout)
            if thread.is_alive():
                raise LocalBackendError(
                    f"IPC server on {self.socket_path} did not stop in {timeout} s"
                )
        self._thread = None

    def notify_configuration_changed(self, component: str, key_path: list[str]) -> None:
        """Send ConfigurationUpdateEvents to the component's watchers; any thread.

        A change of the nucleus' ``mqtt.spooler.maxSizeInBytes`` applies at once, as on the
        nucleus; its other spooler keys apply when the device runtime restarts."""
        bridge = self.bridge
        if component == NUCLEUS and bridge is not None and key_path[:1] in ([], ["mqtt"]):
            bridge.spool.max_bytes = self._spooler_config().max_bytes
        loop, router = self._loop, self.router
        if loop is None or router is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop is shutting down
            loop.call_soon_threadsafe(router.configuration_changed, component, list(key_path))

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def connection_stats(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        """One row per open connection: component, open streams, events dropped so far.

        Call from any thread but the server's own (it waits for the server loop).
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            return []

        async def snapshot() -> list[dict[str, Any]]:
            return [
                {
                    "component": c.component,
                    "open_streams": c.open_streams,
                    "dropped_events": c.dropped_events,
                }
                for c in self._connections
            ]

        return asyncio.run_coroutine_threadsafe(snapshot(), loop).result(timeout)

    def mqtt_stats(self) -> dict[str, int | bool | str]:
        """The IoT Core bridge's counters (`MqttBridge.stats`): connects, messages waiting in
        the spool (``queued``, ``queued_bytes`` of ``max_bytes``), connections the broker closed
        on one (``refusals``), messages ``dropped`` after too many, publishes refused because
        the spool was full (``refused_full``), QoS 0 messages dropped; empty when the device
        has no broker. Any thread."""
        return {} if self.bridge is None else self.bridge.stats()

    def __enter__(self) -> IpcServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- server thread
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:
            if not self._ready.is_set():
                self._error = exc
                self._ready.set()
            else:
                log.exception("IPC server thread failed")
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _check_folder(self) -> None:
        """The socket's folder exists and no other user can write it: whoever binds the
        path first is "the nucleus" to every component."""
        folder = self.socket_path.parent
        if folder == user_socket_dir():
            folder, problem = make_user_socket_dir()
        else:
            folder.mkdir(parents=True, exist_ok=True)
            problem = private_dir_problem(folder)
        if problem is not None:
            raise LocalBackendError(
                f"{folder} {problem}; another user could put an impostor IPC socket there, "
                "so the device does not listen in it. Remove it (or fix its owner and mode), "
                "or use a device root only this user can write"
            )

    def _remove_stale_socket(self) -> None:
        """Remove a socket file left by a dead server; refuse to take over a live one."""
        state = clear_stale_socket(self.socket_path, probe_timeout=1.0)
        if state == "free":
            return
        if state == "not a socket":
            raise LocalBackendError(
                f"{self.socket_path} exists and is not a socket; remove it or choose another path"
            )
        raise LocalBackendError(
            f"another IPC server is already serving {self.socket_path}; stop that device first"
        )

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._check_folder()
        self._remove_stale_socket()
        endpoint = self.host.mqtt_endpoint
        if endpoint:
            config = self._spooler_config()
            self.bridge = MqttBridge(
                endpoint,
                client_id=f"edgekit-ipc-{uuid.uuid4().hex[:10]}",
                reconnect_min_delay=self._reconnect_delay[0],
                reconnect_max_delay=self._reconnect_delay[1],
                spool=self._open_spool(config),
                keep_qos0_when_offline=config.keep_qos0_when_offline,
            )
        self._executor = ThreadPoolExecutor(
            self._host_threads, thread_name_prefix="edgekit-ipc-host"
        )
        self.router = OperationRouter(self.host, loop, self._executor, self.bridge)
        server = await asyncio.start_unix_server(self._on_client, path=str(self.socket_path))
        os.chmod(self.socket_path, 0o600)
        try:
            self._remove_listener = self.host.add_configuration_listener(
                self.notify_configuration_changed
            )
            if self.bridge is not None:
                self.bridge.start()
            self._ready.set()
            await self._stopping.wait()
        finally:
            server.close()
            for conn in list(self._connections):
                conn.close("IPC server stopping", flush=False)
            await server.wait_closed()
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if pending:
                await asyncio.wait(pending, timeout=2.0)
            if self._remove_listener is not None:
                with contextlib.suppress(Exception):
                    self._remove_listener()
            await loop.run_in_executor(None, self.router.close)
            if self.bridge is not None:
                await loop.run_in_executor(None, self.bridge.stop)
                self.bridge.spool.close()
            self._executor.shutdown(wait=False, cancel_futures=True)
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()

    def _spooler_config(self) -> SpoolerConfig:
        """The nucleus' ``mqtt.spooler`` configuration, as deployed to this device."""
        try:
            value = self.host.get_configuration(NUCLEUS, ["mqtt", "spooler"])
        except KeyError:
            value = None
        return SpoolerConfig.from_config(value)

    def _open_spool(self, config: SpoolerConfig) -> MqttSpool:
        """A disk spool in ``spool_dir``; in memory when configured so, or (as the nucleus does
        when its disk spooler cannot start) when the folder cannot be used."""
        if self._spool_dir is None or config.storage_type == MEMORY:
            return MqttSpool(None, config.max_bytes)
        try:
            return MqttSpool(self._spool_dir, config.max_bytes)
        except LocalBackendError as exc:
            log.error("%s; IoT Core messages are spooled in memory only", exc)
            return MqttSpool(None, config.max_bytes)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self.router is not None
        conn = RpcConnection(reader, writer, self.router, self.policy, self._connections.discard)
        self._connections.add(conn)
        try:
            await conn.serve()
        except Exception:
            log.exception("IPC connection of %s failed", conn.component)
        finally:
            self._connections.discard(conn)
