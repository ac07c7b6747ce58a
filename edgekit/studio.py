"""SageMaker Studio support: the execution role and bucket a notebook should use.

In SageMaker Studio (and on a SageMaker notebook instance) the platform writes
``/opt/ml/metadata/resource-metadata.json`` and the ``sagemaker`` SDK knows the
notebook's execution role (``sagemaker.get_execution_role()``) and its default
bucket (``sagemaker.Session().default_bucket()``, ``sagemaker-{region}-{account}``).
Elsewhere edgekit falls back to explicit settings and to STS. The ``sagemaker``
package belongs to the ``aws`` extra and is imported only inside the functions
that need it, so edgekit works without it everywhere but in Studio.

Order of precedence, for the role and the bucket alike: the explicit argument,
then the environment (``EDGEKIT_SAGEMAKER_ROLE_ARN``, ``EDGEKIT_ARTIFACT_BUCKET``),
then the Studio SDK (backend ``aws`` only), then the fallback (STS caller role;
``<project>-artifacts-<account>-<region>``; on the local backend a role created in
moto's IAM). The Studio SDK is never asked on the local backend: it would talk to
real AWS, while every other call lands on loopback.

Owns: which execution role and bucket SageMaker work uses, and the IAM permissions the
notebooks' role needs. Imports ``clients``, ``awsapi`` and ``components.profiles``; never
``compile``, ``deploy`` or ``notebook`` (they call it, not the other way round).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from botocore.exceptions import ClientError

from edgekit import clients
from edgekit.awsapi import ACCESS_DENIED_CODES, error_code, map_client_error
from edgekit.components.profiles import default_bucket as project_bucket
from edgekit.components.profiles import profile_for
from edgekit.components.publish import caller_identity
from edgekit.errors import ConfigurationError
from edgekit.settings import Settings

#: Written by SageMaker into every Studio app and notebook instance (the SDK reads it too).
METADATA_FILE = Path("/opt/ml/metadata/resource-metadata.json")
ROLE_ENV = "EDGEKIT_SAGEMAKER_ROLE_ARN"
BUCKET_ENV = "EDGEKIT_ARTIFACT_BUCKET"  # the same variable component publishing reads
INSTALL_HINT = "pip install 'edgekit-inspection[aws]'"

# Trust policy of the role edgekit creates on the local backend: what SageMaker needs to
# assume a role, so the local state looks like a correctly prepared account.
SAGEMAKER_TRUST_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "sagemaker.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}

_ASSUMED_ROLE = re.compile(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/.+$")
_IAM_ROLE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-/]+$")


@dataclass(frozen=True)
class StudioDefaults:
    """The execution role and bucket to use, and where each came from."""

    role_arn: str
    bucket: str
    role_source: str
    """``argument``, ``environment``, ``studio``, ``sts`` or ``local``."""
    bucket_source: str
    """``argument``, ``environment``, ``studio`` or ``default``."""


def studio_metadata(path: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """The parsed resource metadata file, or None outside SageMaker.

    A file that exists but is not a JSON object raises ConfigurationError: it
    means the environment is SageMaker but broken, which should not pass silently.
    """
    file = Path(path) if path is not None else METADATA_FILE
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigurationError(
            f"{file}: cannot read the SageMaker metadata file ({exc})"
        ) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{file}: expected a JSON object")
    return data


def in_studio(path: str | os.PathLike[str] | None = None) -> bool:
    """True inside SageMaker Studio or a notebook instance (the metadata file names a resource).

    Studio writes ``DomainId`` (and ``UserProfileName`` or ``SpaceName``); a notebook
    instance writes ``ResourceArn``/``ResourceName``. Either way the SDK's
    defaults apply.
    """
    data = studio_metadata(path)
    return bool(data) and any(data.get(k) for k in ("DomainId", "ResourceArn", "ResourceName"))


def studio_region(path: str | os.PathLike[str] | None = None) -> str | None:
    """The region of the Studio app or notebook instance (from its ``ResourceArn``), or None.

    Settings default to us-east-1; a notebook in Studio passes this as ``region``.
    """
    data = studio_metadata(path) or {}
    parts = str(data.get("ResourceArn") or "").split(":")
    return parts[3] if len(parts) > 4 and parts[0] == "arn" and parts[3] else None


def sagemaker_sdk() -> ModuleType:
    """The ``sagemaker`` package, or ConfigurationError saying how to install it."""
    try:
        import sagemaker
    except ImportError as exc:
        raise ConfigurationError(
            "the SageMaker Python SDK (package 'sagemaker') is not installed; it is needed to "
            f"read the Studio execution role and default bucket: run `{INSTALL_HINT}`, or set "
            f"{ROLE_ENV} and {BUCKET_ENV}"
        ) from exc
    return sagemaker


def execution_role() -> str:
    """The notebook's execution role, as the SageMaker SDK resolves it."""
    sdk = sagemaker_sdk()
    try:
        return str(sdk.get_execution_role())
    except Exception as exc:  # the SDK raises ValueError / ClientError, both worth one line
        raise ConfigurationError(
            f"sagemaker.get_execution_role() failed ({exc}); set {ROLE_ENV} to the role ARN"
        ) from exc


