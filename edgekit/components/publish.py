"""Publish built components: upload artifacts, pick the next version, CreateComponentVersion.

Versions: the next patch version after the highest one in the component
registry (ListComponentVersions), ``1.0.0`` for a new component. Artifacts go
to ``s3://<bucket>/<prefix>/<component>/<version>/<file>``: one key per
version, so an old version's recorded digest always matches its object.
Every rendered recipe is validated with :func:`edgekit.recipes.validate_recipe`
before anything is created. All calls go through :mod:`edgekit.clients`, so
this runs unchanged against AWS and the local endpoints; refused calls become
edgekit errors through :mod:`edgekit.awsapi`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError

from edgekit import clients
from edgekit.awsapi import is_not_found, map_client_error, paginate
from edgekit.components.build import BuiltComponent
from edgekit.components.profiles import profile_for
from edgekit.errors import EdgekitError, PublishError
from edgekit.progress import progress
from edgekit.recipes import dump_recipe, validate_recipe
from edgekit.recipes.semver import parse_version
from edgekit.settings import Settings

DEFAULT_PREFIX = "edgekit/components"
FIRST_VERSION = "1.0.0"
DEPLOYABLE_TIMEOUT = 300.0


@dataclass(frozen=True)
class PublishedComponent:
    name: str
    version: str
    arn: str
    artifacts: tuple[str, ...]


class PublishedComponents(dict[str, str]):
    """``{name: version}`` of what was published, with ``.details`` (ARNs, artifact URIs)."""

    def __init__(self, details: Iterable[PublishedComponent]) -> None:
        self.details = {d.name: d for d in details}
        super().__init__({d.name: d.version for d in self.details.values()})

    def table(self) -> str:
        rows = [("NAME", "VERSION", "ARN")] + [
            (d.name, d.version, d.arn) for d in self.details.values()
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(2)]
        return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}" for r in rows)


def account_id(settings: Settings) -> str:
    """The account the backend of ``settings`` calls land in (STS GetCallerIdentity)."""
    return str(caller_identity(settings)["Account"])


def upload_file(s3: Any, path: Path, bucket: str, key: str, error: type[EdgekitError]) -> str:
    """Upload ``path`` to ``s3://bucket/key`` and return that URI; ``error`` if refused."""
    try:
        s3.upload_file(str(path), bucket, key)
    except (ClientError, S3UploadFailedError) as exc:
        raise error(
            f"{path}: cannot upload it to s3://{bucket}/{key}: {exc}; check the bucket "
            "(--bucket) and the s3:PutObject permission"
        ) from exc
    return f"s3://{bucket}/{key}"


def caller_identity(settings: Settings) -> dict[str, Any]:
    """STS GetCallerIdentity on the backend of ``settings`` (Account, Arn, UserId)."""
    try:
        return dict(clients.client("sts", settings).get_caller_identity())
    except ClientError as exc:
        raise map_client_error(
            exc,
            f"the AWS account ({settings.backend} backend, {settings.region})",
            "read the caller identity (sts:GetCallerIdentity)",
        ) from exc


def component_arn(settings: Settings, account: str, name: str, version: str | None = None) -> str:
    arn = f"arn:aws:greengrass:{settings.region}:{account}:components:{name}"
    return arn if version is None else f"{arn}:versions:{version}"


def component_versions(greengrass: Any, arn: str) -> list[str]:
    """Every version of the component ``arn`` in the registry ([] if it does not exist)."""
    try:
        rows = list(paginate(greengrass, "list_component_versions", "componentVersions", arn=arn))
    except ClientError as exc:
        if is_not_found(exc):
            return []
        raise map_client_error(exc, f"component {arn}", "list its versions") from exc
    return [str(v["componentVersion"]) for v in rows]


def latest_version(versions: Iterable[str]) -> str | None:
    parsed = [parse_version(v) for v in versions]
    return str(max(parsed)) if parsed else None


def next_version(versions: Iterable[str]) -> str:
    """The patch after the highest version (pre-releases count as their release)."""
    latest = latest_version(versions)
    if latest is None:
        return FIRST_VERSION
    v = parse_version(latest)
    return f"{v.major}.{v.minor}.{v.patch + (0 if v.prerelease else 1)}"


