"""What a registered model version is: names, statuses, metadata and request shapes (pure).

A package is run by Greengrass on a device, not hosted by SageMaker, so a version
has no inference container: it is registered with ``SourceUri`` set to the
package's S3 URI (CreateModelPackage refuses ``SourceUri`` together with an
``InferenceSpecification``). ``CustomerMetadataProperties`` carry the edgekit facts
(name, semver, the package's SHA-256, runtime, AP50, the S3 URI), because model
package versions take no tags and ``ListModelPackages`` returns no ``SourceUri``.
No AWS calls here.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgekit.errors import ConfigurationError, RegistryError

APPROVED = "Approved"
PENDING = "PendingManualApproval"
REJECTED = "Rejected"
APPROVAL_STATUSES: tuple[str, ...] = (APPROVED, PENDING, REJECTED)
DEFAULT_PACKAGE_PREFIX = "edgekit/packages"

# CustomerMetadataProperties keys (1-128 characters of letters, digits, spaces, _.:/=+-@).
KEY_NAME = "edgekit:name"
KEY_SEMVER = "edgekit:semver"
KEY_SHA256 = "edgekit:sha256"
KEY_RUNTIME = "edgekit:runtime"
KEY_AP50 = "edgekit:ap50"
KEY_PACKAGE = "edgekit:package-s3-uri"
KEY_MODEL_SHA256 = "edgekit:model-sha256"
KEY_TARGET = "edgekit:compile-target"
# What the latest rollout of the version did (edgekit.rollout): PROMOTED or ROLLED_BACK,
# the failing gate, the rollout's id, its thing group and when it ended.
KEY_ROLLOUT = "edgekit:rollout"
KEY_ROLLOUT_GATE = "edgekit:rollout-gate"
KEY_ROLLOUT_ID = "edgekit:rollout-id"
KEY_ROLLOUT_GROUP = "edgekit:rollout-thing-group"
KEY_ROLLOUT_AT = "edgekit:rollout-finished-at"

_GROUP_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_METADATA_EXTRA = set("_.:/=+-@ ")


@dataclass(frozen=True)
class ModelVersion:
    """One version of a model package group."""

    arn: str
    group: str
    version: int
    approval_status: str
    created: dt.datetime | None
    semver: str | None = None
    package_s3_uri: str | None = None
    name: str | None = None
    sha256: str | None = None
    runtime: str | None = None
    ap50: float | None = None
    description: str | None = None
    rollout: str | None = None
    """PROMOTED or ROLLED_BACK: the outcome of the latest rollout of this version, if any."""
    rollout_gate: str | None = None
    approval_description: str | None = None

    @property
    def approved(self) -> bool:
        return self.approval_status == APPROVED

    def to_json(self) -> dict[str, Any]:
        return {
            "arn": self.arn,
            "group": self.group,
            "version": self.version,
            "approval_status": self.approval_status,
            "created": self.created.isoformat() if self.created else None,
            "semver": self.semver,
            "package_s3_uri": self.package_s3_uri,
            "name": self.name,
            "sha256": self.sha256,
            "runtime": self.runtime,
            "ap50": self.ap50,
            "description": self.description,
            "rollout": self.rollout,
            "rollout_gate": self.rollout_gate,
            "approval_description": self.approval_description,
        }


def check_group_name(name: str) -> str:
    if not isinstance(name, str) or not _GROUP_NAME.match(name):
        raise ConfigurationError(
            f"model package group {name!r}: use 1-63 letters, digits and hyphens, "
            "starting and ending with a letter or digit"
        )
    return name


def check_approval_status(status: str) -> str:
    if status not in APPROVAL_STATUSES:
        raise ConfigurationError(
            f"approval status {status!r} is not one of {', '.join(APPROVAL_STATUSES)}"
        )
    return status


def metadata_value_ok(value: str) -> bool:
    """Whether SageMaker accepts ``value`` as a customer metadata value."""
    return 1 <= len(value) <= 256 and all(c.isalnum() or c in _METADATA_EXTRA for c in value)


def customer_metadata(manifest: Any, *, sha256: str, package_s3_uri: str) -> dict[str, str]:
    """``CustomerMetadataProperties`` for a package: edgekit's facts as short strings."""
    data = _manifest_dict(manifest)
    metrics = data.get("metrics") or {}
    files = data.get("files") or {}
    model_entry = files.get(data.get("model_file")) or {}
    ap50 = metrics.get("ap50")
    props = {
        KEY_NAME: data.get("name"),
        KEY_SEMVER: data.get("version"),
        KEY_SHA256: sha256,
        KEY_RUNTIME: data.get("runtime"),
        KEY_AP50: f"{float(ap50):.4f}" if isinstance(ap50, int | float) else None,
        KEY_PACKAGE: package_s3_uri,
        KEY_MODEL_SHA256: model_entry.get("sha256") if isinstance(model_entry, dict) else None,
        KEY_TARGET: (data.get("compile") or {}).get("target"),
    }
    out: dict[str, str] = {}
    for key, value in props.items():
        if value is None or value == "":
            continue
        text = str(value)
        if not metadata_value_ok(text):
            raise RegistryError(
                f"customer metadata {key}={text!r} does not fit SageMaker's limits "
                "(1-256 letters, digits, spaces or _.:/=+-@); rename the package or its bucket"
            )
        out[key] = text
    return out


