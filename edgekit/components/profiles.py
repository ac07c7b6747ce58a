"""What differs between backends when components are published: one small object per backend.

The calls are the same on both backends; only a few facts differ:

- which Python the components' Install step builds its venv from
  (``PythonExecutable``): on AWS the device's ``python3``; on the local backend
  the interpreter edgekit runs in, so the device runtime needs no installs;
- which bucket holds the artifacts and whether edgekit may create it: locally
  edgekit creates it on first use; on AWS it must exist (the device stack's
  ``ArtifactBucket`` output, or ``--bucket``);
- for SageMaker jobs (``edgekit.studio``, Neo compilation): whether the SageMaker
  SDK's Studio defaults apply, whether edgekit may make a stand-in execution role,
  and why a completed Neo job can lack its artifact (moto runs no Neo compiler).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from botocore.exceptions import ClientError

from edgekit.awsapi import is_not_found, map_client_error
from edgekit.errors import ConfigurationError
from edgekit.settings import Settings

BUCKET_ENV = "EDGEKIT_ARTIFACT_BUCKET"


_LOCAL_HINT = "check that the local endpoints run (`edgekit local status`)"


def default_bucket(settings: Settings, account: str) -> str:
    return f"{settings.project_name}-artifacts-{account}-{settings.region}".lower()[:63]


class BackendProfile(Protocol):
    name: str
    #: The SageMaker SDK's Studio defaults (execution role, default bucket) apply.
    studio_sdk: bool
    #: Without a role from STS, edgekit may create a stand-in SageMaker execution role.
    stand_in_role: bool
    #: Why a COMPLETED compilation job's artifact may be missing, and what to do.
    neo_missing_artifact_hint: str

    def python_executable(self) -> str:
        """``PythonExecutable`` default of the agent and inference components."""

    def ensure_bucket(self, s3: Any, bucket: str | None, account: str) -> str:
        """The artifact bucket to use (created if this backend allows it)."""


@dataclass(frozen=True)
class LocalProfile:
    settings: Settings
    name: str = "local"
    studio_sdk: ClassVar[bool] = False
    stand_in_role: ClassVar[bool] = True
    neo_missing_artifact_hint: ClassVar[str] = (
        " The local backend's SageMaker (moto) records compilation jobs but runs no Neo "
        "compiler, so no artifact exists; compile with backend=aws, or use an "
        "onnxruntime target locally."
    )

    def python_executable(self) -> str:
        return sys.executable

    def ensure_bucket(self, s3: Any, bucket: str | None, account: str) -> str:
        bucket = bucket or os.environ.get(BUCKET_ENV) or default_bucket(self.settings, account)
        try:
            s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if not is_not_found(exc):
                raise map_client_error(exc, f"artifact bucket {bucket}", "read it") from exc
            kwargs: dict[str, Any] = {"Bucket": bucket}
            if self.settings.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.settings.region}
            try:
                s3.create_bucket(**kwargs)
            except ClientError as error:
                raise map_client_error(
                    error, f"artifact bucket {bucket}", "create it", hint=_LOCAL_HINT
                ) from error
        return bucket


@dataclass(frozen=True)
class AwsProfile:
    settings: Settings
    name: str = "aws"
    studio_sdk: ClassVar[bool] = True
    stand_in_role: ClassVar[bool] = False
    neo_missing_artifact_hint: ClassVar[str] = (
        " Check the job's CloudWatch logs (/aws/sagemaker/CompilationJobs)."
    )

    def python_executable(self) -> str:
        return os.environ.get("EDGEKIT_DEVICE_PYTHON", "python3")

    def ensure_bucket(self, s3: Any, bucket: str | None, account: str) -> str:
        bucket = bucket or os.environ.get(BUCKET_ENV) or default_bucket(self.settings, account)
        try:
            s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if is_not_found(exc):
                raise ConfigurationError(
                    f"artifact bucket {bucket} does not exist; pass --bucket with the device "
                    f"stack's ArtifactBucket output (or set {BUCKET_ENV})"
                ) from exc
            raise map_client_error(
                exc,
                f"artifact bucket {bucket}",
                "read it",
                hint="HeadBucket answers 403 for a bucket of another account: pick another "
                f"--bucket (or {BUCKET_ENV}), or grant s3:ListBucket on it",
            ) from exc
        return bucket


_PROFILES = {"local": LocalProfile, "aws": AwsProfile}


def profile_for(settings: Settings) -> BackendProfile:
    return _PROFILES[settings.backend](settings)
