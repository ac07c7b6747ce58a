"""The Stream Manager server: the SDK's protocol on a loopback TCP port (asyncio).

Each connection starts with the connect handshake (connect version, protocol version,
and, when client authentication is on, the ``authToken`` the SDK sends: the
component's ``AWS_CONTAINER_AUTHORIZATION_TOKEN``, checked by ``authenticate``). Then
every request runs as its own task, so a ReadMessages that waits for new messages
(``readTimeoutMillis``) does not hold up appends on the same connection; responses
carry the request's ``requestId``. A bad frame gets an error response when it can be
tied to a request (InvalidRequest, RequestPayloadTooLarge, UnknownOperation), and
otherwise ends that one connection: the server keeps serving the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from edgekit.local.streammanager.definitions import DefinitionError, parse_definition, stream_name
from edgekit.local.streammanager.exporter import Exporter
from edgekit.local.streammanager.protocol import (
    CONNECT_VERSION,
    LENGTH,
    SUPPORTED_PROTOCOL_VERSIONS,
    Op,
    ProtocolError,
    Status,
    decode_payload,
    encode_frame,
    parse_header,
    peek_request_id,
    response_op,
)
from edgekit.local.streammanager.store import StoreError, StreamStore
from edgekit.version import __version__

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "StreamManagerServer"]

log = logging.getLogger(__name__)
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
#: The SDKs never send a frame over 1 GiB; a longer length is not a client, the
#: connection is closed instead of reading it.
HARD_FRAME_LIMIT = 1 << 30
MAX_CONNECT_BYTES = 64 * 1024
PEEK_BYTES = 256
MAX_COUNT = 2**31 - 1


class StreamManagerServer:
    """Serves one `StreamStore` (and runs its S3 exports) on a listening socket."""

    def __init__(
        self,
        store_root: Path,
        *,
        authenticate: Callable[[str], bool] | None = None,
        aws_client: Callable[[str], Any] | None = None,
        export_threads: int = 5,
        min_part_size: int = 5 * 1024 * 1024,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    ) -> None:
        self.authenticate = authenticate
        self.max_request_bytes = max_request_bytes
        self.store = StreamStore(store_root, on_append=self._appended)
        self.exporter = Exporter(
            self.store,
            aws_client or _default_client,
            threads=export_threads,
            min_part_size=min_part_size,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._server: asyncio.base_events.Server | None = None
        self._main: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.port = 0

    # --- running ----------------------------------------------------------------------------

    async def serve(self, sock: socket.socket) -> None:
        """Serve on an already listening socket until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._main = asyncio.current_task()
        self.port = sock.getsockname()[1]
        self.exporter.start()
        self._server = await asyncio.start_server(self._connection, sock=sock)
        self._ready.set()
        try:
            async with self._server:
                await self._server.serve_forever()
        finally:
            self.exporter.stop()
            self.store.close()

    def start(self, host: str = "127.0.0.1", port: int = 0) -> StreamManagerServer:
        """Serve in a background thread (tests, benchmarks); ``stop()`` ends it."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)

        def run() -> None:
            with contextlib.suppress(asyncio.CancelledError):
                asyncio.run(self.serve(sock))

        self._thread = threading.Thread(target=run, name="streammanager", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        """End ``serve`` (from any thread); the connections' tasks end with its loop."""
        loop, main = self._loop, self._main
        if loop is not None and main is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(main.cancel)
        if self._thread is not None:
            self._thread.join(10)

    # --- new messages wake readers ------------------------------------------------------------

    def _appended(self, name: str) -> None:
        self.exporter.notify(name)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake, name)

    def _wake(self, name: str) -> None:
        for future in self._waiters.pop(name, set()):
            if not future.done():
                future.set_result(None)

    # --- a connection -------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Python 3.11's start_server callback reads the exception of a cancelled handler
        # task and logs a traceback; a server stopping ends its connections quietly.
        with contextlib.suppress(asyncio.CancelledError):
            await self._serve_connection(reader, writer)

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        lock = asyncio.Lock()
        tasks: set[asyncio.Task[None]] = set()
        try:
            if not await self._handshake(reader, writer):
                return
            while True:
                header = await reader.readexactly(LENGTH.size)
                length, op = parse_header(header)
                if length + 1 > HARD_FRAME_LIMIT:
                    raise ProtocolError(f"frame of {length + 1} bytes is over the 1 GiB limit")
                if length > self.max_request_bytes:
                    await self._too_large(reader, writer, lock, op, length)
                    continue
                payload = await reader.readexactly(length)
                task = asyncio.create_task(self._request(op, payload, writer, lock))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away (possibly mid-frame)
        except ProtocolError as exc:
            log.warning("closing the connection of %s: %s", peer, exc)
        finally:
            for task in tasks:
                task.cancel()
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        version = (await reader.readexactly(1))[0]
        if version != CONNECT_VERSION:
            log.warning("refused a client with connect version %d", version)
            writer.write(bytes([CONNECT_VERSION]))
            writer.write(
                encode_frame(
                    Op.ConnectResponse,
                    {
                        "status": Status.UnsupportedConnectVersion,
                        "errorMessage": f"connect version {version} is not supported; "
                        f"this server speaks {CONNECT_VERSION}",
                    },
                )
            )
            await writer.drain()
            return False
        length, op = parse_header(await reader.readexactly(LENGTH.size))
        if op != Op.Connect or length > MAX_CONNECT_BYTES:
            raise ProtocolError(f"expected a Connect frame, got operation {op} ({length} bytes)")
        body = decode_payload(await reader.readexactly(length))
        response: dict[str, Any] = {
            "requestId": body.get("requestId") if isinstance(body.get("requestId"), str) else "",
            "status": Status.Success,
            "supportedProtocolVersions": list(SUPPORTED_PROTOCOL_VERSIONS),
            "serverVersion": f"edgekit-{__version__}",
            "clientIdentifier": str(uuid.uuid4()),
        }
        wanted = body.get("protocolVersion")
        others = body.get("otherSupportedProtocolVersions") or []
        offered = [wanted] + (others if isinstance(others, list) else [])
        chosen = next((v for v in offered if v in SUPPORTED_PROTOCOL_VERSIONS), None)
        if not isinstance(wanted, str):
            response["status"] = Status.InvalidProtocolVersion
            response["errorMessage"] = "protocolVersion is required"
        elif chosen is None:
            response["status"] = Status.UnsupportedProtocolVersion
            response["errorMessage"] = (
                f"protocol versions {offered} are not supported; this server speaks "
                f"{', '.join(SUPPORTED_PROTOCOL_VERSIONS)}"
            )
        else:
            response["protocolVersion"] = chosen
            if self.authenticate is not None and not await self._authorized(body.get("authToken")):
                response["status"] = Status.Unauthorized
                response["errorMessage"] = (
                    "the client is not authenticated: STREAM_MANAGER_AUTHENTICATE_CLIENT is "
                    "true, so only Greengrass components of this device (with their "
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN) may connect"
                )
        writer.write(bytes([CONNECT_VERSION]) + encode_frame(Op.ConnectResponse, response))
        await writer.drain()
        if response["status"] != Status.Success:
            log.warning("refused a client: %s", response.get("errorMessage"))
            return False
        return True

    async def _authorized(self, token: Any) -> bool:
        if not isinstance(token, str) or not token or self.authenticate is None:
            return False
        try:
            return await asyncio.to_thread(self.authenticate, token)
        except Exception:  # an authenticator's failure refuses the client; logged in full
            log.exception("authenticating a client failed; refusing it")
            return False

    async def _send(
        self, writer: asyncio.StreamWriter, lock: asyncio.Lock, op: int, body: dict[str, Any]
    ) -> None:
        async with lock:
            writer.write(encode_frame(op, body))
            await writer.drain()

    async def _too_large(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        lock: asyncio.Lock,
        op: int,
        length: int,
    ) -> None:
        prefix = await reader.readexactly(min(length, PEEK_BYTES))
        left = length - len(prefix)
        while left:
            chunk = await reader.read(min(left, 1 << 20))
            if not chunk:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(chunk)
        await self._send(
            writer,
            lock,
            response_op(op) or Op.UnknownOperationError,
            {
                "requestId": peek_request_id(prefix),
                "status": Status.RequestPayloadTooLarge,
                "errorMessage": f"the request is {length} bytes, over the server's limit of "
                f"{self.max_request_bytes} bytes; send smaller messages",
            },
        )

    async def _request(
        self, op: int, payload: bytes, writer: asyncio.StreamWriter, lock: asyncio.Lock
    ) -> None:
        reply = response_op(op)
        if reply is None or reply == Op.ConnectResponse:
            await self._send(
                writer,
                lock,
                Op.UnknownOperationError,
                {
                    "requestId": peek_request_id(payload),
                    "status": Status.UnknownOperation,
                    "errorMessage": f"operation {op} is not one this server answers",
                },
            )
            return
        request_id = peek_request_id(payload)
        try:
            body = decode_payload(payload)
            rid = body.get("requestId")
            if not isinstance(rid, str) or not rid:
                raise ProtocolError("requestId is required (a non-empty string)")
            request_id = rid
            response = await self._dispatch(Op(op), body)
            response.update({"requestId": request_id, "status": Status.Success})
        except (ProtocolError, StoreError) as exc:
            response = {"requestId": request_id, "status": exc.status, "errorMessage": str(exc)}
        except DefinitionError as exc:
            response = {
                "requestId": request_id,
                "status": Status.InvalidRequest,
                "errorMessage": str(exc),
            }
        except Exception as exc:  # a server bug answers UnknownFailure; logged in full
            log.exception("operation %s failed", op)
            response = {
                "requestId": request_id,
                "status": Status.UnknownFailure,
                "errorMessage": f"internal error of the local stream manager: {exc!r}",
            }
        with contextlib.suppress(ConnectionError):
            await self._send(writer, lock, reply, response)

    async def _dispatch(self, op: Op, body: dict[str, Any]) -> dict[str, Any]:
        store = self.store
        if op == Op.CreateMessageStream:
            store.create(parse_definition(body.get("definition")))
            self.exporter.notify("")
            return {}
        if op == Op.UpdateMessageStream:
            store.update(parse_definition(body.get("definition")))
            self.exporter.notify("")
            return {}
        if op == Op.DeleteMessageStream:
            name = stream_name(body.get("name"))
            store.delete(name)
            self._wake(name)
            return {}
        if op == Op.DescribeMessageStream:
            return {"messageStreamInfo": store.describe(stream_name(body.get("name")))}
        if op == Op.ListStreams:
            return {"streams": store.names()}
        if op == Op.AppendMessage:
            name = stream_name(body.get("name"))
            data = body.get("payload")
            if not isinstance(data, bytes) or not data:
                raise ProtocolError("payload is required (at least one byte)")
            return {"sequenceNumber": store.append(name, data)}
        return {"messages": await self._read(body)}

    async def _read(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        name = stream_name(body.get("streamName"), "streamName")
        options = body.get("readMessagesOptions") or {}
        if not isinstance(options, dict):
            raise ProtocolError("readMessagesOptions must be a ReadMessagesOptions map")
        start = _option(options, "desiredStartSequenceNumber", 0, 2**63 - 1, 0)
        min_count = _option(options, "minMessageCount", 1, MAX_COUNT, 1)
        max_count = _option(options, "maxMessageCount", 1, MAX_COUNT, min_count)
        timeout_ms = _option(options, "readTimeoutMillis", 0, 9223372036854, 0)
        if min_count > max_count:
            raise ProtocolError(
                f"minMessageCount ({min_count}) must not be over maxMessageCount ({max_count})"
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        while True:
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(name, set()).add(future)
            try:
                return self.store.read(name, start, min_count, max_count)
            except StoreError as exc:
                left = deadline - loop.time()
                if exc.status != Status.NotEnoughMessages or left <= 0:
                    raise
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(future, left)
            finally:
                waiting = self._waiters.get(name)
                if waiting is not None:
                    waiting.discard(future)
                    if not waiting:
                        self._waiters.pop(name, None)


def _option(options: dict[str, Any], key: str, lo: int, hi: int, default: int) -> int:
    value = options.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ProtocolError(f"readMessagesOptions.{key} must be an integer from {lo} to {hi}")
    return value


def _default_client(service: str) -> Any:
    """``service`` as this process reaches it: boto3 with the environment's endpoint and region."""
    return boto3.client(service)
