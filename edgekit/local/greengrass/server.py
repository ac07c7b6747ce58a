"""HTTP server of the local Greengrass v2 control plane (loopback, threaded).

``GreengrassServer`` serves ``GreengrassResponses`` with the standard library's
ThreadingHTTPServer (HTTP/1.1 keep-alive, one thread per connection), either
in a background thread (tests, notebooks) or in the foreground
(``python -m edgekit.local.greengrass``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from edgekit.errors import LocalBackendError
from edgekit.local.greengrass.errors import GreengrassApiError, ValidationException
from edgekit.local.greengrass.models import DEFAULT_ACCOUNT_ID, GreengrassBackend
from edgekit.local.greengrass.responses import GreengrassResponses, HttpResponse, error_response

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024 * 1024
# A connection that sends nothing (no request, or a stalled body) this long is closed,
# so its thread ends; 60 s like an AWS load balancer's default idle timeout.
IDLE_TIMEOUT = 60.0
_MAX_LINE = 65536
_MAX_TRAILERS = 100


class _ClientGone(Exception):
    """The client closed the connection before sending the whole body."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server_version = "edgekit-greengrass"
    sys_version = ""
    server: _HttpServer

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout  # every socket read/write, idle included
        super().setup()

    def _read_exactly(self, size: int) -> bytes:
        data = self.rfile.read(size)
        if len(data) < size:
            raise _ClientGone
        return data

    def _read_chunked(self) -> bytes:
        chunks = []
        total = 0
        while True:
            line = self.rfile.readline(_MAX_LINE)
            if not line:
                raise _ClientGone
            text = line.split(b";", 1)[0].strip()
            if not re.fullmatch(rb"[0-9A-Fa-f]{1,16}", text):
                raise ValidationException(
                    f"The chunk size {text[:40]!r} of the chunked request body is not a "
                    "hexadecimal number",
                    reason="CANNOT_PARSE",
                )
            size = int(text, 16)
            if size == 0:
                for _ in range(_MAX_TRAILERS):
                    if self.rfile.readline(_MAX_LINE) in (b"\r\n", b"\n", b""):
                        break  # end of the trailers
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                raise _too_large()
            chunks.append(self._read_exactly(size))
            self.rfile.readline(_MAX_LINE)

    def _read_body(self) -> bytes:
        """The request body; ValidationException for a length it cannot honour."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        raw = (self.headers.get("Content-Length") or "").strip()
        if not raw:
            return b""
        if not re.fullmatch(r"[0-9]{1,20}", raw):
            raise ValidationException(
                f"Content-Length {raw[:40]!r} is not a number of bytes (0 or more)",
                reason="CANNOT_PARSE",
            )
        length = int(raw)
        if length > MAX_BODY:
            raise _too_large()
        return self._read_exactly(length) if length else b""

    def _send(self, response: HttpResponse, *, close: bool = False) -> None:
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.body)))
        if close:
            self.send_header("Connection", "close")  # also sets close_connection
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except _ClientGone:
            self.close_connection = True
            return
        except GreengrassApiError as exc:
            # The rest of the body can't be told from the next request: answer, hang up.
            self._send(error_response(exc, str(uuid.uuid4())), close=True)
            return
        response = self.server.responses.dispatch(self.command, self.path, self.headers, body)
        self._send(response)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own errors (bad request line, huge headers, unknown
        method) in the AWS REST-JSON error shape instead of an HTML page."""
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # so the status line and headers are sent
        error_type = {501: "UnknownOperationException"}.get(
            code, "ValidationException" if code < 500 else "InternalServerException"
        )
        text = message or explain or f"HTTP {code}"
        headers = {
            "x-amzn-RequestId": str(uuid.uuid4()),
            "x-amzn-ErrorType": error_type,
            "Content-Type": "application/json",
        }
        body = json.dumps({"message": f"The request was refused: {text}"}).encode("utf-8")
        self._send(HttpResponse(code, body, headers), close=True)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)


def _too_large() -> ValidationException:
    return ValidationException(
        f"The request body is larger than 64 MiB ({MAX_BODY:,} bytes), the most this "
        "endpoint accepts; send a smaller request (recipes are at most 16 kB)",
        reason="CANNOT_PARSE",
    )


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], responses: Any, idle_timeout: float = IDLE_TIMEOUT
    ) -> None:
        self.responses = responses
        self.idle_timeout = idle_timeout
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-response is routine (timeouts, Ctrl-C): log, don't print.
        log.debug("connection from %s ended with an error", client_address, exc_info=True)

    def close_connections(self) -> None:
        """Close idle keep-alive connections so their threads end with the server."""
        with self._connections_lock:
            connections = list(self._connections)
            self._connections.clear()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class GreengrassServer:
    """The emulated ``greengrassv2`` endpoint with its state under ``state_dir``.

    ``aws_endpoint`` is the S3 endpoint (the local moto server) artifacts are
    read from and presigned for; None means real AWS S3. A connection idle (or
    stalled mid-request) for ``idle_timeout`` seconds is closed.
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        aws_endpoint: str | None,
        region: str = "us-east-1",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        account_id: str = DEFAULT_ACCOUNT_ID,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self.backend = GreengrassBackend(state_dir, aws_endpoint, region, account_id)
        self.responses = GreengrassResponses(self.backend)
        self.host = host
        try:
            self._httpd = _HttpServer((host, port), self.responses, idle_timeout)
        except OSError as exc:
            raise LocalBackendError(
                f"cannot listen on {host}:{port} for the Greengrass emulator ({exc}); "
                "pick another port or use port 0 for a free one"
            ) from exc
        self.port: int = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> GreengrassServer:
        """Serve in a background thread (the socket is already listening)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.2},
                name=f"greengrass-emulator-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``stop()`` is called from another thread."""
        self._httpd.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> GreengrassServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
