"""Latency measurement shared by the notebooks and ``benchmarks/`` scripts.

Numbers are wall-clock per call after a warm-up, reported as percentiles: the
tail (p95) matters on an edge device as much as the median.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.model.predict import Predictor


@dataclass(frozen=True)
class LatencyStats:
    name: str
    threads: int | None
    iterations: int
    p50_ms: float
    p95_ms: float
    mean_ms: float

    @property
    def images_per_s(self) -> float:
        return 1000.0 / self.mean_ms if self.mean_ms > 0 else float("inf")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "images_per_s": round(self.images_per_s, 1)}


def measure(
    fn: Callable[[], Any],
    *,
    name: str,
    threads: int | None = None,
    iterations: int = 50,
    warmup: int = 5,
    max_seconds: float | None = 30.0,
) -> LatencyStats:
    """Time ``fn()``; stop early after ``max_seconds`` so slow variants stay affordable."""
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
        if deadline is not None and time.monotonic() > deadline and len(samples) >= 5:
            break
    arr = np.asarray(samples)
    return LatencyStats(
        name=name,
        threads=threads,
        iterations=len(samples),
        p50_ms=float(np.percentile(arr, 50)),
        p95_ms=float(np.percentile(arr, 95)),
        mean_ms=float(arr.mean()),
    )


def onnx_latency(
    model: str | Path,
    image: np.ndarray,
    *,
    name: str,
    threads: int = 1,
    iterations: int = 50,
) -> LatencyStats:
    """Preprocess + inference + decode of one original-size image with ONNX Runtime."""

    predictor = Predictor(model, threads=threads)
    return measure(
        lambda: predictor.predict(image), name=name, threads=threads, iterations=iterations
    )


def format_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """A GitHub-flavoured Markdown table: ``columns`` are (key, header) pairs."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3f}" if abs(value) < 1 else f"{value:.1f}"
        return "" if value is None else str(value)

    head = "| " + " | ".join(h for _, h in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(cell(r.get(k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])