def default_bucket() -> str:
    """The SageMaker SDK's default bucket (it creates the bucket if needed)."""
    sdk = sagemaker_sdk()
    try:
        return str(sdk.Session().default_bucket())
    except Exception as exc:
        raise ConfigurationError(
            f"sagemaker.Session().default_bucket() failed ({exc}); set {BUCKET_ENV}"
        ) from exc


def role_arn_from_caller(caller_arn: str) -> str | None:
    """The IAM role ARN behind an STS caller ARN, or None if the caller is not a role.

    ``arn:aws:sts::123456789012:assumed-role/Name/session`` becomes
    ``arn:aws:iam::123456789012:role/Name`` (without the role's path, which STS does
    not report; :func:`studio_defaults` asks IAM for the full ARN).
    """
    if _IAM_ROLE.match(caller_arn):
        return caller_arn
    match = _ASSUMED_ROLE.match(caller_arn)
    if match is None:
        return None
    partition, account, name = match.groups()
    return f"arn:{partition}:iam::{account}:role/{name}"


def check_role_arn(role_arn: str, *, source: str) -> str:
    if not _IAM_ROLE.match(role_arn):
        raise ConfigurationError(
            f"{source}: {role_arn!r} is not an IAM role ARN "
            "(expected arn:aws:iam::<12-digit account>:role/<name>)"
        )
    return role_arn


def local_role_name(settings: Settings) -> str:
    return f"{settings.project_name}-sagemaker-execution"[:64]


def ensure_local_role(settings: Settings) -> str:
    """The local backend's stand-in execution role in moto's IAM (created on first use)."""
    if not profile_for(settings).stand_in_role:
        raise ConfigurationError("ensure_local_role is for the local backend only")
    iam = clients.client("iam", settings)
    name = local_role_name(settings)
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            raise map_client_error(exc, f"IAM role {name}", "read it") from exc
    try:
        created = iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(SAGEMAKER_TRUST_POLICY),
            Description="edgekit local backend: stand-in SageMaker execution role",
        )
    except ClientError as exc:
        raise map_client_error(
            exc, f"IAM role {name}", "create it", hint="check that `edgekit local up` runs"
        ) from exc
    return str(created["Role"]["Arn"])


def _role_from_sts(settings: Settings) -> tuple[str | None, str, str]:
    """(role ARN or None, caller ARN, account) from STS GetCallerIdentity."""
    identity = caller_identity(settings)
    caller = str(identity["Arn"])
    account = str(identity["Account"])
    role = role_arn_from_caller(caller)
    if role is not None and ":assumed-role/" in caller:
        # STS drops the role's path; IAM knows the exact ARN (needs iam:GetRole).
        name = role.rsplit("/", 1)[-1]
        try:
            iam = clients.client("iam", settings)
            role = str(iam.get_role(RoleName=name)["Role"]["Arn"])
        except ClientError as exc:
            code = error_code(exc)
            if code not in ACCESS_DENIED_CODES and code != "NoSuchEntity":
                raise map_client_error(exc, f"IAM role {name}", "read it") from exc
    return role, caller, account