def _manifest_dict(manifest: Any) -> dict[str, Any]:
    """A manifest as a dict, from a Manifest, a BuiltPackage or a mapping."""
    inner = getattr(manifest, "manifest", None)  # BuiltPackage
    if inner is not None:
        manifest = inner
    if hasattr(manifest, "to_dict"):
        return dict(manifest.to_dict())
    if isinstance(manifest, Mapping):
        return dict(manifest)
    raise ConfigurationError(
        f"manifest: expected an edgekit Manifest, BuiltPackage or dict, got {type(manifest)}"
    )


def build_create_request(
    *,
    group: str,
    package_s3_uri: str,
    metadata: Mapping[str, str],
    approval_status: str,
    description: str | None = None,
    client_token: str | None = None,
) -> dict[str, Any]:
    """The ``CreateModelPackage`` parameters (pure; tests validate it with botocore)."""
    request: dict[str, Any] = {
        "ModelPackageGroupName": check_group_name(group),
        "ModelApprovalStatus": check_approval_status(approval_status),
        "SourceUri": package_s3_uri,
        "CustomerMetadataProperties": dict(metadata),
        "Domain": "COMPUTER_VISION",
        "Task": "OBJECT_DETECTION",
        "ClientToken": client_token or str(uuid.uuid4()),
    }
    if description:
        if len(description) > 1024:
            raise ConfigurationError("description: at most 1024 characters")
        request["ModelPackageDescription"] = description
    return request


def to_version(desc: Mapping[str, Any], group_hint: str | None = None) -> ModelVersion:
    props = dict(desc.get("CustomerMetadataProperties") or {})
    ap50_text = props.get(KEY_AP50)
    try:
        ap50 = float(ap50_text) if ap50_text is not None else None
    except ValueError:
        ap50 = None
    version = desc.get("ModelPackageVersion")
    if version is None:
        raise RegistryError(
            f"{desc.get('ModelPackageArn')}: not a versioned model package (no version number)"
        )
    return ModelVersion(
        arn=str(desc["ModelPackageArn"]),
        group=str(desc.get("ModelPackageGroupName") or group_hint or ""),
        version=int(version),
        approval_status=str(desc.get("ModelApprovalStatus") or ""),
        created=desc.get("CreationTime"),
        semver=props.get(KEY_SEMVER),
        package_s3_uri=desc.get("SourceUri") or props.get(KEY_PACKAGE),
        name=props.get(KEY_NAME),
        sha256=props.get(KEY_SHA256),
        runtime=props.get(KEY_RUNTIME),
        ap50=ap50,
        description=desc.get("ModelPackageDescription"),
        rollout=props.get(KEY_ROLLOUT),
        rollout_gate=props.get(KEY_ROLLOUT_GATE),
        approval_description=desc.get("ApprovalDescription"),
    )
