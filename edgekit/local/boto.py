"""boto3 clients on the local endpoints: dummy credentials, one shared botocore session.

Owns: how the local backend itself (device runtimes, the device manager) builds a
boto3 client for a loopback endpoint. Callers pass the endpoint; `for_endpoints`
picks it from a `LocalEndpoints`. Must not import ``edgekit.clients`` (the layer
above, which chooses between AWS and the local backend for user code).
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
import botocore.session
from botocore.config import Config

from edgekit.local.endpoints import DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY, LocalEndpoints

CLIENT_CONFIG: dict[str, Any] = {
    "retries": {"mode": "standard", "max_attempts": 3},
    "connect_timeout": 3,
    "read_timeout": 30,
    # Buckets are not DNS names on 127.0.0.1: always path-style.
    "s3": {"addressing_style": "path"},
}

_session_lock = threading.Lock()
_botocore_session: Any = None


def client(service: str, endpoint_url: str, region: str) -> Any:
    """A boto3 client for ``service`` at ``endpoint_url`` (botocore's data loaded once)."""
    global _botocore_session
    with _session_lock:
        if _botocore_session is None:
            _botocore_session = botocore.session.get_session()
        session = boto3.Session(botocore_session=_botocore_session)
        return session.client(
            service,
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=DUMMY_ACCESS_KEY_ID,
            aws_secret_access_key=DUMMY_SECRET_ACCESS_KEY,
            config=Config(**CLIENT_CONFIG),
        )


def for_endpoints(endpoints: LocalEndpoints, service: str) -> Any:
    """A boto3 client for ``service`` on the running local endpoints."""
    return client(service, endpoints.url_for(service), endpoints.region)