def studio_defaults(
    settings: Settings | None = None,
    *,
    role_arn: str | None = None,
    bucket: str | None = None,
    metadata_path: str | os.PathLike[str] | None = None,
) -> StudioDefaults:
    """The execution role and bucket for SageMaker jobs and uploads (see the module doc)."""
    settings = settings or Settings.from_env()
    profile = profile_for(settings)
    use_sdk = profile.studio_sdk and in_studio(metadata_path)
    account: str | None = None

    if role_arn:
        role, role_source = check_role_arn(role_arn, source="role_arn"), "argument"
    elif os.environ.get(ROLE_ENV):
        role, role_source = check_role_arn(os.environ[ROLE_ENV], source=ROLE_ENV), "environment"
    elif use_sdk:
        role, role_source = check_role_arn(execution_role(), source="SageMaker SDK"), "studio"
    else:
        found, caller, account = _role_from_sts(settings)
        if found is not None:
            role, role_source = found, "sts"
        elif profile.stand_in_role:
            role, role_source = ensure_local_role(settings), "local"
        else:
            raise ConfigurationError(
                f"no SageMaker execution role: the caller {caller} is not an IAM role; pass "
                f"role_arn, set {ROLE_ENV} to a role SageMaker may assume (trust policy for "
                "sagemaker.amazonaws.com), or run in SageMaker Studio"
            )

    if bucket:
        name, bucket_source = bucket, "argument"
    elif os.environ.get(BUCKET_ENV):
        name, bucket_source = os.environ[BUCKET_ENV], "environment"
    elif use_sdk:
        name, bucket_source = default_bucket(), "studio"
    else:
        if account is None:
            account = str(caller_identity(settings)["Account"])
        name, bucket_source = project_bucket(settings, account), "default"
    return StudioDefaults(role, name, role_source, bucket_source)


# IAM actions the notebooks' role needs, per service: what the CloudFormation stack creates
# with the caller's permissions, and every call edgekit makes. Names are IAM action names.
IAM_ACTIONS: dict[str, tuple[str, ...]] = {
    "cloudformation": (
        "CreateChangeSet",
        "DescribeChangeSet",
        "ExecuteChangeSet",
        "DeleteChangeSet",
        "DescribeStacks",
        "DescribeStackEvents",
        "ListStackResources",
        "DeleteStack",
    ),
    "iam": (
        "CreateRole",
        "DeleteRole",
        "GetRole",
        "PassRole",
        "PutRolePolicy",
        "DeleteRolePolicy",
        "AttachRolePolicy",
        "DetachRolePolicy",
        "CreatePolicy",
        "DeletePolicy",
        "GetPolicy",
        "CreateInstanceProfile",
        "DeleteInstanceProfile",
        "AddRoleToInstanceProfile",
        "RemoveRoleFromInstanceProfile",
    ),
    "iot": (
        "CreateThingGroup",
        "DeleteThingGroup",
        "DescribeThingGroup",
        "ListThingsInThingGroup",
        "AddThingToThingGroup",
        "RemoveThingFromThingGroup",
        "DescribeThing",
        "DeleteThing",
        "CreatePolicy",
        "DeletePolicy",
        "GetPolicy",
        "DetachPolicy",
        "ListTargetsForPolicy",
        "CreateRoleAlias",
        "DeleteRoleAlias",
        "DescribeRoleAlias",
        "DescribeEndpoint",
        "Connect",
        "Subscribe",
        "Receive",
    ),
    "greengrass": (
        "CreateComponentVersion",
        "DescribeComponent",
        "ListComponents",
        "ListComponentVersions",
        "DeleteComponent",
        "GetComponent",
        "CreateDeployment",
        "GetDeployment",
        "ListDeployments",
        "CancelDeployment",
        "ListCoreDevices",
        "GetCoreDevice",
        "DeleteCoreDevice",
        "ListEffectiveDeployments",
        "ListInstalledComponents",
    ),
    "s3": (
        "CreateBucket",
        "ListBucket",
        "ListBucketVersions",
        "GetBucketLocation",
        "PutObject",
        "GetObject",
        "DeleteObject",
        "DeleteObjectVersion",
        "DeleteBucket",
    ),
    "sagemaker": (
        "CreateCompilationJob",
        "DescribeCompilationJob",
        "StopCompilationJob",
        "CreateModelPackageGroup",
        "DescribeModelPackageGroup",
        "CreateModelPackage",
        "DescribeModelPackage",
        "ListModelPackages",
        "UpdateModelPackage",
    ),
    "sts": ("GetCallerIdentity",),
}

