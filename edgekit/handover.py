"""The hand-over files the notebooks leave for each other in a run's ``output_dir``.

Notebook 01 writes ``provisioned.json``, 02 ``model_package.json``, 03
``deployment.json`` and 04 ``results.jsonl``. A later notebook reads them when they are
there; they are conveniences, the state that counts is in AWS (or the local endpoints).

Owns: the file names, reading one (a broken file is an error naming it) and writing one
atomically. Must not import anything of edgekit but `errors`, `files` and `settings`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgekit.errors import DataError
from edgekit.files import write_text_atomic
from edgekit.settings import Settings

PathLike = str | os.PathLike[str]

#: Hand-over files in a run's ``output_dir``, one per notebook.
PROVISIONED = "provisioned.json"
MODEL_PACKAGE = "model_package.json"
DEPLOYMENT = "deployment.json"
RESULTS = "results.jsonl"


def read_handover(output_dir: PathLike, name: str) -> dict[str, Any] | None:
    """``output_dir/name`` as a dict, or None if the file is not there.

    A file that exists but is not a JSON object raises DataError naming it: a
    half-written hand-over should be fixed (or deleted), not silently ignored.
    """
    path = Path(output_dir).expanduser() / name
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(
            f"not valid JSON ({exc.msg}, line {exc.lineno}); delete it and run the notebook "
            "that writes it again",
            path=str(path),
        ) from exc
    if not isinstance(data, dict):
        raise DataError(
            "expected a JSON object; delete it and run its notebook again", path=str(path)
        )
    return data


def write_handover(output_dir: PathLike, name: str, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as indented JSON to ``output_dir/name`` (atomically); returns the path.

    Values JSON does not know (paths, timestamps) are written as their ``str``.
    """
    text = json.dumps(dict(data), indent=2, default=str) + "\n"
    return write_text_atomic(Path(output_dir).expanduser() / name, text, fsync=False)


def same_backend(data: Mapping[str, Any] | None, settings: Settings) -> bool:
    """True when a hand-over was written for ``settings.backend`` (or names no backend)."""
    return data is not None and data.get("backend", settings.backend) == settings.backend
