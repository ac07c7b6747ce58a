"""State and logic of the local Greengrass v2 control plane.

``GreengrassBackend`` holds components, deployments, core devices and tags,
applies the service's rules (conflicts, supersession of deployments, digests
of S3 artifacts...) and persists everything as JSON files under a state folder
so a restart loses nothing. One re-entrant lock guards all state; S3 reads
happen outside it. HTTP concerns live in ``responses.py``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.recipes import (
    RecipeError,
    dump_recipe,
    iter_artifacts,
    manifest_platforms,
    parse_recipe,
    parse_s3_uri,
    select_manifest,
)
from edgekit.semver import VersionError, parse_range, parse_version, version_matches

DEFAULT_ACCOUNT_ID = "123456789012"
STATE_FORMAT = 1
PUBLIC_COMPONENT_PREFIX = "aws.greengrass."

EXECUTION_STATUSES = (
    "QUEUED",
    "IN_PROGRESS",
    "SUCCEEDED",
    "FAILED",
    "REJECTED",
    "TIMED_OUT",
    "CANCELED",
    "COMPLETED",
)
LIFECYCLE_STATES = (
    "NEW",
    "INSTALLED",
    "STARTING",
    "RUNNING",
    "STOPPING",
    "ERRORED",
    "BROKEN",
    "FINISHED",
)


# --- service errors (rendered by responses.py in the AWS REST-JSON error shape) ---


class ServiceError(EdgekitError):
    """An error the API returns to the caller, with its AWS code and HTTP status."""

    code = "InternalServerException"
    status = 500

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = {k: v for k, v in fields.items() if v is not None}

    def body(self) -> dict[str, Any]:
        return {"message": self.message, **self.fields}


class ValidationException(ServiceError):
    code = "ValidationException"
    status = 400

    def __init__(
        self,
        message: str,
        *,
        fields: list[dict[str, str]] | None = None,
        reason: str = "FIELD_VALIDATION_FAILED",
    ) -> None:
        super().__init__(message, reason=reason, fields=fields or None)


class ResourceNotFoundException(ServiceError):
    code = "ResourceNotFoundException"
    status = 404

    def __init__(self, message: str, *, resource_id: str, resource_type: str) -> None:
        super().__init__(message, resourceId=resource_id, resourceType=resource_type)


class ConflictException(ServiceError):
    code = "ConflictException"
    status = 409

    def __init__(self, message: str, *, resource_id: str, resource_type: str) -> None:
        super().__init__(message, resourceId=resource_id, resourceType=resource_type)


class InternalServerException(ServiceError):
    code = "InternalServerException"
    status = 500


def field_error(name: str, message: str) -> ValidationException:
    """A ValidationException about one request or recipe field."""
    return ValidationException(f"{name}: {message}", fields=[{"name": name, "message": message}])


# --- persistence --------------------------------------------------------------


def atomic_write_json(path: Path, data: Any, *, durable: bool = True) -> None:
    """Write JSON next to ``path`` and rename it into place (never a half-written file).

    ``durable`` also fsyncs, so the file survives a power loss, not just a crash.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def _load_json(path: Path, default: Any) -> Any:
    if not path.exists():
        return default
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise EdgekitError(
            f"{path}: cannot read the control-plane state ({exc}); fix or remove the file "
            "(removing it forgets the components/deployments/devices it held)"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise EdgekitError(
            f"{path}: not an edgekit control-plane state file of format {STATE_FORMAT}; "
            "remove it or point --state-dir at another folder"
        )
    return data["data"]


# --- S3 access ------------------------------------------------------------------


class S3Artifacts:
    """Reads artifacts from (moto) S3 and presigns downloads, with boto3."""

    def __init__(self, endpoint: str | None, region: str) -> None:
        self.endpoint = endpoint
        self.region = region
        self._client: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                self._client = boto3.client(
                    "s3",
                    endpoint_url=self.endpoint,
                    region_name=self.region,
                    aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
                    aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
                    config=Config(
                        signature_version="s3v4",
                        s3={"addressing_style": "path"},
                        retries={"max_attempts": 2, "mode": "standard"},
                        connect_timeout=5,
                        read_timeout=60,
                    ),
                )
            return self._client

    def sha256_digest(self, uri: str, field: str) -> str:
        """Base64 SHA-256 of the object at ``uri`` (as Greengrass stores ``Digest``)."""
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = parse_s3_uri(uri)
        try:
            obj = self.client().get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "NoSuchBucket", "404", "403", "AccessDenied"):
                what = "bucket" if code == "NoSuchBucket" else "object"
                raise field_error(
                    field,
                    f"artifact {uri} was not found in S3 (no such {what}); upload it first "
                    f"(s3.upload_file(..., '{bucket}', '{key}')) or fix the URI",
                ) from None
            raise InternalServerException(f"reading artifact {uri} from S3 failed: {exc}") from exc
        except BotoCoreError as exc:
            raise InternalServerException(
                f"cannot reach S3 at {self.endpoint or 'AWS'} to read {uri}: {exc}; "
                "is the local moto server running?"
            ) from exc
        digest = hashlib.sha256()
        body = obj["Body"]
        try:
            for chunk in iter(lambda: body.read(1 << 20), b""):
                digest.update(chunk)
        finally:
            body.close()
        return base64.b64encode(digest.digest()).decode("ascii")

    def presign(self, uri: str, expires: int = 3600) -> str:
        bucket, key = parse_s3_uri(uri)
        return self.client().generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires
        )


