"""Ed25519 signing keys for model packages.

The private key signs packages on the build machine; only the public key
travels to devices. Keys are PEM files (PKCS#8 private key without a
password, SubjectPublicKeyInfo public key) so OpenSSL and other tools can
read them too.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgekit.errors import PackageError
from edgekit.settings import Settings
from edgekit.spelling import parameter_text

PRIVATE_KEY_NAME = "private_key.pem"
PUBLIC_KEY_NAME = "public_key.pem"
#: The folder under the local home that holds the default key pair.
KEYS_FOLDER = "keys"

PrivateKeyLike = Ed25519PrivateKey | str | os.PathLike[str] | bytes
PublicKeyLike = Ed25519PublicKey | str | os.PathLike[str] | bytes


@dataclass(frozen=True)
class KeyPair:
    private_key: Path
    public_key: Path
    key_id: str


def key_id(public_key: Ed25519PublicKey) -> str:
    """Short fingerprint (16 hex digits of the SHA-256 of the raw key) shown in messages."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def fingerprint(key: PublicKeyLike) -> str:
    """The fingerprint devices report for a public key: :func:`key_id` of a key, path or PEM.

    It is what the model agent puts in ``key_fingerprint`` (health messages, the
    agent API's Model), what a package manifest's ``signing_key_id`` holds, and
    what verification errors print, so the three can be compared as strings.
    """
    return key_id(load_public_key(key))


def generate_keypair(out_dir: str | os.PathLike[str], *, force: bool = False) -> KeyPair:
    """Write a new key pair into ``out_dir``; refuse to replace existing keys unless ``force``.

    Replacing a key silently would orphan every device that trusts the old public key.
    """
    folder = Path(out_dir)
    private_path = folder / PRIVATE_KEY_NAME
    public_path = folder / PUBLIC_KEY_NAME
    existing = [p for p in (private_path, public_path) if p.exists()]
    if existing and not force:
        raise PackageError(
            f"{existing[0]}: a key already exists; devices trusting it would reject packages "
            f"signed with a new one. Use another folder, or {parameter_text('force', True)} to "
            "replace it."
        )
    folder.mkdir(parents=True, exist_ok=True)
    private_key = Ed25519PrivateKey.generate()
    public_key = private_key.public_key()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_private(private_path, private_pem)
    public_path.write_bytes(public_pem)
    return KeyPair(private_path, public_path, key_id(public_key))


def default_key_dir(settings: Settings) -> Path:
    """``<local home>/keys``: the key folder when none is given, outside any checkout.

    The one rule for `edgekit keygen` and `edgekit package` without a folder,
    `components publish`, `rollout` and the notebooks (`edgekit.components.signing_keys`).
    """
    return settings.home / KEYS_FOLDER


def existing_keypair(folder: str | os.PathLike[str]) -> KeyPair | None:
    """The key pair already in ``folder``, or None when it holds neither key.

    Half a pair (one of the two files) is a PackageError naming the missing one.
    """
    root = Path(folder)
    private_path, public_path = root / PRIVATE_KEY_NAME, root / PUBLIC_KEY_NAME
    present = [p.exists() for p in (private_path, public_path)]
    if not any(present):
        return None
    if not all(present):
        missing, there = (public_path, private_path) if present[0] else (private_path, public_path)
        raise PackageError(
            f"{missing}: missing next to {there}; restore it, or pass --force "
            "to replace the pair (devices trusting the old public key then reject new packages)"
        )
    return KeyPair(private_path, public_path, key_id(load_public_key(public_path)))


def _write_private(path: Path, data: bytes) -> None:
    """Create the file with mode 0600 from the start, so the key is never world-readable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def _pem_bytes(key: str | os.PathLike[str] | bytes, what: str) -> tuple[bytes, str]:
    if isinstance(key, bytes):
        return key, f"{what} (PEM bytes)"
    path = Path(key)
    try:
        return path.read_bytes(), str(path)
    except FileNotFoundError:
        raise PackageError(
            f"{path}: {what} file not found; create a key pair with 'edgekit keygen' (in "
            "<local home>/keys) or 'edgekit keygen --out DIR'"
        ) from None
    except OSError as exc:
        raise PackageError(f"{path}: cannot read {what}: {exc.strerror}") from None


def load_private_key(key: PrivateKeyLike) -> Ed25519PrivateKey:
    """An Ed25519 private key from a key object, a PEM file path or PEM bytes."""
    if isinstance(key, Ed25519PrivateKey):
        return key
    data, where = _pem_bytes(key, "private key")
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise PackageError(
            f"{where}: not an unencrypted PEM private key ({exc}); "
            "use the private_key.pem written by 'edgekit keygen'"
        ) from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise PackageError(
            f"{where}: the key is {type(loaded).__name__}, packages are signed with Ed25519; "
            "create one with 'edgekit keygen'"
        )
    return loaded


def load_public_key(key: PublicKeyLike) -> Ed25519PublicKey:
    """An Ed25519 public key from a key object, a PEM file path or PEM bytes."""
    if isinstance(key, Ed25519PublicKey):
        return key
    data, where = _pem_bytes(key, "public key")
    try:
        loaded = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise PackageError(
            f"{where}: not a PEM public key ({exc}); use the public_key.pem written by "
            "'edgekit keygen'"
        ) from None
    if not isinstance(loaded, Ed25519PublicKey):
        raise PackageError(
            f"{where}: the key is {type(loaded).__name__}, packages are verified with Ed25519"
        )
    return loaded


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)


def load_public_keys(bundle: str | os.PathLike[str] | bytes) -> list[Ed25519PublicKey]:
    """The Ed25519 public keys of a PEM bundle (a file path or PEM bytes), in order.

    A bundle is zero or more PEM public keys one after the other; an empty (or
    whitespace-only) bundle is valid and gives no key. Anything between the
    blocks other than white space, a block that is not an Ed25519 public key,
    or the same key twice is a PackageError naming the bundle and the block.
    """
    data, where = _pem_bytes(bundle, "public key bundle")
    keys: list[Ed25519PublicKey] = []
    seen: dict[str, int] = {}
    position = 0
    for number, match in enumerate(_PEM_BLOCK.finditer(data), start=1):
        _only_space(data[position : match.start()], where)
        position = match.end()
        try:
            key = load_public_key(match.group(0))
        except PackageError as exc:
            raise PackageError(f"{where}: key {number} of the bundle: {exc}") from None
        fp = key_id(key)
        if fp in seen:
            raise PackageError(
                f"{where}: key {number} of the bundle is key {seen[fp]} again ({fp}); "
                "list each key once"
            )
        seen[fp] = number
        keys.append(key)
    _only_space(data[position:], where)
    return keys


def _only_space(text: bytes, where: str) -> None:
    if text.strip():
        shown = text.strip()[:60].decode("utf-8", "replace")
        raise PackageError(
            f"{where}: {shown!r} is not part of a PEM block; a public key bundle holds only "
            "'-----BEGIN PUBLIC KEY-----' ... '-----END PUBLIC KEY-----' blocks"
        )
