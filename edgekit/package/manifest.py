"""The manifest of a model package: what the device needs to run the model, and hashes.

``manifest.json`` is written once, as canonical JSON (sorted keys, two-space
indent, UTF-8, trailing newline), and signed as those exact bytes. Readers
never re-serialize before checking the signature, so the canonical form
only matters for reproducible archives, not for verification.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from edgekit.errors import PackageError

FORMAT = "edgekit-model-package/1"
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
RESERVED_NAMES = frozenset({MANIFEST_NAME, SIGNATURE_NAME})

# The regular expression published with Semantic Versioning 2.0.0.
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def validate_version(version: str) -> str:
    if not isinstance(version, str) or not SEMVER.match(version):
        raise PackageError(
            f"version {version!r} is not a semantic version; use MAJOR.MINOR.PATCH such as "
            "1.0.0 (optionally -prerelease or +build)"
        )
    return version


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise PackageError(
            f"name {name!r} is not a valid package name; use 1-128 letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """Everything a device reads before it loads a model package."""

    name: str
    version: str
    created_at: str
    runtime: str
    model_file: str
    input: dict[str, Any]
    preprocessing: dict[str, Any]
    labels: dict[str, str]
    score_threshold: float | None
    files: dict[str, FileEntry]
    source_model_sha256: str | None = None
    compile: dict[str, Any] | None = None
    postprocess: dict[str, Any] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    signing_key_id: str | None = None
    format: str = FORMAT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_bytes(self) -> bytes:
        """Canonical JSON bytes: the bytes that are signed and stored as manifest.json."""
        text = json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=False)
        return (text + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, *, where: str = MANIFEST_NAME) -> Manifest:
        try:
            raw = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PackageError(f"{where}: not valid UTF-8 JSON ({exc})") from None
        return cls.from_dict(raw, where=where)

    @classmethod
    def from_dict(cls, raw: Any, *, where: str = MANIFEST_NAME) -> Manifest:
        if not isinstance(raw, dict):
            raise PackageError(f"{where}: expected a JSON object at the top level")

        def need(key: str, kind: type | tuple[type, ...]) -> Any:
            if key not in raw:
                raise PackageError(f"{where}: field '{key}' is missing")
            value = raw[key]
            if not isinstance(value, kind):
                raise PackageError(
                    f"{where}: field '{key}' has type {type(value).__name__}, "
                    f"expected {_kind_name(kind)}"
                )
            return value

        fmt = raw.get("format", FORMAT)
        if fmt != FORMAT:
            raise PackageError(
                f"{where}: field 'format' is {fmt!r}; this edgekit reads {FORMAT!r}. "
                "Upgrade edgekit on this machine or rebuild the package."
            )
        files_raw = need("files", dict)
        files: dict[str, FileEntry] = {}
        for name, entry in files_raw.items():
            if (
                not isinstance(entry, dict)
                or not isinstance(entry.get("sha256"), str)
                or not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])
                or not isinstance(entry.get("size"), int)
            ):
                raise PackageError(
                    f"{where}: field 'files.{name}' must be {{'sha256': 64 hex digits, "
                    "'size': integer}"
                )
            files[name] = FileEntry(sha256=entry["sha256"], size=entry["size"])
        manifest = cls(
            name=validate_name(need("name", str)),
            version=validate_version(need("version", str)),
            created_at=need("created_at", str),
            runtime=need("runtime", str),
            model_file=need("model_file", str),
            input=need("input", dict),
            preprocessing=need("preprocessing", dict),
            labels={str(k): str(v) for k, v in need("labels", dict).items()},
            score_threshold=raw.get("score_threshold"),
            files=files,
            source_model_sha256=raw.get("source_model_sha256"),
            compile=raw.get("compile"),
            postprocess=raw.get("postprocess"),
            metrics=raw.get("metrics") or {},
            signing_key_id=raw.get("signing_key_id"),
            format=fmt,
        )
        if manifest.model_file not in manifest.files:
            raise PackageError(
                f"{where}: field 'model_file' names {manifest.model_file!r}, "
                "which is not listed in 'files'"
            )
        return manifest


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {dict: "object", str: "string", list: "array", int: "integer", float: "number"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)
