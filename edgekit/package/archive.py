"""Reproducible .tar.gz writing and bounded, manifest-driven reading.

Archives are byte-for-byte reproducible: entries in a fixed order, mtime 0,
uid/gid 0, no user names, mode 0644, and a gzip header without a file name
or time stamp.

Reading trusts nothing in the archive and writes nothing it was not told to
expect. :func:`read_metadata` reads only the small members it is asked for
(``manifest.json`` and ``manifest.sig``) into memory, so the caller can
check the signature before anything else; :func:`extract_listed` then
streams only the members the (verified) manifest lists, each exactly as big
as listed and hashed on the way, into a folder or nowhere (hash only). Every
header is checked first: absolute paths, ``..`` parts, links, devices and
duplicate names are refused, and so are more than :data:`MAX_MEMBERS`
members. Errors name the package file and the member.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath

from edgekit.errors import PackageError, VerificationError
from edgekit.package.manifest import MANIFEST_NAME, FileEntry

FIXED_MTIME = 0
MAX_MEMBERS = 1000
"""Members (files and folders) a package archive may hold."""
MAX_METADATA_BYTES = 1024 * 1024
"""The largest manifest.json / manifest.sig read into memory."""
MAX_PACKAGE_BYTES = 4 * 1024**3
"""The most bytes a package may unpack to, and may hold before its manifest."""
_CHUNK = 1 << 20


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


class _BoundedTarInfo(tarfile.TarInfo):
    """A header whose pax / GNU long-name extension is refused over MAX_METADATA_BYTES.

    tarfile reads such an extension wholly into memory before it returns the
    member it belongs to, so without this bound a gzip-compressed run of zeros
    in one would be a memory bomb before any check of ours runs.
    """

    _EXTENSIONS = (
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
    )

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in self._EXTENSIONS and self.size > MAX_METADATA_BYTES:
            raise tarfile.SubsequentHeaderError(
                f"a {self.size}-byte extended header (at most {MAX_METADATA_BYTES})"
            )
        return super()._proc_member(tarfile_)  # type: ignore[misc]


def _open(archive: Path) -> tarfile.TarFile:
    if not archive.is_file():
        raise PackageError(f"{archive}: package file not found")
    try:
        return tarfile.open(archive, mode="r:*", tarinfo=_BoundedTarInfo)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise VerificationError(f"{archive}: not a readable .tar.gz package ({exc})") from None


def _files(archive: Path, tar: tarfile.TarFile) -> Iterator[tuple[str, tarfile.TarInfo]]:
    """(normalized name, header) of each regular file, checking every header on the way.

    Folders are skipped (a folder a listed file needs is created for it); an
    unsafe name, a link, a device, a duplicate or one member too many ends the
    read with a VerificationError before that member's data is touched.
    """
    seen: set[str] = set()
    count = 0
    while True:
        try:
            member = tar.next()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise VerificationError(f"{archive}: corrupt archive ({exc})") from None
        if member is None:
            return
        count += 1
        if count > MAX_MEMBERS:
            raise VerificationError(
                f"{archive}: more than {MAX_MEMBERS} members; a model package holds a model "
                "and a few small files, refusing to read further"
            )
        if member.isdir():
            check_member_name(member.name.rstrip("/"), where=str(archive))
            continue
        check_member_name(member.name, where=str(archive))
        if not member.isreg() or member.sparse is not None:
            kind = "link" if (member.issym() or member.islnk()) else "special file"
            raise VerificationError(
                f"{archive}: entry {member.name!r} is a {kind}; packages hold regular "
                "files only, refusing to extract"
            )
        name = PurePosixPath(member.name).as_posix()  # "./model.onnx" -> "model.onnx"
        if name in seen:
            raise VerificationError(f"{archive}: entry {name!r} appears twice; refusing to extract")
        seen.add(name)
        yield name, member
        # tarfile keeps every header it read; drop them, we never go back.
        tar.members.clear()


def _read_bounded(archive: Path, tar: tarfile.TarFile, name: str, member: tarfile.TarInfo) -> bytes:
    source = tar.extractfile(member)
    if source is None:  # pragma: no cover - regular files always have data
        raise VerificationError(f"{archive}: member {name} has no data")
    try:
        with source:
            return source.read(member.size)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise VerificationError(f"{archive}: member {name} cannot be read ({exc})") from None


def read_metadata(archive: Path, names: Iterable[str]) -> dict[str, bytes]:
    """The bytes of the members ``names`` (each at most MAX_METADATA_BYTES); nothing is written.

    Reading stops as soon as all are found. Members before them are checked and
    skipped, at most MAX_PACKAGE_BYTES of them; a name that is absent is absent
    from the result.
    """
    wanted = set(names)
    found: dict[str, bytes] = {}
    skipped = 0
    with _open(archive) as tar:
        for name, member in _files(archive, tar):
            if name not in wanted:
                skipped += member.size
                if skipped > MAX_PACKAGE_BYTES:
                    raise VerificationError(
                        f"{archive}: more than {MAX_PACKAGE_BYTES} bytes before "
                        f"{MANIFEST_NAME} and its signature; refusing the package"
                    )
                continue
            if member.size > MAX_METADATA_BYTES:
                raise VerificationError(
                    f"{archive}: member {name!r} has {member.size} bytes, more than the "
                    f"{MAX_METADATA_BYTES} a package's {name} may have; refusing the package"
                )
            found[name] = _read_bounded(archive, tar, name, member)
            if wanted <= found.keys():
                break
    return found


def extract_listed(
    archive: Path,
    listed: Mapping[str, FileEntry],
    *,
    dest: Path | None,
    metadata: Mapping[str, bytes],
) -> list[str]:
    """Stream the members ``listed`` (name -> size and sha256) into ``dest``; their names.

    Each member must be listed and exactly as big as listed; it is hashed while
    it is copied, so a changed byte fails here, naming the member. The members
    named in ``metadata`` (already read and checked by the caller) are skipped
    in the archive and written from those bytes. With ``dest=None`` nothing is
    written: the members are only hashed. Every listed member must be present.
    """
    total = sum(entry.size for entry in listed.values())
    if total > MAX_PACKAGE_BYTES:
        raise VerificationError(
            f"{archive}: {MANIFEST_NAME} lists {total} bytes, more than the "
            f"{MAX_PACKAGE_BYTES} a package may unpack to; refusing the package"
        )
    root: Path | None = None
    if dest is not None:
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        for name, data in metadata.items():
            _write_member(archive, root, name, [data])
    extracted: list[str] = []
    with _open(archive) as tar:
        for name, member in _files(archive, tar):
            if name in metadata:
                continue
            entry = listed.get(name)
            if entry is None:
                raise VerificationError(
                    f"{archive}: member {name}: extra file not listed in {MANIFEST_NAME}; "
                    "refusing the package"
                )
            if member.size != entry.size:
                raise VerificationError(
                    f"{archive}: member {name}: {member.size} bytes in the archive, "
                    f"{entry.size} in {MANIFEST_NAME}; the file was changed after signing, "
                    "refusing the package"
                )
            digest = hashlib.sha256()
            chunks = _chunks(archive, tar, name, member, digest)
            if root is not None:
                _write_member(archive, root, name, chunks)
            else:
                for _ in chunks:
                    pass
            if digest.hexdigest() != entry.sha256:
                raise VerificationError(
                    f"{archive}: member {name}: SHA-256 differs from {MANIFEST_NAME}; the file "
                    "was changed after signing. Rebuild or re-download the package."
                )
            extracted.append(name)
    for name in sorted(set(listed) - set(extracted)):
        raise VerificationError(
            f"{archive}: member {name}: listed in {MANIFEST_NAME} but missing from the package"
        )
    return extracted


def _chunks(
    archive: Path, tar: tarfile.TarFile, name: str, member: tarfile.TarInfo, digest
) -> Iterator[bytes]:
    source = tar.extractfile(member)
    if source is None:  # pragma: no cover - regular files always have data
        raise VerificationError(f"{archive}: member {name} has no data")
    left = member.size
    try:
        with source:
            while left > 0:
                chunk = source.read(min(_CHUNK, left))
                if not chunk:
                    raise VerificationError(f"{archive}: member {name} is truncated")
                left -= len(chunk)
                digest.update(chunk)
                yield chunk
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise VerificationError(f"{archive}: member {name} cannot be read ({exc})") from None


def _write_member(archive: Path, root: Path, name: str, chunks: Iterable[bytes]) -> None:
    target = root / name
    if root not in target.parents:
        raise VerificationError(f"{archive}: member {name} would land outside {root}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if root not in target.parent.resolve().parents and target.parent.resolve() != root:
            raise VerificationError(f"{archive}: member {name} would land outside {root}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(target, flags, 0o644), "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
    except OSError as exc:
        raise VerificationError(
            f"{archive}: member {name} cannot be written to {target} ({exc})"
        ) from None
