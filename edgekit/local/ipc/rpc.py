"""The event-stream RPC protocol, server side: one `RpcConnection` per client socket.

On top of the framing (`eventstream`), every message carries three int32 headers:
``:message-type`` (`MessageType`), ``:message-flags`` (`MessageFlag`) and
``:stream-id``. Stream 0 is the connection itself (CONNECT / CONNECT_ACK, PING /
PING_RESPONSE, PROTOCOL_ERROR); streams 1, 2, ... are operations the client
opens with increasing ids, the first message naming the ``operation`` and
carrying the JSON request (``:content-type: application/json``,
``service-model-type: aws.greengrass#<Op>Request``).

Handshake: the first message must be CONNECT with payload ``{"authToken": SVCUID}``;
a known token gets CONNECT_ACK with CONNECTION_ACCEPTED, anything else a
CONNECT_ACK without it, after which nothing more is handled and the connection
is closed (by the client, as the SDK does on refusal, or by us after
close_timeout). A message that breaks the framing or the protocol gets a
PROTOCOL_ERROR and the connection is closed; other connections are not affected.
Messages for a stream that already ended are ignored.

Defaults: at most 1024 queued messages / 8 MiB per connection, and the
connection is closed after 1000 events dropped since its queue was last empty.

Answers: the response of a one-shot operation and every error carry
TERMINATE_STREAM. A streaming operation (Subscribe*) answers without it and then
sends events on the same stream until the client terminates it (an empty
APPLICATION_MESSAGE flagged TERMINATE_STREAM) or the connection ends.

Send queue policy (a subscriber that stops reading must not block publishers):
every connection has one outgoing queue drained by its own writer task, and
nothing ever waits for room in it. The queue holds at most
`SendQueuePolicy.max_messages` messages / `max_bytes` bytes. When a stream event
(a subscription delivery: local pub/sub or IoT Core, both QoS-0-like on the way
to the component) finds the queue full, the OLDEST queued event is dropped to
make room (responses are never dropped). Once `max_dropped` events have been
dropped since the queue was last empty, the client is taken as stuck and its
connection is closed; it may reconnect and subscribe again. Responses and
errors are always queued (they are bounded by the client's own requests); if
they alone exceed twice the limits the connection is closed as well.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol

from edgekit.local.ipc.eventstream import (
    EventStreamProtocolError,
    FrameDecoder,
    Header,
    HeaderType,
    Message,
    encode,
)
from edgekit.local.ipc.modeled_errors import (
    InvalidArgumentsError,
    IpcOperationError,
    ServiceError,
)

log = logging.getLogger(__name__)

MESSAGE_TYPE = ":message-type"
MESSAGE_FLAGS = ":message-flags"
STREAM_ID = ":stream-id"
OPERATION = "operation"
CONTENT_TYPE = ":content-type"
SERVICE_MODEL_TYPE = "service-model-type"
VERSION = ":version"
CONTENT_TYPE_JSON = "application/json"
PROTOCOL_VERSION = "0.1.0"
MAX_STREAM_ID = 2**31 - 1


class MessageType(IntEnum):
    APPLICATION_MESSAGE = 0
    APPLICATION_ERROR = 1
    PING = 2
    PING_RESPONSE = 3
    CONNECT = 4
    CONNECT_ACK = 5
    PROTOCOL_ERROR = 6
    INTERNAL_ERROR = 7


class MessageFlag:
    NONE = 0
    CONNECTION_ACCEPTED = 0x1
    TERMINATE_STREAM = 0x2
    ALL = 0x3


class RpcProtocolError(EventStreamProtocolError):
    """A well-framed message that breaks the event-stream RPC rules."""


@dataclass(frozen=True)
class SendQueuePolicy:
    """Bounds of one connection's outgoing queue (see the module docstring)."""

    max_messages: int = 1024
    max_bytes: int = 8 * 1024 * 1024
    max_dropped: int = 1000
    close_timeout: float = 2.0


@dataclass
class Response:
    """What an operation handler returns: the response shape, and whether the stream stays open."""

    model_name: str
    payload: dict[str, Any]
    streaming: bool = False
    on_sent: Callable[[], None] | None = None
    """Runs right after the response is queued: events sent before it would reach the
    client ahead of the response, which the SDK rejects."""


class OperationRouter(Protocol):
    def authenticate(self, token: str) -> str | None: ...

    def handle(
        self, stream: Stream, operation: str, request: dict[str, Any]
    ) -> Response | Awaitable[Response]: ...


def _frame(
    message_type: int,
    flags: int,
    stream_id: int,
    extra: list[Header] | None = None,
    payload: bytes = b"",
) -> bytes:
    headers = [
        Header.int32(MESSAGE_TYPE, message_type),
        Header.int32(MESSAGE_FLAGS, flags),
        Header.int32(STREAM_ID, stream_id),
    ]
    if extra:
        headers.extend(extra)
    return encode(headers, payload)


