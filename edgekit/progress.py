"""Progress bars for long work.

tqdm.auto draws a widget in Jupyter and text in a terminal. Scheduled runs
(papermill, CI) set ``EDGEKIT_QUIET=1`` to keep logs free of bar redraws.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def quiet() -> bool:
    """True when progress bars should stay hidden."""
    return os.environ.get("EDGEKIT_QUIET", "").lower() in {"1", "true", "yes"}


def progress(
    iterable: Iterable[T] | None = None,
    *,
    total: float | None = None,
    desc: str | None = None,
    unit: str = "it",
    disable: bool | None = None,
    **kwargs: Any,
) -> tqdm:
    """A tqdm bar that honours ``EDGEKIT_QUIET``; use it as iterator or context manager."""
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        disable=quiet() if disable is None else disable,
        dynamic_ncols=True,
        **kwargs,
    )


def track(iterable: Iterable[T], *, desc: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar."""
    yield from progress(iterable, total=total, desc=desc)
