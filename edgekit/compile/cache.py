"""The compile cache: compiled files and their parity result, reused for identical inputs.

An entry is keyed by the sha256 of everything that changes a compile's output
or its parity verdict (:func:`cache_key` of the inputs
:func:`edgekit.compile.pipeline.compile_model` assembles): the source model's
sha256 and file name, the target and compiler class, every compile option
(calibration set identity included: the sha256 of its files' names and bytes),
the golden set identity, golden count and AP50 limit, and the edgekit, ONNX and
ONNX Runtime versions.

Where: ``$EDGEKIT_COMPILE_CACHE`` if set to a folder; off if set to ``0``,
``off``, ``false`` or ``no``; else ``$XDG_CACHE_HOME/edgekit/compile`` (default
``~/.cache/edgekit/compile``). One entry is a folder ``<key[:2]>/<key>/`` with
``entry.json`` (the record, with every file's sha256) and ``files/``. It is
built in a temporary folder beside it and renamed into place, so readers see a
whole entry or none. An entry is never trusted: every file is checked against
the sha256 its record holds, and an entry that fails (missing, unreadable,
edited) is removed and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from edgekit.compile.parity import ParityResult
from edgekit.data.groundtruth import load_dataset
from edgekit.files import sha256_file, write_bytes_atomic, write_json_atomic

CACHE_ENV = "EDGEKIT_COMPILE_CACHE"
OFF_VALUES = frozenset({"0", "off", "false", "no"})
SCHEMA = 1
ENTRY_NAME = "entry.json"
FILES_DIR = "files"
_PARITY_FIELDS = frozenset(f.name for f in fields(ParityResult))


class CompileCacheWarning(UserWarning):
    """The compile cache could not store an entry (compiling itself succeeded)."""


def default_cache_dir() -> Path | None:
    """The cache folder ``$EDGEKIT_COMPILE_CACHE`` / ``$XDG_CACHE_HOME`` name; None when off."""
    value = os.environ.get(CACHE_ENV, "").strip()
    if value.lower() in OFF_VALUES:
        return None
    if value:
        return Path(value).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec: a relative path in XDG_CACHE_HOME is invalid and is ignored.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "edgekit" / "compile"


def _files_digest(paths: list[tuple[str, Path]]) -> str:
    digest = hashlib.sha256()
    for name, path in sorted(paths):
        digest.update(f"{name}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def image_set_identity(source: Path | None, *, count: int, seed: int) -> dict[str, Any]:
    """What identifies a calibration or golden set: its name and the sha256 of its files.

    None (synthetic images) is identified by count and seed. A folder: every file
    under it (relative name and bytes). A label file: the file and the images its
    data set lists.
    """
    if source is None:
        return {"kind": "synthetic", "count": count, "seed": seed}
    path = Path(source)
    if path.is_dir():
        files = [(p.relative_to(path).as_posix(), p) for p in path.rglob("*") if p.is_file()]
    elif path.is_file():
        files = [(path.name, path)]
        files += [(str(s.image_path), s.image_path) for s in load_dataset(path).samples]
    else:  # the compiler reports the missing folder, naming it
        return {"kind": "missing", "path": str(path)}
    return {"kind": "files", "path": str(path), "files": len(files), "sha256": _files_digest(files)}


def cache_key(inputs: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``inputs`` (TypeError if it is not JSON data)."""
    text = json.dumps({"schema": SCHEMA, **inputs}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """A verified entry: ``record`` is its ``entry.json``; ``path`` its folder."""

    key: str
    path: Path
    record: dict[str, Any]


@dataclass(frozen=True)
class Lookup:
    """The result of :meth:`CompileCache.lookup`: the entry, or why there is none."""

    entry: CacheEntry | None
    note: str = ""


class CompileCache:
    """A compile cache rooted at ``root`` (created on first store)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()

    @classmethod
    def from_env(cls) -> CompileCache | None:
        """The per-user cache (see :func:`default_cache_dir`), or None when it is off."""
        root = default_cache_dir()
        return None if root is None else cls(root)

    def entry_dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def _verify(self, key: str, folder: Path) -> tuple[dict[str, Any] | None, str]:
        try:
            record = json.loads((folder / ENTRY_NAME).read_text())
        except (OSError, ValueError) as exc:
            return None, f"{ENTRY_NAME} unreadable ({exc})"
        if not isinstance(record, dict) or record.get("key") != key:
            return None, f"{ENTRY_NAME} does not hold key {key[:12]}"
        files = record.get("files")
        if not isinstance(files, dict) or record.get("model") not in files:
            return None, f"{ENTRY_NAME} lists no model file"
        if not isinstance(record.get("runtime"), str) or not isinstance(
            record.get("compile_info"), dict
        ):
            return None, f"{ENTRY_NAME} lacks 'runtime' or 'compile_info'"
        parity = record.get("parity", "missing")
        if parity is not None and not (isinstance(parity, dict) and set(parity) == _PARITY_FIELDS):
            return None, f"{ENTRY_NAME} holds no readable parity result"
        for name, meta in files.items():
            path = folder / FILES_DIR / name
            if not path.is_file():
                return None, f"{name} is missing"
            if not isinstance(meta, dict) or sha256_file(path) != meta.get("sha256"):
                return None, f"{name} does not match the sha256 its entry records"
        return record, ""

    def lookup(self, key: str) -> Lookup:
        """The verified entry for ``key``; a corrupt one is removed (note says why)."""
        folder = self.entry_dir(key)
        if not folder.exists():
            return Lookup(None)
        record, problem = self._verify(key, folder)
        if record is not None:
            return Lookup(CacheEntry(key, folder, record))
        note = f"discarded a corrupt cache entry {folder} ({problem}); rebuilt"
        try:
            shutil.rmtree(folder)
        except OSError as exc:
            warnings.warn(
                f"{folder}: could not remove this corrupt compile cache entry ({exc}); "
                "delete it by hand",
                CompileCacheWarning,
                stacklevel=3,
            )
        return Lookup(None, note)

    def restore(self, entry: CacheEntry, out_dir: Path) -> list[Path]:
        """Copy the entry's files into ``out_dir`` (each checked again, written atomically)."""
        written = []
        for name, meta in sorted(entry.record["files"].items()):
            data = (entry.path / FILES_DIR / name).read_bytes()
            if hashlib.sha256(data).hexdigest() != meta["sha256"]:
                return []  # changed since lookup: the caller compiles instead
            written.append(write_bytes_atomic(out_dir / name, data))
        return written

    def store(
        self, key: str, out_dir: Path, files: list[Path], record: dict[str, Any]
    ) -> Path | None:
        """Add an entry for ``key`` holding ``files`` (under ``out_dir``) and ``record``.

        Returns the entry folder, or None with a CompileCacheWarning when the cache
        could not be written (compiling is not failed over a cache).
        """
        final = self.entry_dir(key)
        tmp = self.root / f".tmp-{key[:16]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            listed: dict[str, dict[str, Any]] = {}
            for path in files:
                name = path.relative_to(out_dir).as_posix()
                target = tmp / FILES_DIR / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                listed[name] = {"sha256": sha256_file(target), "size": target.stat().st_size}
            write_json_atomic(tmp / ENTRY_NAME, {**record, "key": key, "files": listed})
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():  # another process stored the same key first
                return final
            try:
                os.rename(tmp, final)
            except OSError:
                if final.is_dir():  # lost a race with another process: its entry serves
                    return final
                raise
            return final
        except OSError as exc:
            warnings.warn(
                f"{self.root}: could not store a compile cache entry ({exc}); compiling "
                f"worked. Free space or fix permissions, or turn the cache off with "
                f"{CACHE_ENV}=off (or --no-cache)",
                CompileCacheWarning,
                stacklevel=3,
            )
            return None
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
