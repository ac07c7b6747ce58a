"""A second, lighter transport for Predict over shared memory: length-prefixed frames on a
unix socket beside the agent's gRPC socket (an edgekit addition; the gRPC API is unchanged).

Why: a Predict whose tensors travel in shared memory carries a few hundred bytes, and
gRPC's own round trip (HTTP/2 framing, its completion queues, a thread-pool handoff
in the server) cost 0.3-0.6 ms on the benchmark machine, more than the whole budget
for the agent's overhead over an in-process run (0.3 ms). On a plain stream socket
the same round trip costs some 10 microseconds.

The wire: each request and reply is ``length (4 bytes, big endian) | kind (1 byte) |
body``. A request's kind is ``PREDICT`` and its body a serialized ``PredictRequest``,
the very message gRPC carries; a reply is ``OK`` with a serialized ``PredictResponse``,
or ``ERROR`` with ``<status code name>\\n<details>`` in UTF-8: the same codes and
messages the gRPC call ends with, because the agent runs the same code for both.
A ``REGISTER`` request carries one file descriptor (``SCM_RIGHTS``), a sealed memfd
(:mod:`edgekit.agent.sealed`), and its key as the body: later Predicts on that
connection name the key in ``segment_name`` and the agent reads and writes the
segment in place (answer ``OK`` with no body, or ``ERROR``).
A ``CALL`` request carries any other call of the API as ``<method name>\n<serialized
request>`` (``LoadModel``, ``ListModels``, ``CaptureData``...), answered as a Predict is,
so a client that has the fast socket needs no gRPC at all (grpc is some 16 MB of every
process that imports it); the agent serves it with the very code its gRPC methods run.
A CALL whose connection breaks after it was sent is UNAVAILABLE, never sent again over
gRPC: the agent may have run it (a Predict, which changes nothing, is sent again).

The server (:class:`FastPredictServer`) serves each connection on a thread of its own
that reads a request, runs it and answers, with no handoff; at most
``max_connections`` at once (more are closed at once: their clients use gRPC). The
socket is ``<agent socket>.predict`` (:func:`fast_socket_path`), mode 0660 like
the gRPC socket.

The client (:class:`FastPredictClient`) keeps one connection. It checks who listens
(``SO_PEERCRED``, as :func:`edgekit.agent.client.check_peer` does) when it connects,
and answers None, so the caller uses gRPC, when the socket is absent (an agent
without it, such as the original one), the connection broke (the agent restarted:
the next call reconnects), or another thread is using it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edgekit.agent import sealed
from edgekit.agent.sealed import MappedSegments
from edgekit.agent.status import AgentStatusError, invalid_argument
from edgekit.errors import AgentError
from edgekit.unix_socket import UNIX_SOCKET_LIMIT, clear_stale_socket, fits

log = logging.getLogger(__name__)

SUFFIX = ".predict"
HEADER = struct.Struct(">IB")
PREDICT, REGISTER, OK, ERROR = 1, 2, 0, 1
CALL = 3
MAX_FDS = 4
"""File descriptors read with one request (a REGISTER carries one; extras are closed)."""
MAX_REQUEST_BYTES = 1 << 20
"""The largest request body the server reads: shared-memory requests are a few hundred bytes."""
MAX_REPLY_BYTES = 256 * 1024 * 1024
"""The largest reply the client reads (outputs sent inline): the gRPC message limit."""
MAX_CALL_BYTES = MAX_REPLY_BYTES
"""The largest CALL the server reads (a CaptureData carries tensors): the gRPC limit."""
RETRY_INTERVAL = 10.0
"""Seconds a client waits before it tries again to connect to a socket that was absent
(at once when the socket file is there again: the agent restarted)."""

Handler = Callable[[bytes, MappedSegments | None], bytes]
"""A serialized request and the connection's registered segments -> a serialized reply,
or AgentStatusError."""
Caller = Callable[[str, bytes], bytes]
"""A method name and its serialized request -> the serialized response, or AgentStatusError."""


def fast_socket_path(socket_path: str | os.PathLike[str]) -> Path:
    """Where the agent serving gRPC on ``socket_path`` serves the fast Predict."""
    return Path(os.fspath(socket_path) + SUFFIX)


def _recv_exact(sock: socket.socket, size: int) -> bytearray | None:
    """``size`` bytes, or None if the peer closed the connection before the first byte."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        count = sock.recv_into(view[got:])
        if count == 0:
            if got == 0:
                return None
            raise ConnectionResetError(f"connection closed after {got} of {size} bytes")
        got += count
    return buffer


