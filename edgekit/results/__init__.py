"""Results from the devices: subscribe to the results topic, collect, summarize, save.

>>> from edgekit.results import collect  # doctest: +SKIP
>>> table = collect(settings, max_messages=50, timeout=60)  # doctest: +SKIP
>>> table.summary()  # doctest: +SKIP

The backend picks the transport (paho to the local broker, or awscrt over SigV4
websockets to AWS IoT Core); the calls are the same.

Owns: ``subscriber`` (the transport protocol), ``local``/``aws`` (the two transports),
``transports`` (which one a backend uses), ``intake`` and ``table`` (validating and
tabulating messages), ``collect`` and ``live`` (gathering them). Must not import
``deploy``, ``provision``, ``workflow`` or ``viz``: they read results, not the reverse.
"""

from __future__ import annotations

from edgekit.results.collect import collect
from edgekit.results.intake import Intake
from edgekit.results.live import LiveCollector
from edgekit.results.subscriber import Message, MqttError, ResultsSubscriber
from edgekit.results.table import InvalidMessage, ResultsTable, Table, percentile
from edgekit.results.transports import subscriber_for

__all__ = [
    "Intake",
    "InvalidMessage",
    "LiveCollector",
    "Message",
    "MqttError",
    "ResultsSubscriber",
    "ResultsTable",
    "Table",
    "collect",
    "percentile",
    "subscriber_for",
]
