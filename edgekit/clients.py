"""boto3 sessions and clients for either backend, through one code path.

Every edgekit call to AWS makes the same boto3 call on both backends; a small
resolver decides only *where* it lands and with which credentials:

- `AwsResolver`: the normal credential chain (optionally a named profile),
  botocore's own endpoints.
- `LocalEndpointsResolver`: the endpoints `edgekit local up` recorded (moto,
  the Greengrass emulator), dummy credentials, the Settings region.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from edgekit.errors import ConfigurationError
from edgekit.local.endpoints import DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY, LocalEndpoints
from edgekit.settings import Settings

# boto3 and botocore take a few hundred milliseconds to import: they load with the
# first session or client, so `import edgekit` and the CLI's --help stay fast.
if TYPE_CHECKING:
    import boto3
    from botocore.config import Config

# Retries in botocore's "standard" mode back off on throttling and transient errors;
# timeouts keep a notebook cell from hanging on a dead endpoint.
AWS_CONFIG: dict[str, Any] = {
    "retries": {"mode": "standard", "max_attempts": 5},
    "connect_timeout": 10,
    "read_timeout": 60,
}
LOCAL_CONFIG: dict[str, Any] = {
    "retries": {"mode": "standard", "max_attempts": 3},
    "connect_timeout": 3,
    "read_timeout": 60,
    # Buckets are not DNS names on 127.0.0.1: always path-style.
    "s3": {"addressing_style": "path"},
}


class EndpointResolver(Protocol):
    """Decides where boto3 calls land for one backend."""

    region: str

    def session_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``boto3.Session``."""

    def client_kwargs(self, service: str) -> dict[str, Any]:
        """Extra keyword arguments for ``session.client(service, ...)`` (e.g. endpoint_url)."""

    def config(self) -> Config:
        """The botocore Config for every client."""


@dataclass(frozen=True)
class AwsResolver:
    """Real AWS: the default credential chain or a named profile."""

    region: str
    profile: str | None = None

    def session_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"region_name": self.region}
        if self.profile:
            kwargs["profile_name"] = self.profile
        return kwargs

    def client_kwargs(self, service: str) -> dict[str, Any]:
        return {}

    def config(self) -> Config:
        from botocore.config import Config

        return Config(**AWS_CONFIG)


@dataclass(frozen=True)
class LocalEndpointsResolver:
    """The local endpoints of one home, with moto's dummy credentials."""

    endpoints: LocalEndpoints
    region: str

    def session_kwargs(self) -> dict[str, Any]:
        return {
            "region_name": self.region,
            "aws_access_key_id": DUMMY_ACCESS_KEY_ID,
            "aws_secret_access_key": DUMMY_SECRET_ACCESS_KEY,
        }

    def client_kwargs(self, service: str) -> dict[str, Any]:
        return {"endpoint_url": self.endpoints.url_for(service)}

    def config(self) -> Config:
        from botocore.config import Config

        return Config(**LOCAL_CONFIG)


def resolver(settings: Settings | None = None) -> EndpointResolver:
    """The resolver for ``settings.backend`` (local: reads ``settings.home/endpoints.json``)."""
    settings = settings or Settings.from_env()
    factory = _RESOLVERS[settings.backend]
    return factory(settings)


def _aws(settings: Settings) -> EndpointResolver:
    return AwsResolver(region=settings.region, profile=settings.aws_profile)


def _local(settings: Settings) -> EndpointResolver:
    # settings.home is the one rule: local_home, else EDGEKIT_LOCAL_HOME, else the default.
    return LocalEndpointsResolver(LocalEndpoints.load(settings.home), region=settings.region)


_RESOLVERS = {"aws": _aws, "local": _local}

# Creating a boto3 Session loads botocore's data files (~100 ms); reuse one per
# resolver. Sessions are not thread-safe, so client creation holds a lock.
_sessions: dict[tuple[Any, ...], boto3.Session] = {}
_lock = threading.Lock()


def _session_for(res: EndpointResolver) -> boto3.Session:
    import boto3

    key = (type(res).__name__, tuple(sorted(res.session_kwargs().items())))
    with _lock:
        sess = _sessions.get(key)
        if sess is None:
            sess = boto3.Session(**res.session_kwargs())
            _sessions[key] = sess
        return sess


def session(settings: Settings | None = None) -> boto3.Session:
    """A boto3 Session for the backend of ``settings`` (a fresh one, yours to keep)."""
    import boto3

    return boto3.Session(**resolver(settings).session_kwargs())


def client(
    service: str,
    settings: Settings | None = None,
    **kwargs: Any,
) -> Any:
    """A boto3 client for ``service`` on the backend of ``settings``; same calls either way.

    ``kwargs`` go to ``session.client`` (e.g. a different ``config``) and win over
    the resolver's choices.
    """
    _refuse_home(kwargs)
    res = resolver(settings)
    options: dict[str, Any] = {"config": res.config(), **res.client_kwargs(service), **kwargs}
    sess = _session_for(res)
    with _lock:
        return sess.client(service, **options)


def resource(
    service: str,
    settings: Settings | None = None,
    **kwargs: Any,
) -> Any:
    """A boto3 resource (e.g. ``resource("s3").Bucket(...)``), resolved like `client`."""
    _refuse_home(kwargs)
    res = resolver(settings)
    options: dict[str, Any] = {"config": res.config(), **res.client_kwargs(service), **kwargs}
    sess = _session_for(res)
    with _lock:
        return sess.resource(service, **options)


def _refuse_home(kwargs: dict[str, Any]) -> None:
    """``home=`` was a keyword of these functions; say where it went instead of misrouting."""
    if "home" in kwargs:
        raise ConfigurationError(
            "clients: 'home' is not a keyword any more; put the local backend's state folder "
            "in the settings: client(service, settings.replace(local_home=home))"
        )


__all__ = [
    "AwsResolver",
    "EndpointResolver",
    "LocalEndpointsResolver",
    "client",
    "resolver",
    "resource",
    "session",
]
