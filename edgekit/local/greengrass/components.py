"""Components of the local Greengrass control plane: create, read, list, delete, and
ResolveComponentCandidates.

Recipes are parsed, validated and matched to platforms by :mod:`edgekit.recipes`
(the same rules the local device applies); versions are chosen there too.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from edgekit.errors import RecipeError
from edgekit.local.greengrass.errors import (
    ConflictException,
    ResourceNotFoundException,
    ValidationException,
    field_error,
)
from edgekit.local.greengrass.state import BackendState
from edgekit.local.greengrass.store import paginate
from edgekit.recipes import (
    VersionError,
    best_version,
    dump_recipe,
    iter_artifacts,
    manifest_platforms,
    newest_first,
    parse_range,
    parse_recipe,
    select_manifest,
)
from edgekit.recipes.provided import PUBLIC_COMPONENTS

__all__ = ["ComponentsMixin"]


class ComponentsMixin(BackendState):
    """Component operations of :class:`~edgekit.local.greengrass.models.GreengrassBackend`."""

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
            self._save_component(name, version)
            if tags:
                self.tags[arn] = dict(tags)
                self._save("tags")
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
                    latest = versions[newest_first(versions)[0]]
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
        elif scope == "PUBLIC":  # the AWS-provided components (edgekit.recipes.provided)
            for name in sorted(PUBLIC_COMPONENTS):
                latest_version = PUBLIC_COMPONENTS[name].versions[-1]
                public_arn = f"arn:aws:greengrass:{self.region}:aws:components:{name}"
                rows.append(
                    {
                        "arn": public_arn,
                        "componentName": name,
                        "latestVersion": {
                            "arn": f"{public_arn}:versions:{latest_version}",
                            "componentVersion": latest_version,
                            "publisher": "AWS",
                        },
                    }
                )
        return paginate("components", rows, next_token, max_results)

    def list_component_versions(
        self, *, arn: str, max_results: int | None = None, next_token: str | None = None
    ) -> dict[str, Any]:
        name, _ = self._parse_component_arn(arn, versioned=False)
        with self._lock:
            # Like the service: a component with no version is an empty list, not an error
            # (GDK's NEXT_PATCH and its region check list a new component's versions).
            versions = self.components.get(name, {})
            rows = [
                {"componentName": name, "componentVersion": v, "arn": versions[v]["arn"]}
                for v in newest_first(versions)
            ]
        return paginate("componentVersions", rows, next_token, max_results)

    def delete_component(self, *, arn: str) -> dict[str, Any]:
        with self._lock:
            record = self._component_version(arn)
            name = record["componentName"]
            del self.components[name][record["componentVersion"]]
            if not self.components[name]:
                del self.components[name]
                self.tags.pop(self.component_arn(name), None)
            self.tags.pop(record["arn"], None)
            self._save_component(name, record["componentVersion"])
            self._save("tags")
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
            ordered = newest_first(versions)
            on_platform = [v for v in ordered if select_manifest(versions[v], attributes)]
            best = best_version(on_platform, requirements.values())
            if best is None:
                wanted = ", ".join(f"{d} needs {r}" for d, r in requirements.items()) or "any"
                if (
                    on_platform
                    and requirements
                    and all(best_version(on_platform, [r]) for r in requirements.values())
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
