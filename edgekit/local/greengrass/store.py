"""Persistence and listing helpers of the local Greengrass control plane.

State is JSON files (``{"format": STATE_FORMAT, "data": ...}``) written atomically;
a collection that grows with every call (component versions) is a :class:`RecordDir`,
one file per record, so saving one record never rewrites the others. List* responses
are paged with opaque tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.local.greengrass.errors import field_error

STATE_FORMAT = 1

__all__ = ["STATE_FORMAT", "RecordDir", "atomic_write_json", "load_state", "paginate"]


def atomic_write_json(path: Path, data: Any, *, durable: bool = True) -> None:
    """Write JSON next to ``path`` and rename it into place (never a half-written file).

    ``durable`` also fsyncs, so the file survives a power loss, not just a crash.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_state(path: Path, default: Any) -> Any:
    if not path.exists():
        return default
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise EdgekitError(
            f"{path}: cannot read the control-plane state ({exc}); fix or remove the file "
            "(removing it forgets the components/deployments/devices it held)"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise EdgekitError(
            f"{path}: not an edgekit control-plane state file of format {STATE_FORMAT}; "
            "remove it or point --state-dir at another folder"
        )
    return data["data"]


class RecordDir:
    """A folder of JSON records, one file per key: ``put`` and ``delete`` touch one file.

    File names are a hash of the key, so no key (``..``, ``a/b``) can name a path of
    its own; each file holds ``{"format", "key", "data"}``.
    """

    def __init__(self, folder: Path, *, durable: bool = True) -> None:
        self.folder = folder
        self.durable = durable

    def _file(self, key: list[str]) -> Path:
        digest = hashlib.sha256(json.dumps(key).encode("utf-8")).hexdigest()[:40]
        return self.folder / f"{digest}.json"

    def put(self, key: list[str], data: Any) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            self._file(key),
            {"format": STATE_FORMAT, "key": key, "data": data},
            durable=self.durable,
        )

    def delete(self, key: list[str]) -> None:
        self._file(key).unlink(missing_ok=True)

    def load(self) -> list[tuple[list[str], Any]]:
        """Every ``(key, data)`` in the folder (none if it does not exist)."""
        if not self.folder.is_dir():
            return []
        records = []
        for path in sorted(self.folder.glob("*.json")):
            if path.name.startswith("."):
                continue  # a temporary file of an interrupted write
            try:
                with open(path, encoding="utf-8") as fh:
                    doc = json.load(fh)
            except (OSError, json.JSONDecodeError) as exc:
                raise EdgekitError(
                    f"{path}: cannot read the control-plane record ({exc}); fix or remove "
                    "the file (removing it forgets that one record)"
                ) from exc
            if (
                not isinstance(doc, dict)
                or doc.get("format") != STATE_FORMAT
                or not isinstance(doc.get("key"), list)
                or path != self._file(doc["key"])
            ):
                raise EdgekitError(
                    f"{path}: not an edgekit control-plane record of format {STATE_FORMAT}; "
                    f"remove it from {self.folder}"
                )
            records.append((doc["key"], doc["data"]))
        return records


def paginate(
    key: str, items: list[Any], next_token: str | None, max_results: int | None
) -> dict[str, Any]:
    """One page of a List* response: ``{key: page}`` plus ``nextToken`` when more remain.

    Tokens are opaque base64 offsets.
    """
    start = 0
    if next_token:
        try:
            start = int(base64.urlsafe_b64decode(next_token.encode()).decode().split(":", 1)[1])
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            raise field_error("nextToken", "is not a token this service returned") from exc
        if start < 0 or start > len(items):
            raise field_error("nextToken", "is out of range; start the listing again")
    end = start + (max_results or 50)
    out: dict[str, Any] = {key: items[start:end]}
    if end < len(items):
        out["nextToken"] = base64.urlsafe_b64encode(f"offset:{end}".encode()).decode()
    return out
