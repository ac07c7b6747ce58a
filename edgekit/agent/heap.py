"""Give the C heap's free pages back to the operating system (glibc ``malloc_trim``).

glibc keeps what C code frees in its heaps for reuse, and returns it to the system only
from the top of the main heap. In a process that lives as long as the device, what was
freed after a peak stays resident: ONNX Runtime's session set-up (the parsed model and
the graph before optimization, some 10 MB of the model agent for the shipped model),
decoded images, gRPC messages. `HeapTrimmer.tick` (called from the agent's and the
inference app's main loops) calls ``malloc_trim(0)`` at most once a ``period``; it takes
well under a millisecond and leaves every block in use where it is.

Without glibc (musl, macOS) it does nothing and `trim` returns False.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_PERIOD_S = 10.0
_UNSET: Any = object()
_malloc_trim: Any = _UNSET


def _function() -> Any:
    """glibc's malloc_trim, or None where there is none."""
    global _malloc_trim
    if _malloc_trim is _UNSET:
        _malloc_trim = None
        name = ctypes.util.find_library("c")
        if name:
            try:
                function = ctypes.CDLL(name).malloc_trim
            except (OSError, AttributeError) as exc:  # not glibc: nothing to trim
                log.debug("no malloc_trim in %s (%s); heap trimming is off", name, exc)
            else:
                function.argtypes = [ctypes.c_size_t]
                function.restype = ctypes.c_int
                _malloc_trim = function
    return _malloc_trim


def trim() -> bool:
    """Return the heaps' free pages to the system now; False where that is not possible."""
    function = _function()
    if function is None:
        return False
    function(0)
    return True


class HeapTrimmer:
    """Calls `trim` from a main loop at most once a ``period`` seconds (0: never)."""

    def __init__(self, period: float = DEFAULT_PERIOD_S) -> None:
        self.period = period
        self._next = time.monotonic() + period

    def tick(self) -> bool:
        """Trim if a period has passed since the last one; True when it trimmed."""
        if self.period <= 0 or time.monotonic() < self._next:
            return False
        self._next = time.monotonic() + self.period
        return trim()
