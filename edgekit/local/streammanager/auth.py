"""Client authentication: is a token one the device gave to one of its components?

On Greengrass the nucleus gives every component its ``SVCUID`` also as
``AWS_CONTAINER_AUTHORIZATION_TOKEN``; the Stream Manager SDK sends that variable as
``authToken`` and the stream manager asks the nucleus whether it is valid. Here the
question goes to the device's IPC server: a token is valid when the IPC server accepts a
connection made with it. Accepted tokens are remembered (they live as long as the device).
"""

from __future__ import annotations

import logging
import threading

import awsiot.greengrasscoreipc
from awscrt.exceptions import AwsCrtError
from awsiot.eventstreamrpc import AccessDeniedError, ConnectionClosedError, EventStreamError

__all__ = ["IpcTokenValidator"]

log = logging.getLogger(__name__)


class IpcTokenValidator:
    """``validator(token) -> bool`` against the IPC server at ``socket_path``."""

    def __init__(self, socket_path: str, *, timeout: float = 5.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._known: dict[str, bool] = {}
        self._lock = threading.Lock()

    def __call__(self, token: str) -> bool:
        with self._lock:
            known = self._known.get(token)
        if known is not None:
            return known
        try:
            client = awsiot.greengrasscoreipc.connect(
                ipc_socket=self.socket_path, authtoken=token, timeout=self.timeout
            )
        except (AccessDeniedError, ConnectionClosedError, EventStreamError, AwsCrtError) as exc:
            log.info("the device's IPC server refused a client token: %s", exc)
            valid = False
        else:
            client.close()
            valid = True
        if valid:  # a refusal is asked again: the IPC server may just be restarting
            with self._lock:
                if len(self._known) > 10_000:
                    self._known.clear()
                self._known[token] = True
        return valid
