"""Persistence and listing helpers of the local Greengrass control plane.

State is JSON files (``{"format": STATE_FORMAT, "data": ...}``) written atomically;
List* responses are paged with opaque tokens.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.local.greengrass.errors import field_error

STATE_FORMAT = 1

__all__ = ["STATE_FORMAT", "atomic_write_json", "load_state", "paginate"]


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