def _json_headers(model_name: str) -> list[Header]:
    return [
        Header.string(CONTENT_TYPE, CONTENT_TYPE_JSON),
        Header.string(SERVICE_MODEL_TYPE, model_name),
    ]


def _int_header(message: Message, name: str) -> int:
    h = message.header(name)
    if h is None:
        raise RpcProtocolError(f"message has no {name} header")
    if h.type != HeaderType.INT32:
        raise RpcProtocolError(f"header {name} must be int32, not {h.type.name}")
    return int(h.value)


def _string_header(message: Message, name: str) -> str | None:
    h = message.header(name)
    if h is None:
        return None
    if h.type != HeaderType.STRING:
        raise RpcProtocolError(f"header {name} must be a string, not {h.type.name}")
    return str(h.value)


class Stream:
    """One operation on a connection (a continuation, in CRT terms)."""

    def __init__(self, connection: RpcConnection, stream_id: int, operation: str) -> None:
        self.connection = connection
        self.id = stream_id
        self.operation = operation
        self.closed = False
        self._close_callbacks: list[Callable[[], None]] = []

    @property
    def component(self) -> str:
        return self.connection.component or ""

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the stream ends (at once if it already has)."""
        if self.closed:
            callback()
        else:
            self._close_callbacks.append(callback)

    def send_event(self, model_name: str, payload: dict[str, Any]) -> None:
        """A stream event; droppable under the send-queue policy. Loop thread only."""
        if self.closed:
            return
        frame = _frame(
            MessageType.APPLICATION_MESSAGE,
            MessageFlag.NONE,
            self.id,
            _json_headers(model_name),
            json.dumps(payload).encode(),
        )
        self.connection.enqueue(frame, droppable=True)

    def respond(self, response: Response) -> None:
        if self.closed:
            return
        flags = MessageFlag.NONE if response.streaming else MessageFlag.TERMINATE_STREAM
        try:
            frame = _frame(
                MessageType.APPLICATION_MESSAGE,
                flags,
                self.id,
                _json_headers(response.model_name),
                json.dumps(response.payload).encode(),
            )
        except (TypeError, ValueError) as exc:  # not JSON, or over the 16 MiB frame limit
            log.exception("IPC %s: cannot encode the response", self.operation)
            self.fail(ServiceError(f"{self.operation}: the response cannot be sent: {exc}"))
            return
        self.connection.enqueue(frame, droppable=False)
        if response.on_sent is not None:
            response.on_sent()
        if not response.streaming:
            self.close()

    def fail(self, error: IpcOperationError) -> None:
        if self.closed:
            return
        frame = _frame(
            MessageType.APPLICATION_ERROR,
            MessageFlag.TERMINATE_STREAM,
            self.id,
            _json_headers(error.model_name),
            json.dumps(error.payload()).encode(),
        )
        self.connection.enqueue(frame, droppable=False)
        self.close()

    def close(self) -> None:
        """Forget the stream and run its close callbacks (unsubscribe etc.)."""
        if self.closed:
            return
        self.closed = True
        self.connection.forget(self.id)
        callbacks, self._close_callbacks = self._close_callbacks, []
        for cb in callbacks:
            try:
                cb()
            except Exception:
                log.exception("IPC stream %d (%s): close callback failed", self.id, self.operation)


class RpcConnection:
    """Serves one client socket on the server's event loop."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        router: OperationRouter,
        policy: SendQueuePolicy,
        on_closed: Callable[[RpcConnection], None] | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._router = router
        self._policy = policy
        self._on_closed = on_closed
        self._decoder = FrameDecoder()
        self._streams: dict[int, Stream] = {}
        self._last_stream_id = 0
        self._queue: collections.deque[tuple[bytes, bool]] = collections.deque()
        self._queued_bytes = 0
        self._dropped_since_empty = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.component: str | None = None
        self._refused = False
        self.dropped_events = 0
        self.close_reason: str | None = None

    # ---------------------------------------------------------------- lifecycle
    async def serve(self) -> None:
        writer_task = asyncio.create_task(self._write_loop())
        try:
            await self._read_loop()
        finally:
            if not self._closing:
                self.close("peer closed the connection", flush=False)
            await asyncio.gather(writer_task, return_exceptions=True)
            self._finish()

    async def _read_loop(self) -> None:
        while not self._closing:
            try:
                data = await self._reader.read(65536)
            except (ConnectionError, OSError):
                return
            if not data:
                return
            try:
                for message in self._decoder.iter_feed(data):
                    self._on_message(message)
                    if self._closing:
                        return
            except EventStreamProtocolError as exc:
                self.protocol_error(str(exc))
                return

    def close(self, reason: str, *, flush: bool = True) -> None:
        """Stop reading; with ``flush`` send what is queued first (bounded by close_timeout)."""
        if self._closing:
            return
        self._closing = True
        self.close_reason = reason
        log.debug("IPC connection (%s) closing: %s", self.component, reason)
        if not flush:
            self._queue.clear()
            self._queued_bytes = 0
            self._writer.transport.abort()
        else:
            asyncio.get_running_loop().call_later(self._policy.close_timeout, self._abort)
        self._wake.set()
        # Wake the reader if it is parked in read().
        self._reader.feed_eof()

    def _abort(self) -> None:
        if not self._closed:
            self._writer.transport.abort()

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        for stream in list(self._streams.values()):
            stream.close()
        for task in self._tasks:
            task.cancel()
        if not self._writer.transport.is_closing():
            self._writer.transport.close()
        if self._on_closed is not None:
            self._on_closed(self)

    def protocol_error(self, reason: str) -> None:
        log.warning(
            "IPC protocol error from %s: %s", self.component or "unauthenticated client", reason
        )
        if self._closing:
            return
        frame = _frame(
            MessageType.PROTOCOL_ERROR,
            MessageFlag.NONE,
            0,
            [Header.string(CONTENT_TYPE, CONTENT_TYPE_JSON)],
            json.dumps({"message": reason}).encode(),
        )
        self._push(frame, droppable=False)
        self.close(f"protocol error: {reason}")

    # ---------------------------------------------------------------- sending
    def enqueue(self, frame: bytes, *, droppable: bool) -> None:
        """Queue a frame for the writer; never blocks (see the send queue policy)."""
        if self._closing:
            return
        p = self._policy
        if droppable:

            def full() -> bool:
                # An empty queue always takes one frame, however large.
                return bool(self._queue) and (
                    len(self._queue) >= p.max_messages
                    or self._queued_bytes + len(frame) > p.max_bytes
                )

            while full() and self._drop_oldest_event():
                pass
            if self._closing:
                return  # dropping closed the connection
            if full():
                self._count_drop()  # only responses queued: drop the new event itself
                return
        elif len(self._queue) >= 2 * p.max_messages or self._queued_bytes > 2 * p.max_bytes:
            self.close("client does not read its responses; send queue overflow", flush=False)
            return
        self._push(frame, droppable)

    def _push(self, frame: bytes, droppable: bool) -> None:
        self._queue.append((frame, droppable))
        self._queued_bytes += len(frame)
        self._wake.set()

    def _drop_oldest_event(self) -> bool:
        for i, (frame, droppable) in enumerate(self._queue):
            if droppable:
                del self._queue[i]
                self._queued_bytes -= len(frame)
                self._count_drop()
                return True
        return False

    def _count_drop(self) -> None:
        self.dropped_events += 1
        self._dropped_since_empty += 1
        if self._dropped_since_empty >= self._policy.max_dropped:
            log.warning(
                "IPC client %s is not reading its events; dropped %d, closing its connection",
                self.component,
                self._dropped_since_empty,
            )
            self.close(
                f"subscriber is not reading: dropped {self._dropped_since_empty} events",
                flush=False,
            )

    async def _write_loop(self) -> None:
        writer = self._writer
        try:
            while True:
                if not self._queue:
                    self._dropped_since_empty = 0
                    if self._closing:
                        break
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                batch: list[bytes] = []
                size = 0
                while self._queue and len(batch) < 64 and size < 256 * 1024:
                    frame, _ = self._queue.popleft()
                    self._queued_bytes -= len(frame)
                    batch.append(frame)
                    size += len(frame)
                writer.write(b"".join(batch))
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if not writer.transport.is_closing():
                writer.transport.close()
            # The reader may still be waiting for bytes from a peer we no longer serve.
            if not self._closing:
                self.close("connection lost while writing", flush=False)

    # ---------------------------------------------------------------- receiving
    def _on_message(self, message: Message) -> None:
        message_type = _int_header(message, MESSAGE_TYPE)
        flags = _int_header(message, MESSAGE_FLAGS)
        stream_id = _int_header(message, STREAM_ID)
        if flags & ~MessageFlag.ALL:
            raise RpcProtocolError(f"unknown message flags 0x{flags:x}")
        if message_type not in MessageType._value2member_map_:
            raise RpcProtocolError(f"unknown message type {message_type}")
        if stream_id < 0:
            raise RpcProtocolError(f"negative stream id {stream_id}")

        if self._refused:
            return  # waiting for the refused client to hang up
        if self.component is None:
            if message_type != MessageType.CONNECT or stream_id != 0:
                raise RpcProtocolError("the first message on a connection must be CONNECT")
            self._on_connect(message)
            return

        if stream_id == 0:
            if message_type in (MessageType.APPLICATION_MESSAGE, MessageType.APPLICATION_ERROR):
                raise RpcProtocolError("application messages need a non-zero stream id")
            if message_type == MessageType.PING:
                self._push(
                    _frame(MessageType.PING_RESPONSE, MessageFlag.NONE, 0, None, message.payload),
                    droppable=False,
                )
            elif message_type == MessageType.PING_RESPONSE:
                pass
            elif message_type in (MessageType.CONNECT, MessageType.CONNECT_ACK):
                raise RpcProtocolError("the connection is already established")
            else:  # the client reports an error of its own
                self.close(
                    f"client sent {MessageType(message_type).name}: {message.payload[:200]!r}"
                )
            return

        if message_type not in (MessageType.APPLICATION_MESSAGE, MessageType.APPLICATION_ERROR):
            raise RpcProtocolError(
                f"{MessageType(message_type).name} is not allowed on stream {stream_id}"
            )
        stream = self._streams.get(stream_id)
        if stream is not None:
            # Operations here take no input after the request; only termination matters.
            if (
                flags & MessageFlag.TERMINATE_STREAM
                or message_type == MessageType.APPLICATION_ERROR
            ):
                stream.close()
            return
        if stream_id <= self._last_stream_id:
            return  # a stream that already ended; late messages are ignored
        if stream_id > MAX_STREAM_ID:
            raise RpcProtocolError(f"stream id {stream_id} is too large")
        operation = _string_header(message, OPERATION)
        if not operation:
            raise RpcProtocolError(f"new stream {stream_id} has no operation header")
        self._last_stream_id = stream_id
        if message_type != MessageType.APPLICATION_MESSAGE or flags & MessageFlag.TERMINATE_STREAM:
            return  # opened and abandoned in the same message
        self._start_operation(stream_id, operation, message)

    def _on_connect(self, message: Message) -> None:
        version = _string_header(message, VERSION)
        token: str | None = None
        try:
            body = json.loads(message.payload.decode("utf-8")) if message.payload else {}
            if isinstance(body, dict) and isinstance(body.get("authToken"), str):
                token = body["authToken"]
        except (UnicodeDecodeError, json.JSONDecodeError):
            token = None
        component = None
        if token and (version is None or version == PROTOCOL_VERSION):
            try:
                component = self._router.authenticate(token)
            except Exception:
                log.exception("IPC host failed to authenticate a token")
                component = None
        if component is None:
            reason = (
                f"unsupported protocol version {version!r}"
                if version not in (None, PROTOCOL_VERSION)
                else "missing or unknown authToken"
            )
            log.warning("IPC connection refused: %s", reason)
            self._push(_frame(MessageType.CONNECT_ACK, MessageFlag.NONE, 0), droppable=False)
            # The client closes on a refused CONNECT_ACK; closing first would race it and the
            # SDK would report "socket closed" instead of its AccessDeniedError.
            self._refused = True
            asyncio.get_running_loop().call_later(
                self._policy.close_timeout, self.close, f"connection refused: {reason}"
            )
            return
        self.component = component
        self._push(
            _frame(MessageType.CONNECT_ACK, MessageFlag.CONNECTION_ACCEPTED, 0), droppable=False
        )

    def _start_operation(self, stream_id: int, operation: str, message: Message) -> None:
        stream = Stream(self, stream_id, operation)
        self._streams[stream_id] = stream
        try:
            content_type = _string_header(message, CONTENT_TYPE)
            if content_type not in (None, CONTENT_TYPE_JSON):
                raise InvalidArgumentsError(
                    f"{operation}: :content-type must be {CONTENT_TYPE_JSON}, not {content_type}"
                )
            try:
                request = json.loads(message.payload.decode("utf-8")) if message.payload else {}
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InvalidArgumentsError(
                    f"{operation}: request is not valid JSON: {exc}"
                ) from exc
            if not isinstance(request, dict):
                raise InvalidArgumentsError(f"{operation}: request must be a JSON object")
            result = self._router.handle(stream, operation, request)
        except IpcOperationError as exc:
            stream.fail(exc)
            return
        except Exception as exc:
            log.exception("IPC operation %s from %s failed", operation, self.component)
            stream.fail(ServiceError(f"{operation} failed on the local device: {exc}"))
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(self._finish_operation(stream, result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            stream.respond(result)

    async def _finish_operation(self, stream: Stream, pending: Awaitable[Response]) -> None:
        try:
            result = await pending
        except IpcOperationError as exc:
            stream.fail(exc)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("IPC operation %s from %s failed", stream.operation, self.component)
            stream.fail(ServiceError(f"{stream.operation} failed on the local device: {exc}"))
            return
        stream.respond(result)

    def forget(self, stream_id: int) -> None:
        self._streams.pop(stream_id, None)

    @property
    def open_streams(self) -> int:
        return len(self._streams)