def _requirement(version: str) -> str:
    major = parse_version(version).major
    return f">={major}.0.0 <{major + 1}.0.0"


def _wait_deployable(greengrass: Any, arn: str, timeout: float) -> None:
    """AWS builds a component version asynchronously; wait until it is DEPLOYABLE."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        try:
            status = greengrass.describe_component(arn=arn).get("status") or {}
        except ClientError as exc:
            raise map_client_error(exc, f"component version {arn}", "read its state") from exc
        state = status.get("componentState")
        if state in (None, "DEPLOYABLE"):
            return
        if state == "FAILED":
            errors = status.get("errors") or {}
            raise PublishError(
                f"component version {arn} failed to build: {status.get('message', '')} "
                + "; ".join(f"{k}: {v}" for k, v in errors.items())
            )
        if time.monotonic() >= deadline:
            raise PublishError(f"component version {arn} is still {state} after {timeout:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def publish_components(
    settings: Settings | None,
    built: list[BuiltComponent],
    *,
    bucket: str | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> PublishedComponents:
    """Upload, version and create every built component; returns ``{name: version}``.

    ``bucket``: the argument, else ``EDGEKIT_ARTIFACT_BUCKET``, else
    ``<project>-artifacts-<account>-<region>`` (created on the local backend).
    """
    settings = settings or Settings.from_env()
    if not built:
        raise PublishError("nothing to publish: build_components returned no components")
    profile = profile_for(settings)
    account = account_id(settings)
    s3 = clients.client("s3", settings)
    greengrass = clients.client("greengrassv2", settings)
    bucket = profile.ensure_bucket(s3, bucket, account)
    prefix = prefix.strip("/")

    versions: dict[str, str] = {}
    for comp in built:
        existing = component_versions(greengrass, component_arn(settings, account, comp.name))
        versions[comp.name] = next_version(existing)
    # Dependencies not published now: their newest registered version.
    for dep in (settings.model_component, settings.agent_component):
        if dep not in versions:
            latest = latest_version(
                component_versions(greengrass, component_arn(settings, account, dep))
            )
            versions[dep] = latest or FIRST_VERSION

    recipes: dict[str, dict[str, Any]] = {}
    for comp in built:
        version = versions[comp.name]
        recipe = comp.render(
            {
                "COMPONENT_VERSION": version,
                "ARTIFACT_PREFIX": f"s3://{bucket}/{prefix}/{comp.name}/{version}",
                "PYTHON": profile.python_executable(),
                "CAPTURE_BUCKET": bucket,
                "MODEL_VERSION_REQUIREMENT": _requirement(versions[settings.model_component]),
                "AGENT_VERSION_REQUIREMENT": _requirement(versions[settings.agent_component]),
            }
        )
        validate_recipe(recipe, source=f"{comp.name} {version} (from {comp.template.path})")
        recipes[comp.name] = recipe

    published: list[PublishedComponent] = []
    files = sum(len(c.artifacts) for c in built)
    with progress(total=files + len(built), desc="publish components", unit="step") as bar:
        for comp in built:
            version = versions[comp.name]
            uris = []
            for path in comp.artifacts:
                key = f"{prefix}/{comp.name}/{version}/{path.name}"
                uris.append(upload_file(s3, path, bucket, key, PublishError))
                bar.update(1)
            try:
                answer = greengrass.create_component_version(
                    inlineRecipe=dump_recipe(recipes[comp.name], "JSON")
                )
            except ClientError as exc:
                raise map_client_error(
                    exc,
                    f"component {comp.name} {version}",
                    "create it (CreateComponentVersion)",
                    default=PublishError,
                    hint="fix the recipe or the artifact named in the message, then publish again",
                ) from exc
            arn = str(answer.get("arn") or component_arn(settings, account, comp.name, version))
            _wait_deployable(greengrass, arn, DEPLOYABLE_TIMEOUT)
            published.append(PublishedComponent(comp.name, version, arn, tuple(uris)))
            bar.update(1)
    return PublishedComponents(published)
