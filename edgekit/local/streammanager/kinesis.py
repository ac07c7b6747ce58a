"""Kinesis Data Streams export: a stream's messages as records of a Kinesis stream.

Each batch of up to ``batchSize`` messages (in sequence order, from
``startSequenceNumber`` or where the export stopped) becomes one PutRecords call; each
record's data is the message payload and its partition key a random UUID. With
``batchIntervalMillis``, a batch smaller than ``batchSize`` waits until that long after
the previous export. A call that fails, or records Kinesis did not take, are tried
again later (the export does not move past them).
"""

from __future__ import annotations

import uuid
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from edgekit.local.streammanager.definitions import KinesisConfig

__all__ = ["put_batch", "ready"]


def ready(config: KinesisConfig, available: int, last_export_ms: int, now_ms: int) -> bool:
    """Whether a batch of ``available`` messages goes now (the batch interval allowing)."""
    if available <= 0:
        return False
    if config.batch_interval_millis is None or available >= config.batch_size:
        return True
    return now_ms - last_export_ms >= config.batch_interval_millis


def put_batch(
    client: Any, config: KinesisConfig, messages: list[dict[str, Any]]
) -> tuple[int, str]:
    """PutRecords of ``messages``; (how many of the first ones Kinesis took, error text)."""
    records = [{"Data": m["payload"], "PartitionKey": uuid.uuid4().hex} for m in messages]
    try:
        response = client.put_records(StreamName=config.stream_name, Records=records)
    except (ClientError, BotoCoreError) as exc:
        return 0, f"PutRecords to Kinesis stream {config.stream_name} failed: {exc}"
    results = response.get("Records") or []
    for i, result in enumerate(results):
        if result.get("ErrorCode"):
            return i, (
                f"Kinesis stream {config.stream_name} refused record {i} of the batch: "
                f"{result.get('ErrorCode')}: {result.get('ErrorMessage', '')}"
            )
    return len(messages), ""
