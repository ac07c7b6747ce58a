"""Notebook 02's output for notebook 03: the signed model package and its registry version."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edgekit.components import build_components, default_key_dir
from edgekit.files import sha256_file
from edgekit.handover import MODEL_PACKAGE, PathLike, read_handover
from edgekit.registry import (
    ModelVersion,
    ensure_group,
    list_versions,
    register_model_version,
    upload_package,
)
from edgekit.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackageRef:
    """A signed model package on this machine and the public key that verifies it."""

    path: Path
    public_key: Path
    source: str

    @property
    def key_dir(self) -> Path:
        return self.public_key.parent

    def sha256(self) -> str:
        return sha256_file(self.path)


def find_model_package(
    settings: Settings, output_dir: PathLike, *, work_dir: PathLike | None = None
) -> PackageRef:
    """Notebook 02's package (``model_package.json``), else the shipped model, packaged.

    The fallback is what ``build_components`` does by default: the model that ships
    with edgekit, packaged as version 1.0.0 and signed with the key in
    ``<local home>/keys`` (created on first use), written under ``work_dir``
    (default ``output_dir/components``). A ``model_package.json`` whose files are gone
    (a copied run folder, a deleted home) also falls back; ``source`` says why.
    """
    data = read_handover(output_dir, MODEL_PACKAGE)
    why = f"no {MODEL_PACKAGE} from notebook 02"
    if data is not None:
        where = Path(output_dir).expanduser() / MODEL_PACKAGE
        missing = [
            f"{key} {data.get(key)!r}"
            for key in ("package", "public_key")
            if not data.get(key) or not Path(str(data[key])).expanduser().is_file()
        ]
        if not missing:
            return PackageRef(
                Path(str(data["package"])).expanduser().resolve(),
                Path(str(data["public_key"])).expanduser().resolve(),
                f"notebook 02 ({where})",
            )
        why = f"{where} names files that are gone: {', '.join(missing)}; run notebook 02 again"
        log.warning("%s", why)
    out = Path(work_dir) if work_dir is not None else Path(output_dir).expanduser() / "components"
    (model,) = build_components(settings, out_dir=out, names=[settings.model_component])
    package = next(p for p in model.artifacts if p.name.endswith(".tar.gz"))
    return PackageRef(
        package.resolve(),
        (default_key_dir(settings) / "public_key.pem").resolve(),
        f"the model shipped with edgekit ({why})",
    )


@dataclass(frozen=True)
class Registration:
    """The registry version of a package, and whether this call registered it."""

    version: ModelVersion
    created: bool
    package_s3_uri: str | None = None


def find_registered(settings: Settings, group: str, sha256: str) -> ModelVersion | None:
    """The newest version of ``group`` whose package has this SHA-256 (None if none)."""
    ensure_group(group, settings)
    return next((v for v in list_versions(group, settings) if v.sha256 == sha256), None)


def ensure_registered(
    settings: Settings,
    group: str,
    package: PackageRef,
    *,
    bucket: str | None = None,
    approval_status: str = "Approved",
    description: str | None = None,
) -> Registration:
    """Register ``package`` in model package group ``group`` unless a version already has it.

    A package is "already registered" when a version records the same SHA-256; that
    version is returned unchanged, whatever its approval status. Otherwise the package
    is verified, uploaded to ``bucket`` (under a content-addressed key, so an older
    version's object is never overwritten) and registered with ``approval_status``.
    """
    existing = find_registered(settings, group, package.sha256())
    if existing is not None:
        return Registration(existing, created=False, package_s3_uri=existing.package_s3_uri)
    uri, manifest, sha = upload_package(
        settings, package.path, public_key=package.public_key, bucket=bucket
    )
    version = register_model_version(
        settings,
        group=group,
        package_s3_uri=uri,
        manifest=manifest,
        approval_status=approval_status,
        sha256=sha,
        description=description,
    )
    return Registration(version, created=True, package_s3_uri=uri)


def version_rows(versions: Iterable[ModelVersion], *, current: int | None = None) -> list[dict]:
    """Registry versions as table rows; ``current`` marks the one being deployed."""
    rows = []
    for v in versions:
        rows.append(
            {
                "version": v.version,
                "semver": v.semver or "",
                "status": v.approval_status,
                "ap50": v.ap50,
                "sha256": (v.sha256 or "")[:12],
                "created": v.created.isoformat(timespec="seconds") if v.created else "",
                "deploy": "◀ deploying" if current is not None and v.version == current else "",
            }
        )
    return rows


#: ``format_table`` columns of :func:`version_rows`.
VERSION_COLUMNS = [
    ("version", "version"),
    ("semver", "model version"),
    ("status", "approval"),
    ("ap50", "AP50"),
    ("sha256", "SHA-256"),
    ("created", "registered"),
    ("deploy", ""),
]
