"""Model package groups and versions in SageMaker: register, describe, approve, list, find.

The deploy notebook deploys :func:`latest_approved`, so approving a version in
SageMaker Studio (or with ``edgekit registry approve``) is what releases it to devices.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from botocore.exceptions import ClientError

from edgekit.awsapi import error_code, error_message, is_not_found, paginate
from edgekit.errors import PackageError, RegistryError
from edgekit.registry.packages import registry_client, registry_error, s3_object_sha256
from edgekit.registry.records import (
    APPROVED,
    PENDING,
    REJECTED,
    ModelVersion,
    build_create_request,
    check_approval_status,
    check_group_name,
    customer_metadata,
    metadata_value_ok,
    to_version,
)
from edgekit.settings import Settings


def sagemaker_not_found(exc: BaseException) -> bool:
    """SageMaker's Describe* calls answer ValidationException for a name that does not exist."""
    return error_code(exc) == "ValidationException" or is_not_found(exc)


def ensure_group(
    name: str,
    settings: Settings | None = None,
    *,
    description: str | None = None,
    client: Any = None,
) -> str:
    """The ARN of model package group ``name``, created if it does not exist."""
    check_group_name(name)
    sm = registry_client("sagemaker", settings, client)
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
        raise registry_error(exc, f"model package group {name}", "create it") from exc


def _group_arn(sm: Any, group: str) -> str | None:
    """The ARN of model package group ``group``, or None where SageMaker has no such group."""
    try:
        desc = sm.describe_model_package_group(ModelPackageGroupName=group)
    except ClientError as exc:
        if sagemaker_not_found(exc):
            return None
        raise registry_error(exc, f"model package group {group}", "describe it") from exc
    return str(desc["ModelPackageGroupArn"])


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
    s3 = registry_client("s3", settings)
    sm = registry_client("sagemaker", settings)
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
        raise registry_error(
            exc, f"model package group {group}", f"register {package_s3_uri} in it"
        ) from exc
    return describe_version(arn, settings, client=sm)


def describe_version(
    arn: str, settings: Settings | None = None, *, client: Any = None
) -> ModelVersion:
    """One version, by its model package ARN."""
    return to_version(_describe_package(registry_client("sagemaker", settings, client), arn))


def _describe_package(sm: Any, arn: str) -> Mapping[str, Any]:
    try:
        return dict(sm.describe_model_package(ModelPackageName=arn))
    except ClientError as exc:
        if sagemaker_not_found(exc):
            raise RegistryError(
                f"model package {arn} not found: {error_message(exc)}; list the versions with "
                "`edgekit registry list --group GROUP`"
            ) from None
        raise registry_error(exc, f"model package {arn}", "describe it") from exc


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
    sm = registry_client("sagemaker", settings, client)
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
        raise registry_error(exc, f"model package {arn}", f"set it to {status}") from exc
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
        raise registry_error(exc, f"model package group {group}", "list its versions") from exc


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
    sm = registry_client("sagemaker", settings, client)
    _require_group(sm, group)
    versions = [
        to_version(_describe_package(sm, s["ModelPackageArn"]), group)
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
    sm = registry_client("sagemaker", settings, client)
    _require_group(sm, group)
    for summary in _summaries(sm, group):
        if int(summary.get("ModelPackageVersion") or -1) == int(version):
            return describe_version(summary["ModelPackageArn"], settings, client=sm)
    raise RegistryError(f"model package group {group} has no version {version}")


def latest_with_status(
    group: str, status: str, settings: Settings | None = None, *, client: Any = None
) -> ModelVersion | None:
    """The version with the highest version number among those with approval ``status``,
    or None if there is none."""
    sm = registry_client("sagemaker", settings, client)
    _require_group(sm, group)
    matching = [s for s in _summaries(sm, group, status) if s.get("ModelPackageVersion")]
    if not matching:
        return None
    newest = max(matching, key=lambda s: int(s["ModelPackageVersion"]))
    found = describe_version(newest["ModelPackageArn"], settings, client=sm)
    if found.approval_status != status:  # changed between the two calls
        raise RegistryError(f"{found.arn} is now {found.approval_status}; look again")
    return found


def latest_approved(
    group: str, settings: Settings | None = None, *, client: Any = None
) -> ModelVersion | None:
    """The Approved version with the highest version number, or None if none is approved."""
    return latest_with_status(group, APPROVED, settings, client=client)


def group_exists(group: str, settings: Settings | None = None, *, client: Any = None) -> bool:
    """Whether model package group ``group`` exists."""
    sm = registry_client("sagemaker", settings, client)
    return _group_arn(sm, check_group_name(group)) is not None


def find_by_sha256(
    group: str, sha256: str, settings: Settings | None = None, *, client: Any = None
) -> ModelVersion | None:
    """The newest version of ``group`` whose package has this sha256, or None."""
    sm = registry_client("sagemaker", settings, client)
    _require_group(sm, group)
    for summary in _summaries(sm, group):
        found = to_version(_describe_package(sm, summary["ModelPackageArn"]), group)
        if found.sha256 == sha256:
            return found
    return None


def record_rollout(
    arn: str,
    outcome: Mapping[str, str],
    settings: Settings | None = None,
    *,
    description: str,
    client: Any = None,
) -> ModelVersion:
    """Put a rollout's outcome on a version: ``outcome`` merged into its customer metadata
    (the ``edgekit:rollout*`` keys) and ``description`` as its approval description. The
    approval status itself is left as it is: approving stays a person's decision."""
    sm = registry_client("sagemaker", settings, client)
    current = _describe_package(sm, arn)
    props = {**dict(current.get("CustomerMetadataProperties") or {}), **dict(outcome)}
    for key, value in props.items():
        if not metadata_value_ok(str(value)):
            raise RegistryError(
                f"model package {arn}: metadata {key}={value!r} is not a valid value (1-256 "
                "letters, digits, spaces and _.:/=+-@)"
            )
    request: dict[str, Any] = {
        "ModelPackageArn": arn,
        "ModelApprovalStatus": current.get("ModelApprovalStatus") or PENDING,
        "ApprovalDescription": description[:1000],
        "CustomerMetadataProperties": props,
    }
    try:
        sm.update_model_package(**request)
    except ClientError as exc:
        raise registry_error(exc, f"model package {arn}", "record the rollout on it") from exc
    return describe_version(arn, settings, client=sm)
