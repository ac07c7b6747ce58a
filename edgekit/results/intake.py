"""What happens to each received message: parse, validate, drop repeats.

Devices deliver at least once (their on-disk spool re-sends until the broker
acknowledges), so the same ``message_id`` can arrive twice; it is kept once.
A message that fails validation is kept aside with the reason, never fatal: one
misbehaving device must not stop a notebook from collecting the others.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from edgekit.results.subscriber import Message
from edgekit.results.table import InvalidMessage, ResultsTable
from edgekit.schemas import RESULT, InvalidMessageError, parse_message, validate_message

#: How many message ids a long-running collector remembers for de-duplication.
DEDUP_WINDOW = 100_000


class Intake:
    """Turns raw messages into accepted results; counts invalid and duplicate ones.

    ``schema`` is "result" (default) or "health" for the health topic.
    """

    def __init__(
        self,
        *,
        validate: bool = True,
        schema: str = RESULT,
        keep_results: bool = True,
        max_invalid: int | None = None,
        dedup_window: int = DEDUP_WINDOW,
    ) -> None:
        self.validate = validate
        self.schema = schema
        self.keep_results = keep_results
        self.max_invalid = max_invalid
        self.dedup_window = dedup_window
        self.results: list[dict[str, Any]] = []
        self.invalid: list[InvalidMessage] = []  # the newest max_invalid of them
        self.invalid_count = 0
        self.duplicates = 0
        self._seen: OrderedDict[str, None] = OrderedDict()

    def accept(self, message: Message) -> dict[str, Any] | None:
        """The result if ``message`` is new and valid (it is also kept), else None."""
        try:
            if self.validate:
                result = validate_message(self.schema, message.payload)
            else:
                result = parse_message(message.payload, self.schema)
        except InvalidMessageError as exc:
            self.invalid.append(
                InvalidMessage(
                    topic=message.topic,
                    payload=message.payload,
                    reason=str(exc),
                    field=exc.field,
                    received_at=message.received_at,
                )
            )
            self.invalid_count += 1
            if self.max_invalid is not None and len(self.invalid) > self.max_invalid:
                del self.invalid[0]
            return None
        message_id = result.get("message_id")
        if isinstance(message_id, str):
            if message_id in self._seen:
                self.duplicates += 1
                return None
            self._seen[message_id] = None
            if len(self._seen) > self.dedup_window:
                self._seen.popitem(last=False)
        if self.keep_results:
            self.results.append(result)
        return result

    def table(self) -> ResultsTable:
        return ResultsTable(self.results, invalid=self.invalid, duplicates=self.duplicates)


__all__ = ["DEDUP_WINDOW", "Intake"]