def _recv_header(sock: socket.socket) -> tuple[bytearray | None, list[int]]:
    """A frame header and the file descriptors that came with it (None at end of stream)."""
    data, fds, _flags, _addr = socket.recv_fds(sock, HEADER.size, MAX_FDS)
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    header = bytearray(data)
    if len(header) < HEADER.size:
        rest = _recv_exact(sock, HEADER.size - len(header))
        if rest is None:
            for fd in fds:
                os.close(fd)
            raise ConnectionResetError("connection closed inside a frame header")
        header += rest
    return header, list(fds)


def _frame(kind: int, body: bytes) -> bytes:
    return HEADER.pack(len(body), kind) + body


def _error_body(exc: AgentStatusError) -> bytes:
    return f"{exc.code}\n{exc.details}".encode()


class FastPredictServer:
    """Serves ``handler`` on unix socket ``path`` until :meth:`stop`; a thread per connection."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        handler: Handler,
        *,
        max_connections: int,
        calls: Caller | None = None,
    ):
        """``calls`` serves CALL requests (none without it: they are refused)."""
        self.path = Path(path)
        self.handler = handler
        self.calls = calls
        self.max_connections = max(1, int(max_connections))
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._accepting: threading.Thread | None = None

    @staticmethod
    def usable(path: str | os.PathLike[str]) -> bool:
        """False when ``path`` is too long for a unix socket address (no fast path then)."""
        return fits(path, UNIX_SOCKET_LIMIT)

    def start(self) -> FastPredictServer:
        state = clear_stale_socket(self.path)
        if state != "free":
            what = "is not a socket" if state == "not a socket" else "has a live server"
            raise AgentError(
                f"{self.path} {what}; stop whatever serves there or remove it, then start the "
                "agent again"
            )
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(self.path))
            os.chmod(self.path, 0o660)  # as the gRPC socket: the agent's user and group only
            listener.listen(self.max_connections)
        except OSError as exc:
            listener.close()
            raise AgentError(f"cannot listen on {self.path}: {exc.strerror or exc}") from exc
        self._listener = listener
        self._accepting = threading.Thread(
            target=self._accept_loop, name="edgekit-agent-fast-accept", daemon=True
        )
        self._accepting.start()
        return self

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # stop() closed the listener
            with self._lock:
                if self._listener is None or len(self._connections) >= self.max_connections:
                    conn.close()  # the client sees the connection end and uses gRPC
                    continue
                thread = threading.Thread(
                    target=self._serve, args=(conn,), name="edgekit-agent-fast", daemon=True
                )
                self._connections[conn] = thread
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        segments = MappedSegments() if sealed.available() else None
        try:
            while True:
                header, fds = _recv_header(conn)
                if header is None:
                    return
                size, kind = HEADER.unpack(header)
                call = kind == CALL and self.calls is not None
                if (kind not in (PREDICT, REGISTER) and not call) or size > (
                    MAX_CALL_BYTES if call else MAX_REQUEST_BYTES
                ):
                    for fd in fds:
                        os.close(fd)
                    error = invalid_argument(
                        f"fast Predict socket {self.path}: a request of kind {kind} and "
                        f"{size} bytes is not a Predict of at most {MAX_REQUEST_BYTES} bytes; "
                        "send large tensors over gRPC"
                    )
                    conn.sendall(_frame(ERROR, _error_body(error)))
                    return  # the rest of the stream cannot be trusted
                try:
                    body = _recv_exact(conn, size) if size else bytearray()
                except BaseException:
                    for fd in fds:
                        os.close(fd)
                    raise
                if body is None:
                    for fd in fds:
                        os.close(fd)
                    return
                conn.sendall(self._answer(kind, bytes(body), fds, segments))
        except OSError as exc:  # the client went away mid-call, or stop()
            log.debug("fast Predict connection ended: %s", exc)
        finally:
            with self._lock:
                self._connections.pop(conn, None)
            conn.close()
            if segments is not None:
                segments.close()

    def _answer(
        self, kind: int, body: bytes, fds: list[int], segments: MappedSegments | None
    ) -> bytes:
        """The reply frame to one request (a status error is an ERROR frame)."""
        try:
            if kind == REGISTER:
                if len(fds) != 1 or segments is None:
                    raise invalid_argument(
                        "REGISTER takes exactly one memfd"
                        if segments is not None
                        else "this agent cannot map sealed segments (no memfd here)"
                    )
                segments.add(body.decode("utf-8", "replace"), fds.pop())
                return _frame(OK, b"")
            if kind == CALL:
                assert self.calls is not None
                method, _, request = body.partition(b"\n")
                return _frame(OK, self.calls(method.decode("ascii", "replace"), request))
            return _frame(OK, self.handler(body, segments))
        except AgentStatusError as exc:
            return _frame(ERROR, _error_body(exc))
        except Exception as exc:  # what gRPC answers for a handler's bug: UNKNOWN
            log.exception("fast Predict failed")
            error = AgentStatusError("UNKNOWN", f"Exception calling application: {exc}")
            return _frame(ERROR, _error_body(error))
        finally:
            for fd in fds:
                os.close(fd)

    def stop(self, grace: float | None = 2.0) -> None:
        """Stop accepting; calls running finish and are answered (up to ``grace`` seconds)."""
        with self._lock:
            listener, self._listener = self._listener, None
            connections = dict(self._connections)
        if listener is None:
            return
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        if self._accepting is not None:
            self._accepting.join(grace)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RD)  # the next read ends; a reply may still go out
        deadline = None if grace is None else time.monotonic() + grace
        for thread in connections.values():
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self.path.unlink(missing_ok=True)


class FastPredictClient:
    """One connection to a :class:`FastPredictServer`; :meth:`call` answers None to mean
    "use gRPC" (see the module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float,
        check_peer: Callable[[socket.socket, str], None],
    ) -> None:
        """``check_peer(sock, path)`` raises AgentStatusError when the process that accepted
        the connection is not this device's agent."""
        self.path = str(path)
        self.timeout = timeout
        self._check_peer = check_peer
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._registered: set[str] = set()
        self._absent_since: float | None = None

    def _connect(self) -> socket.socket | None:
        if self._sock is not None:
            return self._sock
        if (
            self._absent_since is not None
            and time.monotonic() - self._absent_since < RETRY_INTERVAL
            and not os.path.exists(self.path)  # an agent (re)started since: connect now
        ):
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.path)
            self._check_peer(sock, self.path)
        except OSError:
            sock.close()
            self._absent_since = time.monotonic()
            return None
        except BaseException:
            sock.close()
            raise
        self._absent_since = None
        self._sock = sock
        self._registered = set()
        return sock

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        self._registered = set()
        if sock is not None:
            sock.close()

    def begin(self) -> bool:
        """Take the connection for one call (connecting if needed): False (nothing taken)
        when it is absent or another thread has it; else :meth:`end` must follow."""
        if not self._lock.acquire(blocking=False):
            return False  # another thread's call is on the connection: gRPC runs concurrently
        try:
            if self._connect() is not None:
                return True
        except BaseException:
            self._lock.release()
            raise
        self._lock.release()
        return False

    def end(self) -> None:
        self._lock.release()

    def ready(self) -> bool:
        """Connect now unless connected, even within RETRY_INTERVAL of finding the socket
        absent (to wait for an agent that is starting): True when connected."""
        with self._lock:
            self._absent_since = None
            return self._connect() is not None

    def unary(self, method: str, body: bytes) -> bytes | None:
        """Call ``method`` (one of the API's, not a shared-memory Predict) with serialized
        request ``body`` in a CALL: the serialized response, AgentStatusError as the gRPC
        call would raise it, or None (use gRPC) when the socket is absent or the
        connection stayed busy for the timeout. Waits for a call of another thread on
        the connection. A connection found broken when the request is sent (the agent
        restarted since it was made) is made again once: the request never went out.
        One that breaks after the request went out is UNAVAILABLE, as a gRPC call whose
        connection breaks: the agent may have run it, so it is not sent again (a
        LoadModel or CaptureData must not run twice)."""
        if not self._lock.acquire(timeout=self.timeout):
            return None
        try:
            for _ in range(2):
                sock = self._connect()
                if sock is None:
                    return None
                try:
                    sock.sendall(_frame(CALL, method.encode("ascii") + b"\n" + body))
                except OSError as exc:
                    self._lost(exc)
                    continue
                reply = self._reply(method)
                if reply is None:
                    raise AgentStatusError(
                        "UNAVAILABLE",
                        f"the connection to the agent on {self.path} broke after {method} was "
                        "sent: the agent may have run it; check (e.g. ListModels) before "
                        "calling again",
                        method=method,
                    )
                return reply
            return None
        finally:
            self._lock.release()

    def register(self, segment: sealed.SealedSegment, *, method: str = "Predict") -> bool:
        """Pass ``segment``'s memfd to the agent once per connection (between :meth:`begin`
        and :meth:`end`); False when the connection broke (the caller uses gRPC)."""
        if segment.name in self._registered:
            return True
        sock = self._sock
        if sock is None:
            return False
        body = segment.name.encode()
        try:
            socket.send_fds(sock, [_frame(REGISTER, body)], [segment.fd])
        except OSError as exc:
            return self._lost(exc)
        if self._reply(method) is None:
            return False
        self._registered.add(segment.name)
        return True

    def _lost(self, exc: BaseException) -> bool:
        log.debug("fast Predict connection to %s lost (%s); using gRPC", self.path, exc)
        self._drop()
        return False

    def _reply(self, method: str) -> bytes | None:
        """Read one reply: its body for OK, AgentStatusError for ERROR, None when the
        connection broke (dropped)."""
        sock = self._sock
        assert sock is not None
        try:
            header = _recv_exact(sock, HEADER.size)
            if header is None:
                raise ConnectionResetError("the agent closed the connection")
            size, kind = HEADER.unpack(header)
            if size > MAX_REPLY_BYTES:
                raise ConnectionResetError(f"a reply of {size} bytes")
            reply = _recv_exact(sock, size) if size else bytearray()
            if reply is None:
                raise ConnectionResetError("the agent closed the connection")
        except TimeoutError:
            self._drop()  # a late reply would answer the next call
            raise AgentStatusError(
                "DEADLINE_EXCEEDED",
                f"the agent did not answer within {self.timeout:g} s on {self.path}",
                method=method,
            ) from None
        except OSError as exc:
            self._lost(exc)
            return None
        if kind == OK:
            return bytes(reply)
        code, _, details = bytes(reply).decode("utf-8", "replace").partition("\n")
        raise AgentStatusError(code or "UNKNOWN", details, method=method)

    def send(self, body: bytes, *, method: str = "Predict") -> bytes | None:
        """One Predict between :meth:`begin` and :meth:`end`: the serialized reply,
        AgentStatusError as the gRPC call would raise it, or None (use gRPC)."""
        sock = self._sock
        if sock is None:
            return None
        try:
            sock.sendall(_frame(PREDICT, body))
        except OSError as exc:
            self._lost(exc)
            return None
        return self._reply(method)

    def call(self, body: bytes, *, method: str = "Predict") -> bytes | None:
        """:meth:`send` with :meth:`begin` and :meth:`end` around it (None also when the
        connection is absent or busy)."""
        if not self.begin():
            return None
        try:
            return self.send(body, method=method)
        finally:
            self.end()

    def close(self) -> None:
        with self._lock:
            self._drop()
