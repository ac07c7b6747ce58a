"""The moto state snapshot file (``home/moto/state.pickle``): its format and checks.

The local moto server keeps every emulated AWS resource in memory; to survive
`edgekit local down` / `up` (and a crash) it writes a snapshot of its backends to
this file (see ``moto_keeper``) and reads it back on start (``moto_backends``).

The file is one header line, then the payload::

    edgekit-moto-state {"format": 1, "moto": "5.2.6", "python": "3.11", ...}\\n
    <pickle of the moto backends>

The payload is a pickle of moto's own model classes, which are not stable across
moto releases, so a snapshot is restored only by the moto (and Python) version
that wrote it; ``sha256`` and ``size`` catch a truncated or damaged file. Anything
else is refused with an error naming the file and the way out (`edgekit local up
--fresh`, which moves the file aside, never deletes it).

This module does not import moto (`local up` checks the file before starting the
server, and importing moto is slow): only its installed version is read.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from edgekit.errors import LocalBackendError
from edgekit.files import write_bytes_atomic

MAGIC = b"edgekit-moto-state "
FORMAT = 1
_MAX_HEADER = 64 * 1024

FRESH_HINT = "`edgekit local up --fresh`"


def moto_version() -> str:
    """The installed moto's version (read from its metadata, without importing moto)."""
    try:
        return metadata.version("moto")
    except metadata.PackageNotFoundError as exc:
        raise LocalBackendError(
            "moto is not installed in this Python environment; reinstall edgekit "
            "(pip install edgekit-inspection, or pip install -e . in a checkout)"
        ) from exc


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True)
class SnapshotHeader:
    """What a snapshot says about itself (the first line of the file)."""

    moto: str
    python: str
    size: int
    sha256: str
    saved_at: float  # time.time() when the backends were captured
    services: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "moto": self.moto,
                "python": self.python,
                "size": self.size,
                "sha256": self.sha256,
                "saved_at": self.saved_at,
                "services": list(self.services),
            },
            sort_keys=True,
        )


def _refuse(path: Path, problem: str) -> LocalBackendError:
    return LocalBackendError(
        f"cannot restore the local AWS state (moto) from {path}: {problem}. Nothing was "
        f"changed. To start the emulated AWS services empty, run {FRESH_HINT} (it keeps the "
        f"file, renamed to {path.name}.<time>.bak); or move or delete {path} yourself"
    )


