"""What the agent can vouch for about a package it verified and loaded.

A device proves which model it runs by the sha256 of the package ARCHIVE as
published (the value the registry, the model component's recipe and
``edgekit.files.sha256_file(pkg.tar.gz)`` give) and by the fingerprint of the
public key the signature was checked with. The agent knows them as follows:

- LoadModel of a ``.tar.gz``: the agent hashes the archive file itself
  (source ``"archive"``) before it verifies and loads it.
- LoadModel of an unpacked folder (what the model component installs): the
  folder's signature and every file hash are verified, and the archive's
  sha256 is read from ``<folder>.sha256``, the marker the model component's
  install script writes next to the folder after unpacking exactly that
  archive (source ``"install-marker"``). No marker: the sha256 is unknown
  (None), never guessed.

The key fingerprint is that of the trusted key the signature verified with (the
agent's own key, or one of its additional keys; see :mod:`edgekit.agent.models`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from edgekit.files import sha256_file

log = logging.getLogger(__name__)

MARKER_SUFFIX = ".sha256"
ARCHIVE = "archive"
INSTALL_MARKER = "install-marker"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class PackageIdentity:
    package_sha256: str | None
    """sha256 of the package archive as published, or None when the agent cannot tell."""
    source: str | None
    """ARCHIVE, INSTALL_MARKER, or None (no sha256)."""
    key_fingerprint: str
    """Fingerprint of the public key the agent verified the package's signature with."""
    problem: str | None = None
    """Why package_sha256 is None when a marker exists but is unusable."""


def marker_path(folder: Path) -> Path:
    """``/work/model/package`` -> ``/work/model/package.sha256``."""
    return folder.with_name(folder.name + MARKER_SUFFIX)


def read_marker(folder: Path) -> tuple[str | None, str | None]:
    """(sha256, problem) from the install marker next to ``folder``; (None, None) if absent."""
    marker = marker_path(folder)
    try:
        text = marker.read_text("utf-8").strip().lower()
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{marker}: cannot read the install marker ({exc})"
    if not _SHA256.match(text):
        return None, f"{marker}: holds {text[:80]!r}, not a sha256 of 64 hex digits"
    return text, None


def identify(path: Path, key_fingerprint: str) -> PackageIdentity:
    """The identity of the package at ``path`` (an archive file or an unpacked folder)."""
    if path.is_file():
        return PackageIdentity(sha256_file(path), ARCHIVE, key_fingerprint)
    sha, problem = read_marker(path)
    if problem is not None:
        log.warning("%s; the package sha256 is reported as unknown", problem)
    return PackageIdentity(sha, INSTALL_MARKER if sha else None, key_fingerprint, problem)
