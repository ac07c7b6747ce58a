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

from edgekit.agent.status import AgentStatusError, invalid_argument
from edgekit.errors import AgentError
from edgekit.unix_socket import UNIX_SOCKET_LIMIT, clear_stale_socket, fits

log = logging.getLogger(__name__)

SUFFIX = ".predict"
HEADER = struct.Struct(">IB")
PREDICT, OK, ERROR = 1, 0, 1
MAX_REQUEST_BYTES = 1 << 20
"""The largest request body the server reads: shared-memory requests are a few hundred bytes."""
MAX_REPLY_BYTES = 256 * 1024 * 1024
"""The largest reply the client reads (outputs sent inline): the gRPC message limit."""
RETRY_INTERVAL = 10.0
"""Seconds a client waits before it tries again to connect to a socket that was absent."""

Handler = Callable[[bytes], bytes]
"""A serialized request -> a serialized reply, or AgentStatusError."""


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


def _frame(kind: int, body: bytes) -> bytes:
    return HEADER.pack(len(body), kind) + body


def _error_body(exc: AgentStatusError) -> bytes:
    return f"{exc.code}\n{exc.details}".encode()


class FastPredictServer:
    """Serves ``handler`` on unix socket ``path`` until :meth:`stop`; a thread per connection."""

    def __init__(self, path: str | os.PathLike[str], handler: Handler, *, max_connections: int):
        self.path = Path(path)
        self.handler = handler
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
        try:
            while True:
                header = _recv_exact(conn, HEADER.size)
                if header is None:
                    return
                size, kind = HEADER.unpack(header)
                if kind != PREDICT or size > MAX_REQUEST_BYTES:
                    error = invalid_argument(
                        f"fast Predict socket {self.path}: a request of kind {kind} and "
                        f"{size} bytes is not a Predict of at most {MAX_REQUEST_BYTES} bytes; "
                        "send large tensors over gRPC"
                    )
                    conn.sendall(_frame(ERROR, _error_body(error)))
                    return  # the rest of the stream cannot be trusted
                body = _recv_exact(conn, size) if size else bytearray()
                if body is None:
                    return
                try:
                    reply = _frame(OK, self.handler(bytes(body)))
                except AgentStatusError as exc:
                    reply = _frame(ERROR, _error_body(exc))
                except Exception as exc:  # what gRPC answers for a handler's bug: UNKNOWN
                    log.exception("fast Predict failed")
                    error = AgentStatusError("UNKNOWN", f"Exception calling application: {exc}")
                    reply = _frame(ERROR, _error_body(error))
                conn.sendall(reply)
        except OSError as exc:  # the client went away mid-call, or stop()
            log.debug("fast Predict connection ended: %s", exc)
        finally:
            with self._lock:
                self._connections.pop(conn, None)
            conn.close()

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
        self._absent_since: float | None = None

    def _connect(self) -> socket.socket | None:
        if self._sock is not None:
            return self._sock
        if (
            self._absent_since is not None
            and time.monotonic() - self._absent_since < RETRY_INTERVAL
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
        return sock

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def call(self, body: bytes, *, method: str = "Predict") -> bytes | None:
        """The serialized reply; AgentStatusError as the gRPC call would raise it; None when
        the caller should send the request over gRPC instead."""
        if not self._lock.acquire(blocking=False):
            return None  # another thread's call is on the connection: gRPC runs concurrently
        try:
            sock = self._connect()
            if sock is None:
                return None
            try:
                sock.sendall(_frame(PREDICT, body))
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
                log.debug("fast Predict connection to %s lost (%s); using gRPC", self.path, exc)
                self._drop()
                return None
            if kind == OK:
                return bytes(reply)
            code, _, details = bytes(reply).decode("utf-8", "replace").partition("\n")
            raise AgentStatusError(code or "UNKNOWN", details, method=method)
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            self._drop()
