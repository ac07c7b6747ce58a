"""Collected result messages as a small table: rows, per-device summary, JSON Lines files.

pandas is optional (the ``notebook`` extra, which `make demo` installs):
`ResultsTable.to_dataframe()` uses it, and everything else (summary, plots, files) works
on plain lists of dicts.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from edgekit.errors import ConfigurationError, DataError, InvalidMessageError
from edgekit.schemas import validate_result

ROW_COLUMNS: tuple[str, ...] = (
    "timestamp",
    "thing_name",
    "image_name",
    "model_name",
    "model_version",
    "defect",
    "detections",
    "max_score",
    "preprocess_ms",
    "inference_ms",
    "total_ms",
    "message_id",
    "sequence",
)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), interpolated linearly as numpy does; NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(float(v) for v in values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class InvalidMessage:
    """A message that was received but not kept, and why."""

    topic: str
    payload: bytes
    reason: str
    field: str | None = None
    received_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "payload": self.payload.decode("utf-8", "replace"),
            "reason": self.reason,
            "field": self.field,
            "received_at": self.received_at,
        }


class Table:
    """A plain table (column names + rows) that prints as text and renders as HTML in Jupyter."""

    def __init__(self, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
        self.columns = tuple(columns)
        self.rows = [dict(row) for row in rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.rows[index]

    def to_rows(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self.rows]

    @staticmethod
    def _cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return (
                "-" if math.isnan(value) else f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"
            )
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value)
        return str(value)

    def format(self) -> str:
        cells = [[self._cell(row.get(c)) for c in self.columns] for row in self.rows]
        widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(self.columns)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()

    def __repr__(self) -> str:
        return f"Table({len(self.rows)} rows)\n{self.format()}"

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>"
            + "".join(f"<td>{escape(self._cell(row.get(c)))}</td>" for c in self.columns)
            + "</tr>"
            for row in self.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def flat_row(result: Mapping[str, Any]) -> dict[str, Any]:
    """One result message as a flat row (the columns of `ROW_COLUMNS`)."""
    model = result.get("model") or {}
    latency = result.get("latency_ms") or {}
    detections = result.get("detections") or []
    scores = [float(d.get("score", 0.0)) for d in detections]
    return {
        "timestamp": result.get("timestamp"),
        "thing_name": result.get("thing_name"),
        "image_name": result.get("image_name"),
        "model_name": model.get("name"),
        "model_version": model.get("version"),
        "defect": result.get("defect"),
        "detections": len(detections),
        "max_score": max(scores) if scores else None,
        "preprocess_ms": latency.get("preprocess"),
        "inference_ms": latency.get("inference"),
        "total_ms": latency.get("total"),
        "message_id": result.get("message_id"),
        "sequence": result.get("sequence"),
    }


SUMMARY_COLUMNS: tuple[str, ...] = (
    "thing_name",
    "results",
    "defects",
    "defect_rate",
    "p50_total_ms",
    "p95_total_ms",
    "model_versions",
)


class ResultsTable:
    """The result messages a collection kept (in arrival order), plus what it had to drop.

    ``invalid`` holds the messages that failed validation (with the reason),
    ``duplicates`` counts repeats of a ``message_id`` that were dropped.
    """

    def __init__(
        self,
        results: Iterable[Mapping[str, Any]] = (),
        *,
        invalid: Iterable[InvalidMessage] = (),
        duplicates: int = 0,
        timed_out: bool = False,
    ) -> None:
        self.results: list[dict[str, Any]] = [dict(r) for r in results]
        self.invalid: list[InvalidMessage] = list(invalid)
        self.duplicates = duplicates
        #: True when a collection stopped at its timeout before reaching max_messages.
        self.timed_out = timed_out

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.results)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.results[index]

    def __repr__(self) -> str:
        return (
            f"ResultsTable({len(self.results)} results, {len(self.invalid)} invalid, "
            f"{self.duplicates} duplicates)"
        )

    def _repr_html_(self) -> str:
        return f"<p>{escape(repr(self))}</p>{self.summary()._repr_html_()}"

    @property
    def things(self) -> list[str]:
        """Device names in order of first appearance."""
        return list(dict.fromkeys(str(r.get("thing_name")) for r in self.results))

    def for_thing(self, thing_name: str) -> ResultsTable:
        return ResultsTable(r for r in self.results if r.get("thing_name") == thing_name)

    def to_rows(self) -> list[dict[str, Any]]:
        """One flat dict per result (see `ROW_COLUMNS`), ready for csv or a DataFrame."""
        return [flat_row(r) for r in self.results]

    def to_dataframe(self) -> Any:
        """A pandas DataFrame of `to_rows()` with a UTC ``timestamp`` column (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ConfigurationError(
                "to_dataframe() needs pandas, part of the notebook extra (`make demo` installs "
                'it; `pip install -e ".[notebook]"` in a checkout, `pip install '
                '"edgekit-inspection[notebook]"` otherwise, or just `pip install pandas`); '
                "or use to_rows() / summary()"
            ) from exc
        frame = pd.DataFrame(self.to_rows(), columns=list(ROW_COLUMNS))
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        return frame

    def summary(self) -> Table:
        """Per device: result count, defects, defect rate, p50/p95 total latency, model versions."""
        rows = []
        for thing in self.things:
            mine = [r for r in self.results if str(r.get("thing_name")) == thing]
            totals = [float(r["latency_ms"]["total"]) for r in mine if r.get("latency_ms")]
            defects = sum(1 for r in mine if r.get("defect"))
            versions = dict.fromkeys(
                f"{r['model']['name']}@{r['model']['version']}" for r in mine if r.get("model")
            )
            rows.append(
                {
                    "thing_name": thing,
                    "results": len(mine),
                    "defects": defects,
                    "defect_rate": defects / len(mine),
                    "p50_total_ms": percentile(totals, 50),
                    "p95_total_ms": percentile(totals, 95),
                    "model_versions": sorted(versions),
                }
            )
        return Table(SUMMARY_COLUMNS, rows)

    def save_jsonl(self, path: str | os.PathLike[str]) -> Path:
        """Write one result per line (invalid messages are not written); returns the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for result in self.results:
                f.write(json.dumps(result, separators=(",", ":"), allow_nan=False) + "\n")
        os.replace(tmp, target)
        return target

    @classmethod
    def load_jsonl(cls, path: str | os.PathLike[str], *, validate: bool = True) -> ResultsTable:
        """Read a file `save_jsonl` wrote; DataError names the file and line of a bad record."""
        source = Path(path)
        try:
            lines = source.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise DataError(f"cannot read results file: {exc.strerror}", path=str(source)) from exc
        results = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if validate:
                    record = validate_result(record)
                elif not isinstance(record, dict):
                    raise ValueError(f"expected a JSON object, got {type(record).__name__}")
            except (ValueError, InvalidMessageError) as exc:
                raise DataError(str(exc), path=str(source), line=number) from exc
            results.append(record)
        return cls(results)


__all__ = [
    "ROW_COLUMNS",
    "SUMMARY_COLUMNS",
    "InvalidMessage",
    "ResultsTable",
    "Table",
    "flat_row",
    "percentile",
]
