"""Which `ResultsSubscriber` a backend uses: one small factory per backend, chosen by name.

- ``local``: paho-mqtt to the loopback broker of `edgekit local up`
  (``EDGEKIT_MQTT_ENDPOINT`` if set, else ``endpoints.json`` of ``settings.home``).
- ``aws``: awscrt over SigV4 websockets to the account's IoT Core data endpoint.

The transport modules load on first use: paho and awscrt are only needed by the
backend that uses them.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from edgekit import clients
from edgekit.local.endpoints import LocalEndpoints
from edgekit.results.subscriber import ResultsSubscriber
from edgekit.settings import Settings

MQTT_ENDPOINT_ENV = "EDGEKIT_MQTT_ENDPOINT"
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


def _aws(settings: Settings) -> ResultsSubscriber:
    from edgekit.results.aws import IotCoreSubscriber, credentials_provider, iot_data_endpoint

    endpoint = iot_data_endpoint(clients.client("iot", settings))
    provider = credentials_provider(clients.session(settings))
    return IotCoreSubscriber(endpoint, settings.region, provider)


TRANSPORTS: dict[str, Factory] = {"local": _local, "aws": _aws}


def subscriber_for(settings: Settings | None = None) -> ResultsSubscriber:
    """A new, not yet connected subscriber for ``settings.backend`` (local: ``settings.home``)."""
    settings = settings or Settings.from_env()
    return TRANSPORTS[settings.backend](settings)


__all__ = ["MQTT_ENDPOINT_ENV", "TRANSPORTS", "local_mqtt_endpoint", "subscriber_for"]
