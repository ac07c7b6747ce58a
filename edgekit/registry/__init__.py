"""The model registry: signed model packages as versions of a SageMaker model package group.

Each registered version points at a signed package in S3 and carries its approval
status (``PendingManualApproval``, ``Approved``, ``Rejected``). The deploy notebook
deploys :func:`latest_approved`, so approving a version in SageMaker Studio (or with
``edgekit registry approve``) is what releases it to devices.

Owns: ``records`` (what a version is: statuses, customer metadata, request shapes; no
AWS calls), ``packages`` (package files in S3: upload, hash, download, and whether each
version's package is still there: ``package_states``) and ``versions``
(groups and versions in SageMaker: register, describe, approve, list, find, and the
outcome of a rollout on a version: ``record_rollout``). Refused
SageMaker/S3 calls become edgekit errors through :mod:`edgekit.awsapi`.

Must not import ``deploy``, ``provision``, ``workflow`` or ``cli``: they use the
registry, not the other way round.
"""

from __future__ import annotations

from edgekit.errors import RegistryError
from edgekit.registry.packages import (
    PACKAGE_PRESENT,
    download_package,
    package_states,
    parse_s3_uri,
    s3_object_sha256,
    upload_package,
)
from edgekit.registry.records import (
    APPROVAL_STATUSES,
    APPROVED,
    DEFAULT_PACKAGE_PREFIX,
    PENDING,
    REJECTED,
    ModelVersion,
    build_create_request,
    check_approval_status,
    check_group_name,
    customer_metadata,
)
from edgekit.registry.versions import (
    approve,
    describe_version,
    ensure_group,
    find_by_sha256,
    find_version,
    group_exists,
    latest_approved,
    latest_with_status,
    list_versions,
    record_rollout,
    register_model_version,
    reject,
    set_approval,
)

__all__ = [
    "APPROVAL_STATUSES",
    "APPROVED",
    "DEFAULT_PACKAGE_PREFIX",
    "PACKAGE_PRESENT",
    "PENDING",
    "REJECTED",
    "ModelVersion",
    "RegistryError",
    "approve",
    "build_create_request",
    "check_approval_status",
    "check_group_name",
    "customer_metadata",
    "describe_version",
    "download_package",
    "ensure_group",
    "find_by_sha256",
    "find_version",
    "group_exists",
    "latest_approved",
    "latest_with_status",
    "list_versions",
    "package_states",
    "parse_s3_uri",
    "record_rollout",
    "register_model_version",
    "reject",
    "s3_object_sha256",
    "set_approval",
    "upload_package",
]
