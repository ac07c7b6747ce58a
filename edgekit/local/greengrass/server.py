"""HTTP server of the local Greengrass v2 control plane (loopback, threaded).

``GreengrassServer`` serves ``GreengrassResponses`` with the standard library's
ThreadingHTTPServer (HTTP/1.1 keep-alive, one thread per connection), either
in a background thread (tests, notebooks) or in the foreground
(``python -m edgekit.local.greengrass``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from edgekit.errors import LocalBackendError
from edgekit.local.greengrass.models import DEFAULT_ACCOUNT_ID, GreengrassBackend
from edgekit.local.greengrass.responses import GreengrassResponses

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server_version = "edgekit-greengrass"
    sys_version = ""
    server: _HttpServer

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                total += size
                if total > MAX_BODY:
                    raise ValueError("request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError) as exc:
            self.send_error(400, f"cannot read the request body: {exc}")
            return
        response = self.server.responses.dispatch(self.command, self.path, self.headers, body)
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], responses: Any) -> None:
        self.responses = responses
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
    read from and presigned for; None means real AWS S3.
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
    ) -> None:
        self.backend = GreengrassBackend(state_dir, aws_endpoint, region, account_id)
        self.responses = GreengrassResponses(self.backend)
        self.host = host
        try:
            self._httpd = _HttpServer((host, port), self.responses)
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