# --- the backend ----------------------------------------------------------------------


def _paginate(
    key: str, items: list[Any], next_token: str | None, max_results: int | None
) -> dict[str, Any]:
    """One page of a List* response: ``{key: page}`` plus ``nextToken`` when more remain.

    Tokens are opaque base64 offsets.
    """
    start = 0
    if next_token:
        try:
            start = int(base64.urlsafe_b64decode(next_token.encode()).decode().split(":", 1)[1])
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            raise field_error("nextToken", "is not a token this service returned") from exc
        if start < 0 or start > len(items):
            raise field_error("nextToken", "is out of range; start the listing again")
    end = start + (max_results or 50)
    out: dict[str, Any] = {key: items[start:end]}
    if end < len(items):
        out["nextToken"] = base64.urlsafe_b64encode(f"offset:{end}".encode()).decode()
    return out


def _version_key(version: str) -> Any:
    try:
        return (1, parse_version(version))
    except ValueError:
        return (0, version)


class GreengrassBackend:
    """The emulated control plane of one account and region."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        aws_endpoint: str | None,
        region: str = "us-east-1",
        account_id: str = DEFAULT_ACCOUNT_ID,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.region = region
        self.account_id = account_id
        self.s3 = S3Artifacts(aws_endpoint, region)
        self.clock = clock
        self._lock = threading.RLock()
        # components[name][version] -> record
        self.components: dict[str, dict[str, dict[str, Any]]] = _load_json(
            self._path("components"), {}
        )
        self.deployments: dict[str, dict[str, Any]] = _load_json(self._path("deployments"), {})
        self.devices: dict[str, dict[str, Any]] = _load_json(self._path("devices"), {})
        self.tags: dict[str, dict[str, str]] = _load_json(self._path("tags"), {})
        self._idempotency: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}

    # -- persistence --

    def _path(self, name: str) -> Path:
        return self.state_dir / f"{name}.json"

    def _save(self, *names: str) -> None:
        for name in names:
            # Device heartbeats are frequent and re-sent anyway: skip their fsync.
            atomic_write_json(
                self._path(name),
                {"format": STATE_FORMAT, "data": getattr(self, name)},
                durable=name != "devices",
            )

    # -- ARNs --

    def _arn(self, resource: str) -> str:
        return f"arn:aws:greengrass:{self.region}:{self.account_id}:{resource}"

    def component_arn(self, name: str) -> str:
        return self._arn(f"components:{name}")

    def component_version_arn(self, name: str, version: str) -> str:
        return self._arn(f"components:{name}:versions:{version}")

    def deployment_arn(self, deployment_id: str) -> str:
        return self._arn(f"deployments:{deployment_id}")

    def core_device_arn(self, thing: str) -> str:
        return self._arn(f"coreDevices:{thing}")

    def thing_arn(self, thing: str) -> str:
        return f"arn:aws:iot:{self.region}:{self.account_id}:thing/{thing}"

    def thing_group_arn(self, group: str) -> str:
        return f"arn:aws:iot:{self.region}:{self.account_id}:thinggroup/{group}"

    def _parse_component_arn(self, arn: str, *, versioned: bool, field: str = "arn") -> tuple:
        m = re.fullmatch(
            r"arn:([^:]*):greengrass:([^:]*):([^:]+):components:([^:]+)(?::versions:([^:]+))?",
            arn or "",
        )
        if not m:
            raise field_error(field, f"{arn!r} is not a Greengrass component ARN")
        _, region, account, name, version = m.groups()
        if versioned and version is None:
            raise field_error(
                field, f"{arn!r} names a component, not a version; append :versions:VERSION"
            )
        if not versioned and version is not None:
            raise field_error(field, f"{arn!r} names a component version; drop :versions:...")
        if account == "aws":
            raise ResourceNotFoundException(
                f"public component {name} is not available in the local emulator; only "
                "components you create exist here",
                resource_id=arn,
                resource_type="COMPONENT",
            )
        if region != self.region or account != self.account_id:
            raise ResourceNotFoundException(
                f"{arn} belongs to region {region} / account {account}, but this emulator "
                f"serves {self.region} / {self.account_id}",
                resource_id=arn,
                resource_type="COMPONENT_VERSION" if versioned else "COMPONENT",
            )
        return name, version

    def _component_version(self, arn: str) -> dict[str, Any]:
        name, version = self._parse_component_arn(arn, versioned=True)
        record = self.components.get(name, {}).get(version)
        if record is None:
            raise ResourceNotFoundException(
                f"component version {name} {version} does not exist; create it with "
                "CreateComponentVersion or list versions with ListComponentVersions",
                resource_id=arn,
                resource_type="COMPONENT_VERSION",
            )
        return record

    def _tags_of(self, arn: str) -> dict[str, str] | None:
        tags = self.tags.get(arn)
        return dict(tags) if tags else None

    # -- idempotency (botocore sends a fresh clientToken per call and reuses it on retries) --

    def _idempotent(
        self, op: str, token: str | None, request: Any, work: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        if not token:
            return work()
        fingerprint = json.dumps(request, sort_keys=True, default=str)
        with self._lock:
            cached = self._idempotency.get((op, token))
        if cached is not None:
            if cached[0] != fingerprint:
                raise ConflictException(
                    f"clientToken {token} was already used for a different {op} request; "
                    "use a new token",
                    resource_id=token,
                    resource_type="CLIENT_TOKEN",
                )
            return copy.deepcopy(cached[1])
        result = work()
        with self._lock:
            self._idempotency[(op, token)] = (fingerprint, copy.deepcopy(result))
        return result

    # ================= components =================

    def create_component_version(
        self,
        *,
        inline_recipe: bytes | None,
        lambda_function: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        client_token: str | None = None,
    ) -> dict[str, Any]:
        if lambda_function is not None:
            raise ValidationException(
                "lambdaFunction: creating components from Lambda functions is not supported by "
                "the edgekit local Greengrass emulator; write a recipe and pass inlineRecipe",
                fields=[{"name": "lambdaFunction", "message": "not supported locally"}],
            )
        if inline_recipe is None:
            raise ValidationException(
                "Specify inlineRecipe (the recipe as JSON or YAML bytes) to create a component",
                fields=[{"name": "inlineRecipe", "message": "is required"}],
            )
        request = {"recipe": base64.b64encode(inline_recipe).decode(), "tags": tags}
        return self._idempotent(
            "CreateComponentVersion",
            client_token,
            request,
            lambda: self._create_component_version(inline_recipe, tags),
        )

    def _create_component_version(
        self, inline_recipe: bytes, tags: dict[str, str] | None
    ) -> dict[str, Any]:
        try:
            recipe = parse_recipe(inline_recipe, source="inlineRecipe")
        except RecipeError as exc:
            raise ValidationException(
                f"The recipe is invalid: {exc}",
                fields=[{"name": f or "inlineRecipe", "message": m} for f, m in exc.problems],
            ) from None
        name = recipe["ComponentName"]
        version = recipe["ComponentVersion"]
        arn = self.component_version_arn(name, version)
        self._check_no_conflict(name, version, arn)

        digests: dict[str, str] = {}
        for field, artifact in iter_artifacts(recipe):
            uri = artifact["URI"]
            if uri.lower().startswith("s3://"):
                if uri not in digests:
                    digests[uri] = self.s3.sha256_digest(uri, f"{field}.URI")
                artifact["Digest"] = digests[uri]
                artifact["Algorithm"] = "SHA-256"
            elif uri.lower().startswith("greengrass:"):
                raise field_error(
                    f"{field}.URI",
                    f"{uri}: greengrass: artifacts belong to AWS-provided components; upload "
                    "the file to S3 and use an s3:// URI",
                )
            else:  # docker: images are pulled by the device; nothing to hash here
                artifact.pop("Digest", None)
                artifact.pop("Algorithm", None)
        recipe.setdefault("ComponentType", "aws.greengrass.generic")

        now = self.clock()
        record = {
            "arn": arn,
            "componentName": name,
            "componentVersion": version,
            "creationTimestamp": now,
            "description": recipe.get("ComponentDescription"),
            "publisher": recipe.get("ComponentPublisher"),
            "platforms": manifest_platforms(recipe),
            "status": {
                "componentState": "DEPLOYABLE",
                "message": "NONE",
                "errors": {},
                "vendorGuidance": "ACTIVE",
                "vendorGuidanceMessage": "NONE",
            },
            "recipe": recipe,
        }
        with self._lock:
            self._check_no_conflict(name, version, arn)
            self.components.setdefault(name, {})[version] = record
            if tags:
                self.tags[arn] = dict(tags)
            self._save("components", "tags")
        return {
            "arn": arn,
            "componentName": name,
            "componentVersion": version,
            "creationTimestamp": now,
            "status": dict(record["status"]),
        }

    def _check_no_conflict(self, name: str, version: str, arn: str) -> None:
        with self._lock:
            if version in self.components.get(name, {}):
                raise ConflictException(
                    f"component {name} version {version} already exists; component versions "
                    "are immutable, so bump ComponentVersion (e.g. the patch number)",
                    resource_id=arn,
                    resource_type="COMPONENT_VERSION",
                )

    def describe_component(self, *, arn: str) -> dict[str, Any]:
        with self._lock:
            record = self._component_version(arn)
            out = {
                k: copy.deepcopy(record[k])
                for k in (
                    "arn",
                    "componentName",
                    "componentVersion",
                    "creationTimestamp",
                    "publisher",
                    "description",
                    "status",
                    "platforms",
                )
                if record.get(k) is not None
            }
            tags = self._tags_of(record["arn"])
        if tags:
            out["tags"] = tags
        return out

    def get_component(self, *, arn: str, recipe_output_format: str | None = None) -> dict[str, Any]:
        fmt = recipe_output_format or "JSON"
        with self._lock:
            record = self._component_version(arn)
            recipe = copy.deepcopy(record["recipe"])
            tags = self._tags_of(record["arn"])
        out: dict[str, Any] = {"recipeOutputFormat": fmt, "recipe": dump_recipe(recipe, fmt)}
        if tags:
            out["tags"] = tags
        return out

    def get_recipe(self, name: str, version: str) -> dict[str, Any]:
        """The stored (normalized, digest-filled) recipe; for in-process callers."""
        with self._lock:
            record = self._component_version(self.component_version_arn(name, version))
            return copy.deepcopy(record["recipe"])

    def get_component_version_artifact(self, *, arn: str, artifact_name: str) -> dict[str, Any]:
        with self._lock:
            record = self._component_version(arn)
            uris = [a["URI"] for _, a in iter_artifacts(record["recipe"])]
        wanted = artifact_name.lstrip("/")
        match = None
        for uri in uris:
            scheme, _, rest = uri.partition(":")
            rest = rest.lstrip("/")
            if wanted in (rest, uri) or (
                scheme.lower() == "s3" and wanted == rest.split("/", 1)[-1]
            ):
                match = uri
                break
        if match is None:
            by_name = [u for u in uris if u.rstrip("/").rsplit("/", 1)[-1] == wanted]
            if len(by_name) == 1:
                match = by_name[0]
        if match is None:
            known = ", ".join(uris) or "none"
            raise ResourceNotFoundException(
                f"component version {record['componentName']} {record['componentVersion']} has "
                f"no artifact named {artifact_name!r}; its artifacts: {known} (the artifact name "
                "is the URI without its scheme, e.g. BUCKET/KEY)",
                resource_id=f"{arn}/artifacts/{artifact_name}",
                resource_type="ARTIFACT",
            )
        if not match.lower().startswith("s3://"):
            raise field_error("artifactName", f"{match} is not stored in S3; nothing to download")
        return {"preSignedUrl": self.s3.presign(match)}

    def list_components(
        self,
        *,
        scope: str | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        rows: list[dict[str, Any]] = []
        if (scope or "PRIVATE") == "PRIVATE":
            with self._lock:
                for name in sorted(self.components):
                    versions = self.components[name]
                    if not versions:
                        continue
                    latest = versions[max(versions, key=_version_key)]
                    entry = {
                        k: copy.deepcopy(latest[k])
                        for k in ("creationTimestamp", "description", "publisher", "platforms")
                        if latest.get(k)
                    }
                    entry["arn"] = latest["arn"]
                    entry["componentVersion"] = latest["componentVersion"]
                    rows.append(
                        {
                            "arn": self.component_arn(name),
                            "componentName": name,
                            "latestVersion": entry,
                        }
                    )
        return _paginate("components", rows, next_token, max_results)

    def list_component_versions(
        self, *, arn: str, max_results: int | None = None, next_token: str | None = None
    ) -> dict[str, Any]:
        name, _ = self._parse_component_arn(arn, versioned=False)
        with self._lock:
            versions = self.components.get(name, {})
            if not versions:
                raise ResourceNotFoundException(
                    f"component {name} does not exist; create a version with "
                    "CreateComponentVersion",
                    resource_id=arn,
                    resource_type="COMPONENT",
                )
            rows = [
                {"componentName": name, "componentVersion": v, "arn": versions[v]["arn"]}
                for v in sorted(versions, key=_version_key, reverse=True)
            ]
        return _paginate("componentVersions", rows, next_token, max_results)

    def delete_component(self, *, arn: str) -> dict[str, Any]:
        with self._lock:
            record = self._component_version(arn)
            name = record["componentName"]
            del self.components[name][record["componentVersion"]]
            if not self.components[name]:
                del self.components[name]
                self.tags.pop(self.component_arn(name), None)
            self.tags.pop(record["arn"], None)
            self._save("components", "tags")
        return {}

    def resolve_component_candidates(
        self,
        *,
        platform: dict[str, Any] | None = None,
        component_candidates: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """For each candidate, the highest version that meets every requirement and has a
        manifest for the platform (what a core device asks when it resolves a deployment)."""
        attributes = dict((platform or {}).get("attributes") or {})
        resolved = []
        for i, candidate in enumerate(component_candidates or []):
            name = candidate.get("componentName")
            if not name:
                raise field_error(f"componentCandidates[{i}].componentName", "is required")
            requirements = dict(candidate.get("versionRequirements") or {})
            for dependent, requirement in requirements.items():
                try:
                    parse_range(requirement)
                except VersionError as exc:
                    raise field_error(
                        f"componentCandidates[{i}].versionRequirements.{dependent}", str(exc)
                    ) from None
            with self._lock:
                versions = {v: r["recipe"] for v, r in self.components.get(name, {}).items()}
            if not versions:
                raise ResourceNotFoundException(
                    f"component {name} has no versions; create one with CreateComponentVersion",
                    resource_id=self.component_arn(name),
                    resource_type="COMPONENT",
                )
            ordered = sorted(versions, key=_version_key, reverse=True)
            on_platform = [v for v in ordered if select_manifest(versions[v], attributes)]
            fitting = [
                v
                for v in on_platform
                if all(version_matches(v, req) for req in requirements.values())
            ]
            if not fitting:
                wanted = ", ".join(f"{d} needs {r}" for d, r in requirements.items()) or "any"
                if (
                    on_platform
                    and requirements
                    and all(
                        any(version_matches(v, r) for v in on_platform)
                        for r in requirements.values()
                    )
                ):
                    raise ConflictException(
                        f"the version requirements on {name} conflict ({wanted}); no single "
                        f"version satisfies them all (versions: {', '.join(ordered)})",
                        resource_id=self.component_arn(name),
                        resource_type="COMPONENT",
                    )
                raise ResourceNotFoundException(
                    f"no version of {name} satisfies {wanted} on platform {attributes or 'any'} "
                    f"(versions: {', '.join(ordered)}; with a matching manifest: "
                    f"{', '.join(on_platform) or 'none'})",
                    resource_id=self.component_arn(name),
                    resource_type="COMPONENT",
                )
            best = fitting[0]
            resolved.append(
                {
                    "arn": self.component_version_arn(name, best),
                    "componentName": name,
                    "componentVersion": best,
                    "recipe": dump_recipe(versions[best], "JSON"),
                    "vendorGuidance": "ACTIVE",
                }
            )
        return {"resolvedComponentVersions": resolved}

    # ================= deployments =================

    def _parse_target(self, arn: str, field: str) -> tuple[str, str]:
        m = re.fullmatch(r"arn:[^:]*:iot:([^:]*):([0-9]+):(thing|thinggroup)/(.+)", arn or "")
        if not m:
            raise field_error(
                field,
                f"{arn!r} is not a thing or thing-group ARN "
                f"(arn:aws:iot:{self.region}:{self.account_id}:thing/NAME or .../thinggroup/NAME)",
            )
        region, account, kind, name = m.groups()
        if region != self.region or account != self.account_id:
            raise field_error(
                field,
                f"{arn} is in region {region} / account {account}; this emulator serves "
                f"{self.region} / {self.account_id}",
            )
        return kind, name

    @staticmethod
    def _fill_policies(policies: dict[str, Any] | None) -> dict[str, Any]:
        """Deployment policies with the defaults AWS documents filled in."""
        p = copy.deepcopy(policies or {})
        p.setdefault("failureHandlingPolicy", "ROLLBACK")
        update = p.setdefault("componentUpdatePolicy", {})
        update.setdefault("timeoutInSeconds", 60)
        update.setdefault("action", "NOTIFY_COMPONENTS")
        validation = p.setdefault("configurationValidationPolicy", {})
        validation.setdefault("timeoutInSeconds", 30)
        return p

    def _check_components(self, components: dict[str, Any]) -> None:
        for name, spec in components.items():
            path = f"components.{name}"
            version = spec.get("componentVersion")
            if not name.startswith(PUBLIC_COMPONENT_PREFIX):
                with self._lock:
                    exists = version in self.components.get(name, {})
                if not exists:
                    raise ResourceNotFoundException(
                        f"{path}: component {name} version {version} does not exist; create it "
                        "with CreateComponentVersion first (ListComponentVersions shows what "
                        "exists)",
                        resource_id=self.component_version_arn(name, str(version)),
                        resource_type="COMPONENT_VERSION",
                    )
            update = spec.get("configurationUpdate") or {}
            if "merge" in update:
                try:
                    merged = json.loads(update["merge"])
                except json.JSONDecodeError as exc:
                    raise field_error(
                        f"{path}.configurationUpdate.merge",
                        f"is not valid JSON ({exc.msg} at column {exc.colno}); pass "
                        "json.dumps({...})",
                    ) from None
                if not isinstance(merged, dict):
                    raise field_error(
                        f"{path}.configurationUpdate.merge", "must be a JSON object ({...})"
                    )
            for i, pointer in enumerate(update.get("reset") or []):
                if pointer != "" and not pointer.startswith("/"):
                    raise field_error(
                        f"{path}.configurationUpdate.reset[{i}]",
                        f"{pointer!r} is not a JSON pointer; write it as /key/subkey (or '' for "
                        "the whole configuration)",
                    )

    def create_deployment(
        self,
        *,
        target_arn: str,
        deployment_name: str | None = None,
        components: dict[str, Any] | None = None,
        iot_job_configuration: dict[str, Any] | None = None,
        deployment_policies: dict[str, Any] | None = None,
        parent_target_arn: str | None = None,
        tags: dict[str, str] | None = None,
        client_token: str | None = None,
    ) -> dict[str, Any]:
        request = {
            "targetArn": target_arn,
            "deploymentName": deployment_name,
            "components": components,
            "iotJobConfiguration": iot_job_configuration,
            "deploymentPolicies": deployment_policies,
            "parentTargetArn": parent_target_arn,
            "tags": tags,
        }

        def work() -> dict[str, Any]:
            _, target_name = self._parse_target(target_arn, "targetArn")
            if parent_target_arn is not None:
                kind, _ = self._parse_target(parent_target_arn, "parentTargetArn")
                if kind != "thinggroup":
                    raise field_error("parentTargetArn", "must be a thing-group ARN")
            specs = copy.deepcopy(components or {})
            self._check_components(specs)
            deployment_id = str(uuid.uuid4())
            job_id = str(uuid.uuid4())
            now = self.clock()
            with self._lock:
                revision = 1
                for other in self.deployments.values():
                    if other["targetArn"] == target_arn:
                        revision = max(revision, int(other["revisionId"]) + 1)
                        if other.get("isLatestForTarget"):
                            other["isLatestForTarget"] = False
                            if other["deploymentStatus"] in ("ACTIVE", "COMPLETED"):
                                other["deploymentStatus"] = "INACTIVE"
                record: dict[str, Any] = {
                    "deploymentId": deployment_id,
                    "deploymentName": deployment_name or f"Deployment for {target_name}",
                    "targetArn": target_arn,
                    "revisionId": str(revision),
                    "deploymentStatus": "ACTIVE",
                    "iotJobId": job_id,
                    "iotJobArn": f"arn:aws:iot:{self.region}:{self.account_id}:job/{job_id}",
                    "components": specs,
                    "deploymentPolicies": self._fill_policies(deployment_policies),
                    "creationTimestamp": now,
                    "isLatestForTarget": True,
                    "sequence": len(self.deployments),
                }
                if iot_job_configuration:
                    record["iotJobConfiguration"] = copy.deepcopy(iot_job_configuration)
                if parent_target_arn:
                    record["parentTargetArn"] = parent_target_arn
                self.deployments[deployment_id] = record
                if tags:
                    self.tags[self.deployment_arn(deployment_id)] = dict(tags)
                self._save("deployments", "tags")
            return {
                "deploymentId": deployment_id,
                "iotJobId": job_id,
                "iotJobArn": record["iotJobArn"],
            }

        return self._idempotent("CreateDeployment", client_token, request, work)

    def _deployment(self, deployment_id: str) -> dict[str, Any]:
        record = self.deployments.get(deployment_id)
        if record is None:
            raise ResourceNotFoundException(
                f"deployment {deployment_id} does not exist; ListDeployments shows the "
                "deployments of each target",
                resource_id=deployment_id,
                resource_type="DEPLOYMENT",
            )
        return record

    def get_deployment(self, *, deployment_id: str) -> dict[str, Any]:
        with self._lock:
            record = copy.deepcopy(self._deployment(deployment_id))
            tags = self._tags_of(self.deployment_arn(deployment_id))
        record.pop("sequence", None)
        if tags:
            record["tags"] = tags
        return record

    def _ordered_deployments(self) -> list[dict[str, Any]]:
        return sorted(
            self.deployments.values(),
            key=lambda d: (d["creationTimestamp"], d.get("sequence", 0)),
            reverse=True,
        )

    def list_deployments(
        self,
        *,
        target_arn: str | None = None,
        history_filter: str | None = None,
        parent_target_arn: str | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        latest_only = (history_filter or "LATEST_ONLY") == "LATEST_ONLY"
        rows = []
        with self._lock:
            for d in self._ordered_deployments():
                if target_arn and d["targetArn"] != target_arn:
                    continue
                if parent_target_arn and d.get("parentTargetArn") != parent_target_arn:
                    continue
                if latest_only and not d.get("isLatestForTarget"):
                    continue
                row = {
                    k: d[k]
                    for k in (
                        "targetArn",
                        "revisionId",
                        "deploymentId",
                        "deploymentName",
                        "creationTimestamp",
                        "deploymentStatus",
                        "isLatestForTarget",
                        "parentTargetArn",
                    )
                    if k in d
                }
                rows.append(row)
        return _paginate("deployments", rows, next_token, max_results)

    def cancel_deployment(self, *, deployment_id: str) -> dict[str, Any]:
        with self._lock:
            record = self._deployment(deployment_id)
            if record["deploymentStatus"] != "ACTIVE":
                raise ConflictException(
                    f"deployment {deployment_id} is {record['deploymentStatus']}; only ACTIVE "
                    "deployments can be canceled",
                    resource_id=deployment_id,
                    resource_type="DEPLOYMENT",
                )
            record["deploymentStatus"] = "CANCELED"
            self._save("deployments")
        return {"message": f"Deployment {deployment_id} canceled"}

    def delete_deployment(self, *, deployment_id: str) -> dict[str, Any]:
        with self._lock:
            record = self._deployment(deployment_id)
            if record["deploymentStatus"] == "ACTIVE":
                raise ConflictException(
                    f"deployment {deployment_id} is ACTIVE; cancel it (CancelDeployment) "
                    "before deleting it",
                    resource_id=deployment_id,
                    resource_type="DEPLOYMENT",
                )
            del self.deployments[deployment_id]
            self.tags.pop(self.deployment_arn(deployment_id), None)
            self._save("deployments", "tags")
        return {}

    # ================= core devices =================

    def _device(self, thing: str) -> dict[str, Any]:
        record = self.devices.get(thing)
        if record is None:
            raise ResourceNotFoundException(
                f"core device {thing} does not exist; start it (edgekit local device start) "
                "and let it report its status first",
                resource_id=thing,
                resource_type="CORE_DEVICE",
            )
        return record

    @staticmethod
    def _device_summary(d: dict[str, Any]) -> dict[str, Any]:
        keys = (
            "coreDeviceThingName",
            "coreVersion",
            "platform",
            "architecture",
            "runtime",
            "status",
            "lastStatusUpdateTimestamp",
        )
        return {k: d[k] for k in keys if d.get(k) is not None}

    def get_core_device(self, *, core_device_thing_name: str) -> dict[str, Any]:
        with self._lock:
            out = self._device_summary(self._device(core_device_thing_name))
            tags = self._tags_of(self.core_device_arn(core_device_thing_name))
        if tags:
            out["tags"] = tags
        return out

    def list_core_devices(
        self,
        *,
        thing_group_arn: str | None = None,
        status: str | None = None,
        runtime: str | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        group = None
        if thing_group_arn:
            kind, group = self._parse_target(thing_group_arn, "thingGroupArn")
        rows = []
        with self._lock:
            for thing in sorted(self.devices):
                d = self.devices[thing]
                if status and d.get("status") != status:
                    continue
                if runtime and d.get("runtime") != runtime:
                    continue
                if group is not None:
                    deployed = any(
                        row["targetArn"] == thing_group_arn
                        and row["coreDeviceExecutionStatus"] in ("SUCCEEDED", "COMPLETED")
                        for row in d.get("effectiveDeployments", {}).values()
                    )
                    if group not in d.get("thingGroups", []) and not deployed:
                        continue
                summary = self._device_summary(d)
                summary.pop("coreVersion", None)
                rows.append(summary)
        return _paginate("coreDevices", rows, next_token, max_results)

    def delete_core_device(self, *, core_device_thing_name: str) -> dict[str, Any]:
        with self._lock:
            self._device(core_device_thing_name)
            del self.devices[core_device_thing_name]
            self.tags.pop(self.core_device_arn(core_device_thing_name), None)
            self._save("devices", "tags")
        return {}

    def list_effective_deployments(
        self,
        *,
        core_device_thing_name: str,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            d = self._device(core_device_thing_name)
            rows = sorted(
                (copy.deepcopy(r) for r in d.get("effectiveDeployments", {}).values()),
                key=lambda r: r["modifiedTimestamp"],
                reverse=True,
            )
        return _paginate("effectiveDeployments", rows, next_token, max_results)

    def list_installed_components(
        self,
        *,
        core_device_thing_name: str,
        topology_filter: str | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        root_only = (topology_filter or "ROOT") == "ROOT"
        with self._lock:
            d = self._device(core_device_thing_name)
            rows = [
                copy.deepcopy(c)
                for c in d.get("components", [])
                if not root_only or c.get("isRoot")
            ]
        rows.sort(key=lambda c: c["componentName"])
        return _paginate("installedComponents", rows, next_token, max_results)

    # ================= tags =================

    def _check_taggable(self, arn: str) -> None:
        m = re.fullmatch(
            r"arn:[^:]*:greengrass:([^:]*):([^:]+):(components|deployments|coreDevices):(.+)",
            arn or "",
        )
        exists = False
        if m and m[1] == self.region and m[2] == self.account_id:
            kind, rest = m[3], m[4]
            if kind == "components":
                name, _, version = rest.partition(":versions:")
                versions = self.components.get(name, {})
                exists = version in versions if version else bool(versions)
            elif kind == "deployments":
                exists = rest in self.deployments
            else:
                exists = rest in self.devices
        if not exists:
            raise ResourceNotFoundException(
                f"no component, deployment or core device has the ARN {arn}",
                resource_id=arn,
                resource_type="RESOURCE",
            )

    def list_tags_for_resource(self, *, resource_arn: str) -> dict[str, Any]:
        with self._lock:
            self._check_taggable(resource_arn)
            tags = self._tags_of(resource_arn)
        return {"tags": tags} if tags else {}

    def tag_resource(self, *, resource_arn: str, tags: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            self._check_taggable(resource_arn)
            merged = {**self.tags.get(resource_arn, {}), **tags}
            if len(merged) > 200:
                raise field_error("tags", "a resource can have at most 200 tags")
            self.tags[resource_arn] = merged
            self._save("tags")
        return {}

    def untag_resource(self, *, resource_arn: str, tag_keys: list[str]) -> dict[str, Any]:
        with self._lock:
            self._check_taggable(resource_arn)
            remaining = {
                k: v for k, v in self.tags.get(resource_arn, {}).items() if k not in tag_keys
            }
            if remaining:
                self.tags[resource_arn] = remaining
            else:
                self.tags.pop(resource_arn, None)
            self._save("tags")
        return {}

    # ================= private device API =================

    def report_device_status(self, thing: str, body: dict[str, Any]) -> dict[str, Any]:
        """A device runtime reports its platform, health and installed components."""
        status = body.get("status", "HEALTHY")
        if status not in ("HEALTHY", "UNHEALTHY"):
            raise field_error("status", f"{status!r} is not HEALTHY or UNHEALTHY")
        groups = body.get("thingGroups") or []
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise field_error("thingGroups", "must be a list of thing-group names")
        raw_components = body.get("components") or []
        if not isinstance(raw_components, list):
            raise field_error("components", "must be a list")
        now = self.clock()
        installed = []
        for i, c in enumerate(raw_components):
            path = f"components[{i}]"
            if not isinstance(c, dict):
                raise field_error(path, "must be an object")
            for key in ("componentName", "componentVersion"):
                if not isinstance(c.get(key), str) or not c[key]:
                    raise field_error(f"{path}.{key}", "is required (a non-empty string)")
            state = c.get("lifecycleState", "NEW")
            if state not in LIFECYCLE_STATES:
                raise field_error(
                    f"{path}.lifecycleState",
                    f"{state!r} is not one of {', '.join(LIFECYCLE_STATES)}",
                )
            row: dict[str, Any] = {
                "componentName": c["componentName"],
                "componentVersion": c["componentVersion"],
                "lifecycleState": state,
                "isRoot": bool(c.get("isRoot", False)),
                "lastStatusChangeTimestamp": float(c.get("lastStatusChangeTimestamp") or now),
                "lastReportedTimestamp": now,
            }
            details = c.get("lifecycleStateDetails")
            if details:
                row["lifecycleStateDetails"] = str(details)[:1000]
            if c.get("lastInstallationSource"):
                row["lastInstallationSource"] = str(c["lastInstallationSource"])
            codes = c.get("lifecycleStatusCodes")
            if codes:
                row["lifecycleStatusCodes"] = [str(x) for x in codes]
            installed.append(row)
        with self._lock:
            d = self.devices.setdefault(thing, {"coreDeviceThingName": thing})
            for key, default in (
                ("coreVersion", None),
                ("platform", None),
                ("architecture", None),
                ("runtime", "aws_nucleus_classic"),
            ):
                value = body.get(key, d.get(key, default))
                if value is not None:
                    d[key] = str(value)
            d["status"] = status
            d["lastStatusUpdateTimestamp"] = now
            d["thingGroups"] = list(groups)
            d["components"] = installed
            d.setdefault("effectiveDeployments", {})
            self._save("devices")
        return {}

    def _device_doc(self, d: dict[str, Any]) -> dict[str, Any]:
        components = {}
        for name, spec in d.get("components", {}).items():
            entry: dict[str, Any] = {"componentVersion": spec["componentVersion"]}
            update = spec.get("configurationUpdate")
            if update:
                entry["configurationUpdate"] = {
                    k: copy.deepcopy(update[k]) for k in ("merge", "reset") if k in update
                }
            if spec.get("runWith"):
                entry["runWith"] = copy.deepcopy(spec["runWith"])
            components[name] = entry
        return {
            "deploymentId": d["deploymentId"],
            "revisionId": d["revisionId"],
            "deploymentName": d["deploymentName"],
            "targetArn": d["targetArn"],
            "deploymentStatus": d["deploymentStatus"],
            "creationTimestamp": d["creationTimestamp"],
            "components": components,
            "deploymentPolicies": copy.deepcopy(d["deploymentPolicies"]),
        }

    def device_deployments(self, thing: str, groups: list[str]) -> dict[str, Any]:
        """For the thing and each group: the latest deployment that was not canceled."""
        targets = [self.thing_arn(thing)] + [self.thing_group_arn(g) for g in groups if g]
        docs = []
        with self._lock:
            for target in targets:
                for d in self.deployments.values():
                    if (
                        d["targetArn"] == target
                        and d.get("isLatestForTarget")
                        and d["deploymentStatus"] != "CANCELED"
                    ):
                        docs.append(self._device_doc(d))
                        break
        return {"deployments": docs}

    def report_deployment_status(
        self, thing: str, deployment_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        status = body.get("executionStatus")
        if status not in EXECUTION_STATUSES:
            raise field_error(
                "executionStatus", f"{status!r} is not one of {', '.join(EXECUTION_STATUSES)}"
            )
        details: dict[str, Any] = {}
        for key in ("errorStack", "errorTypes"):
            value = body.get(key)
            if value:
                if not isinstance(value, list):
                    raise field_error(key, "must be a list of strings")
                details[key] = [str(v)[:255] for v in value if str(v)]
        now = self.clock()
        with self._lock:
            deployment = self._deployment(deployment_id)
            d = self.devices.setdefault(
                thing,
                {
                    "coreDeviceThingName": thing,
                    "status": "HEALTHY",
                    "lastStatusUpdateTimestamp": now,
                    "runtime": "aws_nucleus_classic",
                    "components": [],
                    "thingGroups": [],
                },
            )
            rows = d.setdefault("effectiveDeployments", {})
            row = {
                "deploymentId": deployment_id,
                "deploymentName": deployment["deploymentName"],
                "iotJobId": deployment["iotJobId"],
                "iotJobArn": deployment["iotJobArn"],
                "targetArn": deployment["targetArn"],
                "coreDeviceExecutionStatus": status,
                "creationTimestamp": deployment["creationTimestamp"],
                "modifiedTimestamp": now,
            }
            if body.get("reason"):
                row["reason"] = str(body["reason"])
            if details:
                row["statusDetails"] = details
            rows[deployment_id] = row
            # A deployment to one thing ends with that thing's result, as its IoT job does.
            if (
                deployment["targetArn"] == self.thing_arn(thing)
                and deployment["deploymentStatus"] == "ACTIVE"
            ):
                if status in ("SUCCEEDED", "COMPLETED"):
                    deployment["deploymentStatus"] = "COMPLETED"
                elif status in ("FAILED", "REJECTED", "TIMED_OUT"):
                    deployment["deploymentStatus"] = "FAILED"
            self._save("devices", "deployments")
        return {}
