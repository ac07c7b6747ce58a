"""Reproducible .tar.gz writing and safe extraction.

Archives are byte-for-byte reproducible: entries in a fixed order, mtime 0,
uid/gid 0, no user names, mode 0644, and a gzip header without a file name
or time stamp. Extraction trusts nothing in the archive: absolute paths,
``..`` parts, links, devices and duplicate names are rejected before any
byte is written.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from edgekit.errors import PackageError, VerificationError

FIXED_MTIME = 0


def write_archive(out: Path, entries: Iterable[tuple[str, bytes | Path]]) -> None:
    """Write ``(archive name, bytes or file path)`` entries, in the order given, to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    try:
        with (
            open(tmp, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=FIXED_MTIME) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for name, content in entries:
                check_member_name(name, where=str(out))
                data = content.read_bytes() if isinstance(content, Path) else content
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = FIXED_MTIME
                info.mode = 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.type = tarfile.REGTYPE
                tar.addfile(info, io.BytesIO(data))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def check_member_name(name: str, *, where: str) -> PurePosixPath:
    """A safe relative POSIX path, or VerificationError naming the entry."""
    path = PurePosixPath(name)
    if (
        not name
        or name.startswith("/")
        or "\\" in name
        or path.is_absolute()
        or any(part in ("..", "") for part in name.split("/"))
        or (len(name) > 1 and name[1] == ":")
    ):
        raise VerificationError(
            f"{where}: entry {name!r} has an unsafe path (absolute, '..' or empty part); "
            "refusing to extract this archive"
        )
    return path


def safe_extract(archive: Path, dest: Path) -> list[str]:
    """Extract regular files only into ``dest``; return their names. Rejects unsafe entries."""
    if not archive.is_file():
        raise PackageError(f"{archive}: package file not found")
    try:
        tar = tarfile.open(archive, mode="r:*")  # noqa: SIM115 - closed by the with below
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise VerificationError(f"{archive}: not a readable .tar.gz package ({exc})") from None
    names: list[str] = []
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise VerificationError(f"{archive}: corrupt archive ({exc})") from None
        seen: set[str] = set()
        for member in members:
            if member.isdir():
                check_member_name(member.name.rstrip("/"), where=str(archive))
                continue
            check_member_name(member.name, where=str(archive))
            if not member.isreg():
                kind = "link" if (member.issym() or member.islnk()) else "special file"
                raise VerificationError(
                    f"{archive}: entry {member.name!r} is a {kind}; packages hold regular "
                    "files only, refusing to extract"
                )
            if member.name in seen:
                raise VerificationError(
                    f"{archive}: entry {member.name!r} appears twice; refusing to extract"
                )
            seen.add(member.name)
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        for member in members:
            if member.isdir():
                continue
            target = (root / member.name).resolve()
            if root not in target.parents:
                raise VerificationError(
                    f"{archive}: entry {member.name!r} would land outside {dest}"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is None:  # pragma: no cover - regular files always have data
                raise VerificationError(f"{archive}: entry {member.name!r} has no data")
            try:
                with source, open(target, "wb") as fh:
                    while chunk := source.read(1 << 20):
                        fh.write(chunk)
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise VerificationError(
                    f"{archive}: entry {member.name!r} cannot be read ({exc})"
                ) from None
            names.append(member.name)
    return names
