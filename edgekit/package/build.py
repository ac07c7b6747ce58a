"""Build a signed, versioned model package (.tar.gz).

A package is the model file(s), ``manifest.json`` and ``manifest.sig``. The
signature is the Ed25519 signature over the exact bytes of
``manifest.json``, stored as standard base64 text followed by a newline.
Base64 keeps the file printable, so it can be pasted into a message or a
recipe; :func:`edgekit.package.verify.verify_package` also accepts a raw
64-byte signature file.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.compile.metadata import read_compile_info
from edgekit.errors import ModelError, PackageError
from edgekit.files import sha256_file
from edgekit.model.metadata import read_model_info
from edgekit.package.archive import write_archive
from edgekit.package.keys import PrivateKeyLike, key_id, load_private_key
from edgekit.package.manifest import (
    MANIFEST_NAME,
    RESERVED_NAMES,
    SIGNATURE_NAME,
    FileEntry,
    Manifest,
    validate_name,
    validate_version,
)

COMPILE_REPORT_NAME = "compile_report.json"
METRICS_NAME = "metrics.json"

# ONNX TensorProto element types -> numpy dtype names.
_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 10: "float16"}


@dataclass(frozen=True)
class BuiltPackage:
    path: Path
    manifest: Manifest
    sha256: str
    """SHA-256 of the archive itself, e.g. for an S3 object check or a registry entry."""


def utc_now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def collect_model_files(model: Path) -> tuple[Path, dict[str, Path], str]:
    """(root, {archive name: file}, model file name) for a model folder or a single file.

    Hidden files and folders (``.ipynb_checkpoints``, ``.DS_Store``) are left out;
    links are refused, since a package must hold the bytes it describes.
    """
    if not model.exists():
        raise PackageError(f"{model}: model file or folder not found")
    if model.is_file():
        if model.suffix != ".onnx":
            raise PackageError(f"{model}: expected an .onnx model file or a compiled model folder")
        return model.parent, {model.name: model}, model.name
    files: dict[str, Path] = {}
    for path in sorted(model.rglob("*")):
        rel = path.relative_to(model)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_symlink():
            raise PackageError(f"{path}: is a symbolic link; copy the file into {model} instead")
        if path.is_dir():
            continue
        if not path.is_file():
            raise PackageError(f"{path}: not a regular file")
        name = rel.as_posix()
        if name in RESERVED_NAMES:
            raise PackageError(
                f"{path}: {model} already contains {name}, so it looks like an unpacked "
                "package; package the compiled model folder instead"
            )
        files[name] = path
    onnx_files = [n for n in files if n.endswith(".onnx")]
    if len(onnx_files) != 1:
        found = ", ".join(onnx_files) or "none"
        raise PackageError(
            f"{model}: a package holds exactly one .onnx model, found {found}; "
            "pass the model file itself or a folder with one model"
        )
    return model, files, onnx_files[0]


def _as_dict(value: Any) -> Any:
    if hasattr(value, "to_json"):  # Preprocessing: its own JSON form (no default-only fields)
        return value.to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


def _graph_input(model_path: Path, input_name: str | None) -> dict[str, Any]:
    import onnx

    try:
        proto = onnx.load(str(model_path), load_external_data=False)
    except Exception as exc:
        raise ModelError(f"{model_path}: not a readable ONNX model ({exc})") from None
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    if not inputs:
        raise ModelError(f"{model_path}: the graph has no input")
    chosen = next((i for i in inputs if i.name == input_name), inputs[0])
    tensor = chosen.type.tensor_type
    shape: list[int | str | None] = []
    for dim in tensor.shape.dim:
        if dim.HasField("dim_value"):
            shape.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            shape.append(dim.dim_param)
        else:
            shape.append(None)
    return {
        "name": chosen.name,
        "shape": shape,
        "dtype": _ONNX_DTYPES.get(tensor.elem_type, str(tensor.elem_type)),
    }


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackageError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise PackageError(f"{path}: expected a JSON object")
    return value


def _metrics(root: Path, files: dict[str, Path]) -> dict[str, Any]:
    """Metrics from metrics.json (evaluation) and compile_report.json (parity), if present."""
    metrics: dict[str, Any] = {}
    if METRICS_NAME in files:
        metrics.update(_read_json(files[METRICS_NAME]) or {})
    report = _read_json(files[COMPILE_REPORT_NAME]) if COMPILE_REPORT_NAME in files else None
    if report is not None:
        parity = report.get("parity") or {}
        if parity and not parity.get("passed", True) and not parity.get("forced", False):
            raise PackageError(
                f"{files[COMPILE_REPORT_NAME]}: the compiled model failed its parity check "
                f"(AP50 {parity.get('source_ap50')} -> {parity.get('compiled_ap50')}); "
                "recompile it, or recompile with --force to accept the loss"
            )
        if parity:
            metrics["parity"] = parity
            if "ap50" not in metrics and parity.get("compiled_ap50") is not None:
                metrics["ap50"] = parity["compiled_ap50"]
        for key in ("size_bytes", "times_s"):
            if key in report:
                metrics.setdefault("compile", {})[key] = report[key]
    return metrics


def build_manifest(
    model: str | os.PathLike[str],
    *,
    name: str,
    version: str,
    created_at: str | None = None,
    signing_key_id: str | None = None,
) -> tuple[Manifest, dict[str, Path]]:
    """The manifest for a model folder or file, and the files it lists."""
    validate_name(name)
    validate_version(version)
    root, files, model_file = collect_model_files(Path(model))
    model_path = files[model_file]
    info = read_model_info(model_path)
    compile_info = read_compile_info(model_path)
    preprocessing = _as_dict(info.preprocessing)
    input_name = preprocessing.get("input_name") if isinstance(preprocessing, dict) else None
    runtime = (compile_info or {}).get("runtime", "onnxruntime")
    labels = {str(k): str(v) for k, v in dict(info.labels).items()}
    source_hash = (compile_info or {}).get("source_sha256") or info.source_sha256
    if source_hash is None:
        source_hash = sha256_file(model_path)
    manifest = Manifest(
        name=name,
        version=version,
        created_at=created_at or utc_now_iso(),
        runtime=runtime,
        model_file=model_file,
        input=_graph_input(model_path, input_name),
        preprocessing=preprocessing,
        labels=labels,
        score_threshold=info.score_threshold,
        postprocess=_as_dict(info.postprocess),
        files={
            n: FileEntry(sha256=sha256_file(p), size=p.stat().st_size)
            for n, p in sorted(files.items())
        },
        source_model_sha256=source_hash,
        compile=compile_info,
        metrics=_metrics(root, files),
        signing_key_id=signing_key_id,
    )
    return manifest, files


def sign_manifest(manifest_bytes: bytes, key: PrivateKeyLike) -> bytes:
    """The content of manifest.sig: base64 of the Ed25519 signature, then a newline."""
    signature = load_private_key(key).sign(manifest_bytes)
    return base64.b64encode(signature) + b"\n"


def build_package(
    model: str | os.PathLike[str],
    *,
    name: str,
    version: str,
    key: PrivateKeyLike,
    out: str | os.PathLike[str],
    created_at: str | None = None,
) -> BuiltPackage:
    """Write a signed package for ``model`` (a compiled model folder or an .onnx file).

    With the same inputs and ``created_at`` the archive is byte-for-byte identical
    (Ed25519 signatures are deterministic).
    """
    private_key = load_private_key(key)
    manifest, files = build_manifest(
        model,
        name=name,
        version=version,
        created_at=created_at,
        signing_key_id=key_id(private_key.public_key()),
    )
    manifest_bytes = manifest.to_bytes()
    signature = sign_manifest(manifest_bytes, private_key)
    out_path = Path(out)
    # Manifest and signature first: a reader can check them before the large files.
    entries: list[tuple[str, bytes | Path]] = [
        (MANIFEST_NAME, manifest_bytes),
        (SIGNATURE_NAME, signature),
    ]
    entries += [(n, files[n]) for n in sorted(files)]
    write_archive(out_path, entries)
    return BuiltPackage(path=out_path, manifest=manifest, sha256=sha256_file(out_path))
