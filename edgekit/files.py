"""Small file helpers every subsystem shares: content hashes, atomic writes, log tails, locks.

Owns: how edgekit hashes a file, replaces a file atomically, makes a folder's names
durable, reads the end of a log and waits for an exclusive lock file.
Must not import anything from edgekit (it sits below every other module).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

CHUNK = 1 << 20
LOG_TAIL_LINES = 20
_TAIL_BYTES = 64 * 1024


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_bytes_atomic(
    path: str | os.PathLike[str],
    data: bytes | Sequence[bytes],
    *,
    fsync: bool = True,
    mode: int = 0o666,
) -> Path:
    """Write, fsync and rename: readers see the old file or the new one, never a torn one.

    ``data`` may be a sequence of chunks, written one after the other (no joined copy of
    a large payload). ``mode``: the new file's permissions (before the umask), e.g. 0o600
    for a file only its owner may read.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    chunks = [data] if isinstance(data, bytes | bytearray | memoryview) else data
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make the names in ``directory`` durable (a file just created or renamed there)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path: str | os.PathLike[str], text: str, *, fsync: bool = True) -> Path:
    """`write_bytes_atomic` for UTF-8 text."""
    return write_bytes_atomic(path, text.encode(), fsync=fsync)


def write_json_atomic(
    path: str | os.PathLike[str], data: Any, *, indent: int | None = 1, fsync: bool = True
) -> Path:
    """`write_bytes_atomic` for a JSON document (sorted keys, so diffs stay small)."""
    text = json.dumps(data, indent=indent, sort_keys=True)
    return write_text_atomic(path, text, fsync=fsync)


def log_tail(path: str | os.PathLike[str], lines: int = LOG_TAIL_LINES, *, offset: int = 0) -> str:
    """The last ``lines`` lines of a log from byte ``offset`` on ('' if it cannot be read).

    Reads at most the last 64 KiB, so a huge log costs no more than a small one.
    """
    try:
        with Path(path).open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(offset, size - _TAIL_BYTES))
            data = fh.read()
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").rstrip().splitlines()[-lines:])


@contextlib.contextmanager
def held_lock(
    path: str | os.PathLike[str],
    *,
    timeout: float,
    poll: float,
    timed_out: Callable[[], Exception],
) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block.

    Waits up to ``timeout`` seconds, retrying every ``poll``; then raises ``timed_out()``
    (chained to the last error). The kernel drops the lock when the holder dies, so a
    crashed process never leaves it held.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise timed_out() from exc
                time.sleep(poll)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock
