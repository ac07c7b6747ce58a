"""Verify and open model packages: the calls a device makes before loading a model.

Order matters: the signature is checked over the raw bytes of
``manifest.json`` *before* the JSON is parsed, so nothing unauthenticated is
interpreted. From a .tar.gz only ``manifest.json`` and ``manifest.sig`` are
read (into memory) until the signature holds; then only the members the
manifest lists are extracted (or, for :func:`verify_package`, just hashed),
each exactly as big as listed. Any file that is missing, not listed, bigger
or changed fails verification, naming the package and the file.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import TracebackType

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edgekit.errors import PackageError, VerificationError
from edgekit.files import sha256_file
from edgekit.package.archive import check_member_name, extract_listed, read_metadata
from edgekit.package.keys import PublicKeyLike, key_id, load_public_key
from edgekit.package.manifest import MANIFEST_NAME, SIGNATURE_NAME, Manifest

SIGNATURE_SIZE = 64


@dataclass
class OpenedPackage:
    """An unpacked, checked package. Use as a context manager to remove a temporary copy."""

    root: Path
    manifest: Manifest
    model_path: Path
    signature_verified: bool = False
    _cleanup: Path | None = field(default=None, repr=False)

    def close(self) -> None:
        """Delete the temporary folder the package was extracted into (if edgekit made it)."""
        if self._cleanup is not None:
            shutil.rmtree(self._cleanup, ignore_errors=True)
            self._cleanup = None

    def __enter__(self) -> OpenedPackage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _decode_signature(data: bytes, *, where: str) -> bytes:
    if len(data) == SIGNATURE_SIZE:
        return data
    try:
        signature = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError(
            f"{where}: malformed signature (expected base64 of a 64-byte Ed25519 signature)"
        ) from None
    if len(signature) != SIGNATURE_SIZE:
        raise VerificationError(
            f"{where}: malformed signature ({len(signature)} bytes, Ed25519 signatures "
            f"have {SIGNATURE_SIZE})"
        )
    return signature


def _signature_error(
    manifest_path: Path | str,
    signature_path: Path | str,
    manifest_bytes: bytes,
    key: Ed25519PublicKey,
) -> VerificationError:
    """Tell "signed with another key" from "manifest edited" using the (unverified) key id."""
    given = key_id(key)
    try:
        claimed = json.loads(manifest_bytes.decode("utf-8")).get("signing_key_id")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        claimed = None
    if isinstance(claimed, str) and claimed != given:
        return VerificationError(
            f"{signature_path}: signed with key {claimed}, not with the given public key "
            f"{given}; use the public key matching the signer's private key"
        )
    return VerificationError(
        f"{manifest_path}: does not match its signature in {SIGNATURE_NAME} for public key "
        f"{given}; the manifest was edited after signing or signed with another key"
    )


def _checked_manifest(
    manifest_bytes: bytes,
    signature: bytes | None,
    key: Ed25519PublicKey | None,
    *,
    manifest_at: Path | str,
    signature_at: Path | str,
) -> Manifest:
    """The manifest, parsed only after its signature (when a key is given) holds."""
    if key is not None:
        if signature is None:
            raise VerificationError(
                f"{signature_at}: signature missing; the package is unsigned or damaged"
            )
        try:
            key.verify(_decode_signature(signature, where=str(signature_at)), manifest_bytes)
        except InvalidSignature:
            raise _signature_error(manifest_at, signature_at, manifest_bytes, key) from None
    try:
        manifest = Manifest.from_bytes(manifest_bytes, where=str(manifest_at))
    except VerificationError:
        raise
    except PackageError as exc:
        raise VerificationError(str(exc)) from None
    for name in manifest.files:
        check_member_name(name, where=str(manifest_at))
        if PurePosixPath(name).as_posix() != name or name in (MANIFEST_NAME, SIGNATURE_NAME):
            raise VerificationError(
                f"{manifest_at}: field 'files.{name}' is not a plain file name of the package"
            )
    return manifest


def verify_archive(
    archive: Path, public_key: PublicKeyLike | None, *, dest: Path | None
) -> Manifest:
    """Check a .tar.gz package, signed manifest first; extract it into ``dest`` if given.

    Only ``manifest.json`` and ``manifest.sig`` are read before the signature
    is checked, and nothing is written before it holds. Then the members the
    manifest lists, and only those, are streamed into ``dest`` (or only hashed
    when ``dest`` is None), each bounded by its listed size.
    """
    key = load_public_key(public_key) if public_key is not None else None
    metadata = read_metadata(archive, (MANIFEST_NAME, SIGNATURE_NAME))
    if MANIFEST_NAME not in metadata:
        raise VerificationError(
            f"{archive}: member {MANIFEST_NAME}: manifest missing; this is not a model package"
        )
    manifest = _checked_manifest(
        metadata[MANIFEST_NAME],
        metadata.get(SIGNATURE_NAME),
        key,
        manifest_at=f"{archive}: member {MANIFEST_NAME}",
        signature_at=f"{archive}: member {SIGNATURE_NAME}",
    )
    extract_listed(archive, manifest.files, dest=dest, metadata=metadata)
    return manifest


def verify_folder(root: Path, public_key: PublicKeyLike | None) -> Manifest:
    """Check an unpacked package folder; with ``public_key=None`` only hashes are checked."""
    key = load_public_key(public_key) if public_key is not None else None
    manifest_path = root / MANIFEST_NAME
    signature_path = root / SIGNATURE_NAME
    if not manifest_path.is_file():
        raise VerificationError(f"{manifest_path}: manifest missing; this is not a model package")
    manifest_bytes = manifest_path.read_bytes()
    signature = signature_path.read_bytes() if signature_path.is_file() else None
    manifest = _checked_manifest(
        manifest_bytes, signature, key, manifest_at=manifest_path, signature_at=signature_path
    )
    listed = set(manifest.files)
    for name in sorted(listed):
        path = root / name
        if path.is_symlink():
            raise VerificationError(f"{path}: is a link; packages hold regular files only")
        if not path.is_file():
            raise VerificationError(f"{path}: listed in {MANIFEST_NAME} but missing")
        entry = manifest.files[name]
        if path.stat().st_size != entry.size or sha256_file(path) != entry.sha256:
            raise VerificationError(
                f"{path}: SHA-256 differs from {MANIFEST_NAME}; the file was changed after "
                "signing. Rebuild or re-download the package."
            )
    for path in sorted(root.rglob("*")):
        if path.is_dir() and not path.is_symlink():
            continue
        name = path.relative_to(root).as_posix()
        if name in listed:
            continue
        if name in (MANIFEST_NAME, SIGNATURE_NAME):
            if path.is_symlink():
                raise VerificationError(f"{path}: is a link; packages hold regular files only")
            continue
        raise VerificationError(
            f"{path}: extra file not listed in {MANIFEST_NAME}; refusing the package"
        )
    return manifest


def verify_package(path: str | os.PathLike[str], public_key: PublicKeyLike) -> Manifest:
    """Verify a package (.tar.gz or unpacked folder) against ``public_key``; its manifest.

    Raises :class:`~edgekit.errors.VerificationError` naming the offending file.
    """
    key = load_public_key(public_key)  # a bad key argument fails before any extraction
    source = Path(path)
    if source.is_dir():
        return verify_folder(source, key)
    return verify_archive(source, key, dest=None)  # hashes the members, writes nothing


def open_package(
    path: str | os.PathLike[str],
    public_key: PublicKeyLike | None = None,
    *,
    dest: str | os.PathLike[str] | None = None,
) -> OpenedPackage:
    """Unpack (if needed) and check a package, returning where its model file is.

    A ``.tar.gz`` is extracted into ``dest`` (which must be empty or absent) or
    into a temporary folder removed by :meth:`OpenedPackage.close`. With a
    ``public_key`` the signature is verified; without one only the file hashes
    are, which is enough to catch damage but not tampering.
    """
    key = load_public_key(public_key) if public_key is not None else None
    source = Path(path)
    if not source.exists():
        raise PackageError(f"{source}: package not found")
    cleanup: Path | None = None  # removed by close()
    on_failure: Path | None = None  # removed if the package is rejected
    if source.is_dir():
        root = source
    else:
        if dest is None:
            root = cleanup = on_failure = Path(tempfile.mkdtemp(prefix="edgekit-package-"))
        else:
            root = Path(dest)
            if root.exists() and any(root.iterdir()):
                raise PackageError(
                    f"{root}: destination folder is not empty; choose an empty or new folder"
                )
            on_failure = root
    try:
        if root is source:
            manifest = verify_folder(root, key)
        else:
            manifest = verify_archive(source, key, dest=root)
    except BaseException:
        # Leave nothing of a rejected package behind: the temporary or given dest is removed.
        if on_failure is not None:
            shutil.rmtree(on_failure, ignore_errors=True)
        raise
    return OpenedPackage(
        root=root,
        manifest=manifest,
        model_path=root / manifest.model_file,
        signature_verified=public_key is not None,
        _cleanup=cleanup,
    )
