"""The messages and inputs of the inference app: result messages and the camera folder.

:func:`result_message` builds one ``result.schema.json`` message from an
inspection; :class:`ImageCycle` walks the camera folder in name order.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgekit.edge.inference import Inspection
from edgekit.errors import ConfigurationError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def utc_iso(ts: float) -> str:
    """``2026-11-23T10:00:00.123Z`` (milliseconds, truncated) for epoch seconds ``ts``."""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def result_message(
    inspection: Inspection,
    *,
    thing_name: str,
    model: Mapping[str, str],
    message_id: str,
    sequence: int,
    total_ms: float,
) -> dict[str, Any]:
    """The result message of DESIGN.md / result.schema.json for one inspection."""
    detections = []
    for det in inspection.detections:
        item = det.to_json()
        if item["box"][2] > 0 and item["box"][3] > 0:  # rounding may flatten a sliver
            detections.append(item)
    return {
        "timestamp": utc_iso(inspection.read_time),
        "thing_name": thing_name,
        "image_name": inspection.image_name,
        "model": {
            "name": model["name"],
            "version": model["version"],
            **({"package_sha256": model["package_sha256"]} if model.get("package_sha256") else {}),
        },
        "detections": detections,
        "defect": bool(detections),
        "latency_ms": {**inspection.latency_ms, "total": round(total_ms, 3)},
        "message_id": message_id,
        "sequence": sequence,
    }


class ImageCycle:
    """The images of a folder in name order, re-listed at the start of each round."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._names: list[Path] = []
        self._index = 0

    def _list(self) -> list[Path]:
        try:
            entries = sorted(p for p in self.folder.iterdir() if p.is_file())
        except OSError as exc:
            raise ConfigurationError(
                f"ImageDirectory {self.folder} cannot be read ({exc.strerror or exc}); set "
                "ImageDirectory to an existing folder of images"
            ) from exc
        return [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES]

    def next(self) -> Path | None:
        if self._index >= len(self._names):
            self._names = self._list()
            self._index = 0
            if not self._names:
                return None
        path = self._names[self._index]
        self._index += 1
        return path
