"""The model registry: signed model packages as versions of a SageMaker model package group.

Each registered version points at a signed package in S3 and carries its
approval status (``PendingManualApproval``, ``Approved``, ``Rejected``). The deploy
notebook deploys :func:`latest_approved`, so approving a version in SageMaker
Studio (or with ``edgekit registry approve``) is what releases it to devices.

A package is run by Greengrass on a device, not hosted by SageMaker, so a version
has no inference container: it is registered with ``SourceUri`` set to the
package's S3 URI (CreateModelPackage refuses ``SourceUri`` together with an
``InferenceSpecification``). ``CustomerMetadataProperties`` carry the edgekit facts
(name, semver, the package's SHA-256, runtime, AP50, the S3 URI), because model
package versions take no tags and ``ListModelPackages`` returns no ``SourceUri``.

Owns: model package groups and versions, their approval, and moving package files
to and from S3 for them. Refused SageMaker/S3 calls become edgekit errors through
:mod:`edgekit.awsapi`. Must not import ``deploy``, ``provision`` or ``workflow``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError

from edgekit import clients
from edgekit.awsapi import error_code, error_message, is_not_found, map_client_error, paginate
from edgekit.components.profiles import profile_for
from edgekit.errors import ConfigurationError, EdgekitError, PackageError, RegistryError
from edgekit.files import sha256_file
from edgekit.package.verify import verify_package
from edgekit.settings import Settings

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

_GROUP_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_S3_URI = re.compile(r"^s3://([^/]+)/(.+)$")
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
        }


def _sagemaker_not_found(exc: BaseException) -> bool:
    """SageMaker's Describe* calls answer ValidationException for a name that does not exist."""
    return error_code(exc) == "ValidationException" or is_not_found(exc)


def _registry_error(exc: BaseException, resource: str, action: str, hint: str = "") -> EdgekitError:
    """The edgekit error for a refused registry call (RegistryError unless denied/not found)."""
    return map_client_error(exc, resource, action, hint=hint, default=RegistryError)


def _client(service: str, settings: Settings | None, client: Any = None) -> Any:
    if client is not None:
        return client
    return clients.client(service, settings or Settings.from_env())


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


def _metadata_value_ok(value: str) -> bool:
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
        if not _metadata_value_ok(text):
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


def parse_s3_uri(uri: str) -> tuple[str, str]:
    match = _S3_URI.match(uri or "")
    if match is None:
        raise ConfigurationError(f"package_s3_uri {uri!r} is not an s3://bucket/key URI")
    return match.group(1), match.group(2)


def s3_object_sha256(s3: Any, uri: str) -> str:
    """SHA-256 of an S3 object, streamed; RegistryError naming the URI if it is missing."""
    bucket, key = parse_s3_uri(uri)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as exc:
        if is_not_found(exc):
            raise RegistryError(
                f"{uri} does not exist; upload the package first (upload_package or "
                "`edgekit registry register`)"
            ) from None
        raise _registry_error(exc, uri, "read it") from exc
    digest = hashlib.sha256()
    try:
        for chunk in iter(lambda: body.read(1 << 20), b""):
            digest.update(chunk)
    finally:
        body.close()
    return digest.hexdigest()


def ensure_group(
    name: str,
    settings: Settings | None = None,
    *,
    description: str | None = None,
    client: Any = None,
) -> str:
    """The ARN of model package group ``name``, created if it does not exist."""
    check_group_name(name)
    sm = _client("sagemaker", settings, client)
    arn = _group_arn(sm, name)
    if arn is not None:
        return arn
    kwargs: dict[str, Any] = {"ModelPackageGroupName": name}
    kwargs["ModelPackageGroupDescription"] = description or (
        "edgekit model packages for Greengrass devices"
    )
    try:
        return str(sm.create_model_package_group(**kwargs)["ModelPackageGroupArn"])
    except ClientError as exc:
        # Another notebook created it between the two calls.
        if error_code(exc) in ("ResourceInUse", "ConflictException") or "already exists" in (
            error_message(exc)
        ):
            found = _group_arn(sm, name)
            if found is not None:
                return found
        raise _registry_error(exc, f"model package group {name}", "create it") from exc


def _group_arn(sm: Any, group: str) -> str | None:
    """The ARN of model package group ``group``, or None where SageMaker has no such group."""
    try:
        desc = sm.describe_model_package_group(ModelPackageGroupName=group)
    except ClientError as exc:
        if _sagemaker_not_found(exc):
            return None
        raise _registry_error(exc, f"model package group {group}", "describe it") from exc
    return str(desc["ModelPackageGroupArn"])


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