# Where each group applies; the notebooks show this next to the list.
_IAM_NOTES: dict[str, str] = {
    "cloudformation": "the device stack (`edgekit stack deploy`, `edgekit stack delete`)",
    "iam": "roles the stack creates; `iam:PassRole` on the token-exchange role, the EC2 "
    "instance role and the SageMaker execution role",
    "iot": "thing group, IoT policies and role alias of the stack; MQTT results subscription",
    "greengrass": "Greengrass v2 components, deployments and core-device status",
    "s3": "the artifact bucket (`arn:aws:s3:::BUCKET` and `arn:aws:s3:::BUCKET/*`)",
    "sagemaker": "Neo compilation jobs and the model registry (model package groups)",
    "sts": "account id and caller role",
}
# The stack also launches an EC2 instance; those actions depend on the template's
# resources and are listed separately so they are easy to drop for a local-only setup.
EC2_ACTIONS: tuple[str, ...] = (
    "ec2:RunInstances",
    "ec2:TerminateInstances",
    "ec2:DescribeInstances",
    "ec2:CreateSecurityGroup",
    "ec2:DeleteSecurityGroup",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:AuthorizeSecurityGroupEgress",
    "ec2:RevokeSecurityGroupEgress",
    "ec2:DescribeSecurityGroups",
    "ec2:CreateTags",
    "ssm:GetParameters",
)


def iam_actions() -> list[str]:
    """Every IAM action of :data:`IAM_ACTIONS` and :data:`EC2_ACTIONS`, as ``service:Action``."""
    actions = [f"{svc}:{action}" for svc, names in IAM_ACTIONS.items() for action in names]
    return actions + list(EC2_ACTIONS)


def iam_policy_document(bucket: str | None = None) -> dict[str, Any]:
    """An identity policy granting :func:`iam_actions`; S3 scoped to ``bucket`` if given."""
    s3 = [f"s3:{a}" for a in IAM_ACTIONS["s3"]]
    others = [a for a in iam_actions() if not a.startswith("s3:")]
    s3_resources = [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"] if bucket else ["*"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "EdgekitServices", "Effect": "Allow", "Action": others, "Resource": "*"},
            {"Sid": "EdgekitBucket", "Effect": "Allow", "Action": s3, "Resource": s3_resources},
        ],
    }


def _markdown() -> str:
    lines = [
        "### IAM permissions the notebooks' role needs",
        "",
        "Attach these to the SageMaker Studio execution role (or the user or role that runs "
        "the notebooks). Scope `s3:*` to the artifact bucket; `iam:PassRole` to the roles "
        "the stack creates and to the SageMaker execution role. "
        "`edgekit.studio.iam_policy_document(bucket)` returns them as a policy document.",
        "",
        "| service | actions | used for |",
        "|---|---|---|",
    ]
    for svc, names in IAM_ACTIONS.items():
        actions = ", ".join(f"`{svc}:{a}`" for a in names)
        lines.append(f"| {svc} | {actions} | {_IAM_NOTES[svc]} |")
    ec2 = ", ".join(f"`{a}`" for a in EC2_ACTIONS)
    lines.append(f"| ec2, ssm | {ec2} | the EC2 Greengrass core device of the stack (AWS only) |")
    lines += [
        "",
        "The SageMaker execution role passed to Neo compilation jobs needs `s3:GetObject` and "
        "`s3:PutObject` on the bucket and a trust policy for `sagemaker.amazonaws.com`.",
    ]
    return "\n".join(lines) + "\n"


#: Markdown the notebooks display (``IPython.display.Markdown(REQUIRED_IAM_PERMISSIONS)``).
REQUIRED_IAM_PERMISSIONS: str = _markdown()

__all__ = [
    "EC2_ACTIONS",
    "IAM_ACTIONS",
    "METADATA_FILE",
    "REQUIRED_IAM_PERMISSIONS",
    "StudioDefaults",
    "default_bucket",
    "ensure_local_role",
    "execution_role",
    "iam_actions",
    "iam_policy_document",
    "in_studio",
    "role_arn_from_caller",
    "sagemaker_sdk",
    "studio_defaults",
    "studio_metadata",
    "studio_region",
]
