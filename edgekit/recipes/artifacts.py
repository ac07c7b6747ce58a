"""Artifact URIs: S3 locations, the file name an artifact gets on a device, iteration."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from edgekit.errors import RecipeError

__all__ = ["artifact_file_name", "iter_artifacts", "parse_s3_uri"]


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); raises RecipeError if not of that form."""
    m = re.match(r"^s3://([^/]+)/(.+)$", uri or "")
    if not m:
        raise RecipeError(f"{uri!r} is not an S3 URI; write it as s3://BUCKET/KEY", source="recipe")
    return m[1], m[2]


def artifact_file_name(uri: str) -> str:
    """The file name an artifact gets on the device: the last path segment of its URI."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    return rest.rstrip("/").rsplit("/", 1)[-1]


def iter_artifacts(recipe: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(field path, artifact)`` for every artifact of every manifest."""
    for i, manifest in enumerate(recipe.get("Manifests") or []):
        if not isinstance(manifest, Mapping):
            continue
        for j, artifact in enumerate(manifest.get("Artifacts") or []):
            if isinstance(artifact, dict):
                yield f"Manifests[{i}].Artifacts[{j}]", artifact
