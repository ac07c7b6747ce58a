"""The inference app's ``CaptureBand``: the one rule for what a valid band is.

``CaptureBand`` ``[low, high]`` sends an image to CaptureData when its best score lies
in the band (``0 <= low <= high <= 1``); an empty band turns capture off. The notebook
side (``edgekit.deploy.create.inference_configuration``) checks a band before it
deploys it, and the device side (``edgekit.edge.config``) when it reads its
configuration: both call :func:`capture_band`, so they accept the same values.

Imports nothing of edgekit but :mod:`edgekit.errors`.
"""

from __future__ import annotations

import math
from typing import Any

from edgekit.errors import ConfigurationError


def _bound(value: Any, what: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigurationError(f"{what}={value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigurationError(f"{what}={value!r} must be a finite number in [0, 1]")
    return float(value)


def capture_band(value: Any, *, what: str = "CaptureBand") -> tuple[float, float] | None:
    """``value`` as ``(low, high)``, or None for "capture off" (``[]``, ``()``, ``""`` or
    None); ConfigurationError naming ``what`` for anything else but two numbers (or
    numeric strings, as component configuration may carry) with 0 <= low <= high <= 1."""
    if value is None or (isinstance(value, list | tuple | str) and len(value) == 0):
        return None
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ConfigurationError(
            f"{what}={value!r} must be [low, high] (e.g. [0.2, 0.5]), or [] to turn capture off"
        )
    low = _bound(value[0], f"{what}[0]")
    high = _bound(value[1], f"{what}[1]")
    if not 0.0 <= low <= high <= 1.0:
        raise ConfigurationError(
            f"{what}={value!r} needs 0 <= low <= high <= 1 (e.g. [0.2, 0.5]), or [] to turn "
            "capture off"
        )
    return (low, high)