def register_model_version(
    settings: Settings | None = None,
    *,
    group: str,
    package_s3_uri: str,
    manifest: Any,
    approval_status: str = PENDING,
    description: str | None = None,
    sha256: str | None = None,
) -> ModelVersion:
    """Register the package at ``package_s3_uri`` as the next version of ``group``.

    The S3 object is read and hashed first: registering a URI that does not exist,
    or whose bytes differ from ``sha256`` (when given), is refused.
    """
    check_group_name(group)
    check_approval_status(approval_status)
    s3 = _client("s3", settings)
    sm = _client("sagemaker", settings)
    actual = s3_object_sha256(s3, package_s3_uri)
    expected = sha256 or getattr(manifest, "sha256", None)  # a BuiltPackage knows its hash
    if expected and expected != actual:
        raise PackageError(
            f"{package_s3_uri}: SHA-256 {actual} differs from the package's {expected}; "
            "upload the package again"
        )
    metadata = customer_metadata(manifest, sha256=actual, package_s3_uri=package_s3_uri)
    ensure_group(group, settings, client=sm)
    request = build_create_request(
        group=group,
        package_s3_uri=package_s3_uri,
        metadata=metadata,
        approval_status=approval_status,
        description=description,
    )
    try:
        arn = str(sm.create_model_package(**request)["ModelPackageArn"])
    except ClientError as exc:
        raise _registry_error(
            exc, f"model package group {group}", f"register {package_s3_uri} in it"
        ) from exc
    return describe_version(arn, settings, client=sm)


def upload_package(
    settings: Settings | None,
    package: str | os.PathLike[str],
    *,
    public_key: Any,
    bucket: str | None = None,
    prefix: str = DEFAULT_PACKAGE_PREFIX,
) -> tuple[str, Any, str]:
    """Verify a package file and upload it; ``(s3 uri, manifest, sha256)``.

    The key is ``<prefix>/<name>/<version>/<sha256[:16]>/<file name>``: content-addressed,
    so re-packaging the same version never overwrites the object an earlier registered
    model version points to. The bucket is the argument, else the artifact bucket
    components use (created on the local backend).
    """
    settings = settings or Settings.from_env()
    path = Path(package)
    if not path.is_file():
        raise PackageError(f"{path}: package file not found")
    manifest = verify_package(path, public_key)
    s3 = _client("s3", settings)
    try:
        account = str(_client("sts", settings).get_caller_identity()["Account"])
    except ClientError as exc:
        raise map_client_error(exc, "the AWS account", "read the caller identity") from exc
    bucket = profile_for(settings).ensure_bucket(s3, bucket, account)
    digest = sha256_file(path)
    key = f"{prefix.strip('/')}/{manifest.name}/{manifest.version}/{digest[:16]}/{path.name}"
    try:
        s3.upload_file(str(path), bucket, key)
    except (ClientError, S3UploadFailedError) as exc:
        raise RegistryError(
            f"{path}: cannot upload it to s3://{bucket}/{key}: {exc}; check the bucket "
            "(--bucket) and the s3:PutObject permission"
        ) from exc
    return f"s3://{bucket}/{key}", manifest, digest


def _to_version(desc: Mapping[str, Any], group_hint: str | None = None) -> ModelVersion:
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
    )


def describe_version(
    arn: str, settings: Settings | None = None, *, client: Any = None
) -> ModelVersion:
    """One version, by its model package ARN."""
    return _to_version(_describe_package(_client("sagemaker", settings, client), arn))


def _describe_package(sm: Any, arn: str) -> Mapping[str, Any]:
    try:
        return dict(sm.describe_model_package(ModelPackageName=arn))
    except ClientError as exc:
        if _sagemaker_not_found(exc):
            raise RegistryError(
                f"model package {arn} not found: {error_message(exc)}; list the versions with "
                "`edgekit registry list --group GROUP`"
            ) from None
        raise _registry_error(exc, f"model package {arn}", "describe it") from exc


def set_approval(
    arn: str,
    status: str,
    settings: Settings | None = None,
    *,
    description: str | None = None,
    client: Any = None,
) -> ModelVersion:
    """Set the approval status of one version; returns it as now stored."""
    check_approval_status(status)
    sm = _client("sagemaker", settings, client)
    current = _describe_package(sm, arn)
    request: dict[str, Any] = {"ModelPackageArn": arn, "ModelApprovalStatus": status}
    if description:
        request["ApprovalDescription"] = description
    props = current.get("CustomerMetadataProperties")
    if props:
        # Unchanged values: a no-op on AWS; moto's UpdateModelPackage replaces the whole
        # map with what the request carries, and would otherwise drop edgekit's metadata.
        request["CustomerMetadataProperties"] = dict(props)
    try:
        sm.update_model_package(**request)
    except ClientError as exc:
        raise _registry_error(exc, f"model package {arn}", f"set it to {status}") from exc
    return describe_version(arn, settings, client=sm)


