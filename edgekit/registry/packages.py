"""Package files in S3 for the registry: upload (content-addressed), hash, download (checked).

Also the registry's two shared helpers: the client a call uses, and the edgekit error
a refused call becomes (:func:`edgekit.awsapi.map_client_error`, RegistryError by default).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from edgekit import clients
from edgekit.awsapi import error_code, error_message, is_not_found, map_client_error
from edgekit.components.profiles import profile_for
from edgekit.components.publish import upload_file
from edgekit.errors import ConfigurationError, EdgekitError, PackageError, RegistryError
from edgekit.files import sha256_file
from edgekit.package.verify import verify_package
from edgekit.registry.records import DEFAULT_PACKAGE_PREFIX, ModelVersion
from edgekit.settings import Settings

_S3_URI = re.compile(r"^s3://([^/]+)/(.+)$")


def registry_error(exc: BaseException, resource: str, action: str, hint: str = "") -> EdgekitError:
    """The edgekit error for a refused registry call (RegistryError unless denied/not found)."""
    return map_client_error(exc, resource, action, hint=hint, default=RegistryError)


def registry_client(service: str, settings: Settings | None, client: Any = None) -> Any:
    if client is not None:
        return client
    return clients.client(service, settings or Settings.from_env())


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
        raise registry_error(exc, uri, "read it") from exc
    digest = hashlib.sha256()
    try:
        for chunk in iter(lambda: body.read(1 << 20), b""):
            digest.update(chunk)
    finally:
        body.close()
    return digest.hexdigest()


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
    s3 = registry_client("s3", settings)
    try:
        account = str(registry_client("sts", settings).get_caller_identity()["Account"])
    except ClientError as exc:
        raise map_client_error(exc, "the AWS account", "read the caller identity") from exc
    bucket = profile_for(settings).ensure_bucket(s3, bucket, account)
    digest = sha256_file(path)
    key = f"{prefix.strip('/')}/{manifest.name}/{manifest.version}/{digest[:16]}/{path.name}"
    return upload_file(s3, path, bucket, key, RegistryError), manifest, digest


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
            registry_client("s3", settings).download_file(bucket, key, str(partial))
        except ClientError as exc:
            raise registry_error(
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


#: :func:`package_states` for a version whose package object exists.
PACKAGE_PRESENT = "present"


def package_states(
    versions: Iterable[ModelVersion], settings: Settings | None = None, *, client: Any = None
) -> dict[str, str]:
    """Version ARN -> whether its package is still in S3: :data:`PACKAGE_PRESENT`, or why not.

    ``missing (bucket B deleted)`` (say, by ``edgekit deprovision``: the device stack owns
    the artifact bucket), ``missing (object deleted)``, ``no package URI``, or
    ``unknown (CODE: message)`` when S3 refuses to say. The registry keeps such versions;
    deploying one fails until its package is registered again. One HeadBucket per bucket.
    """
    s3 = registry_client("s3", settings, client)
    buckets: dict[str, str | None] = {}
    states: dict[str, str] = {}
    for version in versions:
        if not version.package_s3_uri:
            states[version.arn] = "no package URI"
            continue
        try:
            bucket, key = parse_s3_uri(version.package_s3_uri)
        except ConfigurationError:
            states[version.arn] = f"unknown (not an S3 URI: {version.package_s3_uri})"
            continue
        if bucket not in buckets:
            buckets[bucket] = _head(lambda b=bucket: s3.head_bucket(Bucket=b), f"bucket {bucket}")
        problem = buckets[bucket]
        if problem is None:
            problem = _head(lambda b=bucket, k=key: s3.head_object(Bucket=b, Key=k), "object")
        states[version.arn] = PACKAGE_PRESENT if problem is None else problem
    return states


def _head(call: Any, what: str) -> str | None:
    """None if ``call`` (a HeadBucket or HeadObject) succeeds, else what it says is wrong."""
    try:
        call()
    except ClientError as exc:
        if is_not_found(exc):
            return f"missing ({what} deleted)"
        return f"unknown ({error_code(exc)}: {error_message(exc)})"
    return None
