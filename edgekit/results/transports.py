"""Which `ResultsSubscriber` a backend uses: one small factory per backend, chosen by name.

- ``local``: paho-mqtt to the loopback broker of `edgekit local up`
  (``EDGEKIT_MQTT_ENDPOINT`` if set, else ``endpoints.json`` of ``settings.home``).
- ``aws``: awscrt over SigV4 websockets to the account's IoT Core data endpoint
  (``EDGEKIT_IOT_ENDPOINT`` if set, else iot:DescribeEndpoint).

The transport modules load on first use: paho and awscrt are only needed by the
backend that uses them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from urllib.parse import urlsplit

from edgekit import clients
from edgekit.errors import ConfigurationError
from edgekit.local.endpoints import LocalEndpoints
from edgekit.results.subscriber import ResultsSubscriber
from edgekit.settings import Settings

MQTT_ENDPOINT_ENV = "EDGEKIT_MQTT_ENDPOINT"
# Where the aws transport connects instead of iot:DescribeEndpoint's answer (a VPC
# endpoint, a proxy, or a broker standing in for IoT Core in tests).
IOT_DATA_ENDPOINT_ENV = "EDGEKIT_IOT_ENDPOINT"
Factory = Callable[[Settings], ResultsSubscriber]


def local_mqtt_endpoint(settings: Settings) -> str:
    """``host:port`` of the local broker: the env variable, else ``settings.home``'s endpoints.

    The device runtime hands the same variable to components, so a notebook
    started from `edgekit local env` and a device agree on the broker.
    """
    env = os.environ.get(MQTT_ENDPOINT_ENV, "").strip()
    if env:
        return env
    return LocalEndpoints.load(settings.home).mqtt


def _local(settings: Settings) -> ResultsSubscriber:
    from edgekit.results.local import PahoSubscriber

    return PahoSubscriber(local_mqtt_endpoint(settings))


def iot_data_override() -> tuple[str, int, bool] | None:
    """``(host, port, tls)`` from ``EDGEKIT_IOT_ENDPOINT``, if it is set.

    The MQTT-over-websockets endpoint of IoT Core's data plane, e.g. ``wss://HOST`` (a VPC
    endpoint or a proxy) or ``ws://127.0.0.1:PORT`` (a broker standing in for IoT Core);
    set, it wins over iot:DescribeEndpoint. ``https``/``wss`` mean TLS (port 443 by
    default), ``http``/``ws`` plain (port 80).
    """
    url = os.environ.get(IOT_DATA_ENDPOINT_ENV, "").strip()
    if not url:
        return None
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if not parts.hostname:
        raise ConfigurationError(
            f"{IOT_DATA_ENDPOINT_ENV}={url!r} names no host; use e.g. https://HOST[:PORT]"
        )
    tls = parts.scheme in ("https", "wss")
    return parts.hostname, parts.port or (443 if tls else 80), tls


def _aws(settings: Settings) -> ResultsSubscriber:
    from edgekit.results.aws import IotCoreSubscriber, credentials_provider, iot_data_endpoint

    provider = credentials_provider(clients.session(settings))
    override = iot_data_override()
    if override is not None:
        host, port, tls = override
        return IotCoreSubscriber(host, settings.region, provider, port=port, tls=tls)
    endpoint = iot_data_endpoint(clients.client("iot", settings))
    return IotCoreSubscriber(endpoint, settings.region, provider)


TRANSPORTS: dict[str, Factory] = {"local": _local, "aws": _aws}


def subscriber_for(settings: Settings | None = None) -> ResultsSubscriber:
    """A new, not yet connected subscriber for ``settings.backend`` (local: ``settings.home``)."""
    settings = settings or Settings.from_env()
    return TRANSPORTS[settings.backend](settings)


__all__ = ["MQTT_ENDPOINT_ENV", "TRANSPORTS", "local_mqtt_endpoint", "subscriber_for"]