def approve(
    arn: str,
    settings: Settings | None = None,
    *,
    description: str | None = None,
    client: Any = None,
) -> ModelVersion:
    """Approve a version for deployment."""
    return set_approval(arn, APPROVED, settings, description=description, client=client)


def reject(
    arn: str,
    settings: Settings | None = None,
    *,
    description: str | None = None,
    client: Any = None,
) -> ModelVersion:
    """Reject a version: :func:`latest_approved` skips it from now on."""
    return set_approval(arn, REJECTED, settings, description=description, client=client)


def _summaries(sm: Any, group: str, status: str | None = None) -> Iterator[Mapping[str, Any]]:
    kwargs: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
    }
    if status is not None:
        kwargs["ModelApprovalStatus"] = check_approval_status(status)
    try:
        yield from paginate(sm, "list_model_packages", "ModelPackageSummaryList", **kwargs)
    except ClientError as exc:
        raise _registry_error(exc, f"model package group {group}", "list its versions") from exc


def _require_group(sm: Any, group: str) -> None:
    check_group_name(group)
    if _group_arn(sm, group) is None:
        raise RegistryError(
            f"model package group {group} does not exist; register a version first "
            "(register_model_version or `edgekit registry register`)"
        )


def list_versions(
    group: str,
    settings: Settings | None = None,
    *,
    status: str | None = None,
    client: Any = None,
) -> list[ModelVersion]:
    """Every version of ``group`` (optionally only one approval status), newest first."""
    sm = _client("sagemaker", settings, client)
    _require_group(sm, group)
    versions = [
        _to_version(_describe_package(sm, s["ModelPackageArn"]), group)
        for s in _summaries(sm, group, status)
    ]
    return sorted(versions, key=lambda v: v.version, reverse=True)


def find_version(
    group: str,
    version: int,
    settings: Settings | None = None,
    *,
    client: Any = None,
) -> ModelVersion:
    """Version number ``version`` of ``group``."""
    sm = _client("sagemaker", settings, client)
    _require_group(sm, group)
    for summary in _summaries(sm, group):
        if int(summary.get("ModelPackageVersion") or -1) == int(version):
            return describe_version(summary["ModelPackageArn"], settings, client=sm)
    raise RegistryError(f"model package group {group} has no version {version}")


def latest_approved(
    group: str, settings: Settings | None = None, *, client: Any = None
) -> ModelVersion | None:
    """The Approved version with the highest version number, or None if none is approved."""
    sm = _client("sagemaker", settings, client)
    _require_group(sm, group)
    approved = [s for s in _summaries(sm, group, APPROVED) if s.get("ModelPackageVersion")]
    if not approved:
        return None
    newest = max(approved, key=lambda s: int(s["ModelPackageVersion"]))
    found = describe_version(newest["ModelPackageArn"], settings, client=sm)
    if found.approval_status != APPROVED:  # changed between the two calls
        raise RegistryError(
            f"{found.arn} is now {found.approval_status}; run latest_approved again"
        )
    return found


def download_package(
    version: ModelVersion,
    dest: str | os.PathLike[str],
    settings: Settings | None = None,
) -> Path:
    """Download a version's package into folder ``dest``, checking the registered SHA-256.

    What the deploy notebook does with :func:`latest_approved`'s answer before it
    publishes the model component; the signature is checked later, on the device.
    """
    if not version.package_s3_uri:
        raise RegistryError(f"{version.arn}: no package S3 URI in its metadata")
    bucket, key = parse_s3_uri(version.package_s3_uri)
    folder = Path(dest)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / key.rsplit("/", 1)[-1]
    partial = target.with_name(target.name + ".partial")
    try:
        try:
            _client("s3", settings).download_file(bucket, key, str(partial))
        except ClientError as exc:
            raise _registry_error(
                exc,
                version.package_s3_uri,
                "download it",
                hint=f"version {version.version} of {version.group} points at it; "
                "register the package again if it was deleted",
            ) from exc
        digest = sha256_file(partial)
        if version.sha256 and digest != version.sha256:
            raise PackageError(
                f"{version.package_s3_uri}: SHA-256 {digest} differs from the registered "
                f"{version.sha256} (version {version.version} of {version.group}); the object "
                "was replaced after registration: register the package again"
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


__all__ = [
    "APPROVAL_STATUSES",
    "APPROVED",
    "PENDING",
    "REJECTED",
    "ModelVersion",
    "RegistryError",
    "approve",
    "build_create_request",
    "customer_metadata",
    "describe_version",
    "download_package",
    "ensure_group",
    "find_version",
    "latest_approved",
    "list_versions",
    "register_model_version",
    "reject",
    "set_approval",
    "upload_package",
]
