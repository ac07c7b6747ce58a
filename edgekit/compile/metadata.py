"""The ``edgekit.compile`` record stored inside compiled ONNX files.

A compiled file carries two metadata entries: the source model's edgekit
model info (preprocessing, labels, threshold; copied unchanged) and this
record saying how it was compiled. Together they make a bare ``model.onnx``
self-describing for ``predict``, ``package`` and the device.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.errors import ModelError
from edgekit.files import sha256_file, write_bytes_atomic
from edgekit.model.metadata import read_model_info, write_model_info

if TYPE_CHECKING:
    import onnx

COMPILE_KEY = "edgekit.compile"


def _load(model: str | os.PathLike[str] | onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model, "<model in memory>"
    path = Path(model)
    try:
        return onnx.load(str(path), load_external_data=False), str(path)
    except FileNotFoundError:
        raise ModelError(f"{path}: model file not found") from None
    except Exception as exc:  # onnx raises DecodeError / ValueError / others
        raise ModelError(f"{path}: not a readable ONNX model ({exc})") from None


def read_compile_info(model: str | os.PathLike[str] | onnx.ModelProto) -> dict[str, Any] | None:
    """The compile record of a model, or None for a model that was never compiled."""
    proto, where = _load(model)
    for prop in proto.metadata_props:
        if prop.key == COMPILE_KEY:
            try:
                value = json.loads(prop.value)
            except json.JSONDecodeError as exc:
                raise ModelError(
                    f"{where}: metadata '{COMPILE_KEY}' is not valid JSON ({exc}); "
                    "recompile the model with 'edgekit compile'"
                ) from None
            if not isinstance(value, dict):
                raise ModelError(f"{where}: metadata '{COMPILE_KEY}' must be a JSON object")
            return value
    return None


def set_compile_info(proto: onnx.ModelProto, info: dict[str, Any]) -> None:
    """Replace the compile record of ``proto`` in place."""
    keep = [p for p in proto.metadata_props if p.key != COMPILE_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    entry = proto.metadata_props.add()
    entry.key = COMPILE_KEY
    entry.value = json.dumps(info, sort_keys=True)


def stamp_compiled_model(
    compiled: Path,
    source: Path,
    compile_info: dict[str, Any],
    *,
    source_sha256: str | None = None,
) -> None:
    """Copy the source's edgekit model info into ``compiled`` and add the compile record.

    The copied info's ``source_sha256`` becomes the hash of ``source``: the model
    this file was made from.
    """
    info = read_model_info(source)
    info = info.replace(source_sha256=source_sha256 or sha256_file(source))
    proto, _ = _load(compiled)
    write_model_info(proto, info)
    set_compile_info(proto, compile_info)
    write_bytes_atomic(compiled, proto.SerializeToString())