def _parse_header(path: Path, line: bytes) -> SnapshotHeader:
    if not line.startswith(MAGIC) or not line.endswith(b"\n"):
        raise _refuse(path, "it is not an edgekit moto snapshot (its first line is not a header)")
    try:
        data: Any = json.loads(line[len(MAGIC) :])
        if not isinstance(data, dict):
            raise ValueError("the header is not a JSON object")
        if data.get("format") != FORMAT:
            raise _refuse(
                path,
                f"it has snapshot format {data.get('format')!r}, this edgekit reads format "
                f"{FORMAT}",
            )
        header = SnapshotHeader(
            moto=str(data["moto"]),
            python=str(data["python"]),
            size=int(data["size"]),
            sha256=str(data["sha256"]),
            saved_at=float(data["saved_at"]),
            services=tuple(str(s) for s in data["services"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise _refuse(path, f"its header is damaged ({exc!r})") from exc
    mine = (moto_version(), python_version())
    if (header.moto, header.python) != mine:
        raise _refuse(
            path,
            f"it was written by moto {header.moto} on Python {header.python}, this environment "
            f"runs moto {mine[0]} on Python {mine[1]}, and moto's objects cannot be carried "
            f"across versions (to keep that state, reinstall moto=={header.moto} with Python "
            f"{header.python} and run `edgekit local up` again)",
        )
    return header


def check_snapshot(path: str | os.PathLike[str]) -> SnapshotHeader | None:
    """The header of the snapshot at ``path`` (None if there is none); LocalBackendError if
    this environment cannot restore it (other moto/Python version, damaged header, wrong size).
    Reads only the header and the file size, so it is cheap."""
    target = Path(path)
    try:
        with target.open("rb") as fh:
            line = fh.readline(_MAX_HEADER)
            offset = fh.tell()
            total = os.fstat(fh.fileno()).st_size
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _refuse(target, f"it cannot be read ({exc})") from exc
    header = _parse_header(target, line)
    if total - offset != header.size:
        raise _refuse(
            target,
            f"it is truncated or damaged (the header announces {header.size} bytes of state, "
            f"the file holds {total - offset})",
        )
    return header


def _check_owner(path: Path, info: os.stat_result) -> None:
    """Loading a pickle runs code: only a file (and folder) that no one else can write."""
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise LocalBackendError(
            f"refusing to load the moto state: {path} is owned by uid {info.st_uid} or "
            "writable by other users (mode "
            f"{info.st_mode & 0o777:o}), and loading it would run what it holds. If you trust "
            f"it, `chmod go-w {path}` (and chown it to yourself); otherwise run {FRESH_HINT}"
        )


def read_snapshot(path: str | os.PathLike[str]) -> tuple[SnapshotHeader, bytes] | None:
    """The header and the verified payload of the snapshot at ``path`` (None if there is none).

    LocalBackendError (naming the file and `local up --fresh`) if it cannot be restored here.
    """
    target = Path(path)
    try:
        with target.open("rb") as fh:
            _check_owner(target, os.fstat(fh.fileno()))
            _check_owner(target.parent, target.parent.stat())
            line = fh.readline(_MAX_HEADER)
            header = _parse_header(target, line)
            payload = fh.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _refuse(target, f"it cannot be read ({exc})") from exc
    if len(payload) != header.size or hashlib.sha256(payload).hexdigest() != header.sha256:
        raise _refuse(target, "it is truncated or damaged (its sha256 does not match its header)")
    return header, payload


def payload_digest(payload: bytes | memoryview) -> str:
    """The sha256 a header records for ``payload``."""
    return hashlib.sha256(payload).hexdigest()


def write_snapshot(
    path: str | os.PathLike[str],
    payload: bytes | memoryview,
    services: list[str],
    saved_at: float,
    *,
    sha256: str | None = None,
) -> SnapshotHeader:
    """Write the header and ``payload`` atomically (temp file, fsync, rename).

    A reader (or a crash at any point) sees the previous snapshot or this one, never a
    mix. The payload is written as is (no copy: it can hold every S3 object's bytes).
    """
    header = SnapshotHeader(
        moto=moto_version(),
        python=python_version(),
        size=len(payload),
        sha256=sha256 or payload_digest(payload),
        saved_at=saved_at,
        services=tuple(services),
    )
    target = Path(path)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Owner-only: the state holds what the emulated services were given (keys, policies).
    head = MAGIC + header.to_json().encode() + b"\n"
    write_bytes_atomic(target, [head, payload], mode=0o600)
    return header


def move_aside(path: str | os.PathLike[str]) -> Path | None:
    """Rename the snapshot to ``<name>.<UTC time>.bak`` next to it (None if there is none).

    The state is never deleted: the renamed file can be moved back by hand.
    """
    target = Path(path)
    if not target.exists():
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = target.with_name(f"{target.name}.{stamp}.bak")
    n = 1
    while aside.exists():
        n += 1
        aside = target.with_name(f"{target.name}.{stamp}-{n}.bak")
    try:
        os.replace(target, aside)
    except OSError as exc:
        raise LocalBackendError(
            f"cannot move the moto state {target} aside to {aside}: {exc}; move or delete it "
            "yourself, then run `edgekit local up`"
        ) from exc
    return aside


def error_file(path: str | os.PathLike[str]) -> Path:
    """Where the moto server records that it could not save (``state.pickle.error``)."""
    target = Path(path)
    return target.with_name(f"{target.name}.error")


def record_save_error(path: str | os.PathLike[str], message: str) -> None:
    """Note that saving to ``path`` failed, so `local down` can say so (not only the log)."""
    error_file(path).parent.mkdir(parents=True, exist_ok=True)
    error_file(path).write_text(message + "\n")


def clear_save_error(path: str | os.PathLike[str]) -> None:
    error_file(path).unlink(missing_ok=True)


def take_save_error(path: str | os.PathLike[str]) -> LocalBackendError | None:
    """The recorded save failure as an error to raise (and forget it), or None."""
    marker = error_file(path)
    try:
        message = marker.read_text().strip()
    except FileNotFoundError:
        return None
    marker.unlink(missing_ok=True)
    try:
        header = check_snapshot(path)
    except LocalBackendError as exc:
        last = f"the file {path} cannot be restored either ({exc})"
    else:
        when = (
            time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(header.saved_at)) if header else None
        )
        last = (
            f"`edgekit local up` restores the last snapshot it saved, {path} from {when}; "
            "changes after it are lost"
            if when
            else f"there is no snapshot at {path}: `edgekit local up` starts moto empty"
        )
    return LocalBackendError(
        f"moto could not save its state: {message}. {last}. Please report this with the log "
        "(logs/moto.log in the local home) and your moto version"
    )


def remove_stale_temp_files(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temp files of snapshots interrupted by a crash (never the snapshot itself)."""
    target = Path(path)
    removed: list[Path] = []
    if not target.parent.is_dir():
        return removed
    for tmp in target.parent.glob(f".{target.name}.*.tmp"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


__all__ = [
    "SnapshotHeader",
    "check_snapshot",
    "clear_save_error",
    "error_file",
    "move_aside",
    "moto_version",
    "payload_digest",
    "read_snapshot",
    "record_save_error",
    "remove_stale_temp_files",
    "take_save_error",
    "write_snapshot",
]
