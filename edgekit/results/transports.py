"""Which `ResultsSubscriber` a backend uses: one small factory per backend, chosen by name.

- ``local``: paho-mqtt to the loopback broker of `edgekit local up`
  (``EDGEKIT_MQTT_ENDPOINT`` if set, else the home's ``endpoints.json``).
- ``aws``: awscrt over SigV4 websockets to the account's IoT Core data endpoint.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from edgekit.results.subscriber import ResultsSubscriber
from edgekit.settings import Settings

MQTT_ENDPOINT_ENV = "EDGEKIT_MQTT_ENDPOINT"
Home = str | os.PathLike[str] | None
Factory = Callable[[Settings, Home], ResultsSubscriber]


def local_mqtt_endpoint(settings: Settings, home: Home = None) -> str:
    """``host:port`` of the local broker: an explicit home, else the env variable, else the home.

    The device runtime hands the same variable to components, so a notebook
    started from `edgekit local env` and a device agree on the broker.
    """
    from edgekit.local.endpoints import LocalEndpoints

    if home is None:
        env = os.environ.get(MQTT_ENDPOINT_ENV, "").strip()
        if env:
            return env
        home = settings.home
    return LocalEndpoints.load(home).mqtt


def _local(settings: Settings, home: Home) -> ResultsSubscriber:
    from edgekit.results.local import PahoSubscriber

    return PahoSubscriber(local_mqtt_endpoint(settings, home))


def _aws(settings: Settings, home: Home) -> ResultsSubscriber:
    from edgekit import clients
    from edgekit.results.aws import IotCoreSubscriber, credentials_provider, iot_data_endpoint

    endpoint = iot_data_endpoint(clients.client("iot", settings, home=home))
    provider = credentials_provider(clients.session(settings, home=home))
    return IotCoreSubscriber(endpoint, settings.region, provider)


TRANSPORTS: dict[str, Factory] = {"local": _local, "aws": _aws}


def subscriber_for(settings: Settings | None = None, *, home: Home = None) -> ResultsSubscriber:
    """A new, not yet connected subscriber for ``settings.backend``."""
    settings = settings or Settings.from_env()
    return TRANSPORTS[settings.backend](settings, Path(home) if home is not None else None)


__all__ = ["MQTT_ENDPOINT_ENV", "TRANSPORTS", "local_mqtt_endpoint", "subscriber_for"]
