"""Rewriting a recipe's keys and enumerated values to their documented spelling.

Greengrass's recipe parser matches keys case-insensitively, and so the enumerated
values (ComponentType, DependencyType, Unarchive, Permission);
:func:`normalize_recipe` rewrites both so later code reads one spelling.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from edgekit.recipes.schema import (
    ARTIFACT_KEYS,
    ARTIFACT_PERMISSIONS,
    COMPONENT_TYPES,
    CONFIGURATION_KEYS,
    DEPENDENCY_KEYS,
    DEPENDENCY_TYPES,
    IGNORED_LIFECYCLE_STEPS,
    LIFECYCLE_KEYS,
    LIFECYCLE_STEPS,
    MANIFEST_KEYS,
    PERMISSION_KEYS,
    STEP_FIELDS,
    TOP_LEVEL_KEYS,
    UNARCHIVE_TYPES,
)

__all__ = ["normalize_recipe"]


def _canonical(mapping: Mapping[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    """Rename keys matching ``known`` case-insensitively to their documented spelling."""
    lookup = {k.lower(): k for k in known}
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = lookup.get(key.lower(), key) if isinstance(key, str) else key
        if name in out:  # e.g. both "Run" and "run": keep both visible to validation
            name = key
        out[name] = value
    return out


def _canonical_value(value: Any, choices: tuple[str, ...]) -> Any:
    """``value`` in its documented spelling when it matches one of ``choices`` ignoring
    case (the service reads these enumerations case-insensitively); else unchanged."""
    if isinstance(value, str):
        for choice in choices:
            if value.lower() == choice.lower():
                return choice
    return value


def _normalize_step(step: Any) -> Any:
    return _canonical(step, STEP_FIELDS) if isinstance(step, Mapping) else step


def _normalize_lifecycle(lifecycle: Any, *, selections: bool) -> Any:
    if not isinstance(lifecycle, Mapping):
        return lifecycle
    out = _canonical(lifecycle, LIFECYCLE_KEYS)
    for key, value in list(out.items()):
        if key in LIFECYCLE_STEPS or key in IGNORED_LIFECYCLE_STEPS:
            out[key] = _normalize_step(value)
        elif selections and key != "Setenv" and isinstance(value, Mapping):
            out[key] = _normalize_lifecycle(value, selections=True)
    return out


def normalize_recipe(recipe: Mapping[str, Any]) -> dict:
    """A copy of ``recipe`` with every known key, and every enumerated value
    (ComponentType, DependencyType, Unarchive, Permission), in its documented spelling.

    Unknown keys and values are kept as they are (validation reports them).
    """
    out = _canonical(copy.deepcopy(dict(recipe)), TOP_LEVEL_KEYS)
    if "ComponentType" in out:
        out["ComponentType"] = _canonical_value(out["ComponentType"], COMPONENT_TYPES)
    config = out.get("ComponentConfiguration")
    if isinstance(config, Mapping):
        out["ComponentConfiguration"] = _canonical(config, CONFIGURATION_KEYS)
    deps = out.get("ComponentDependencies")
    if isinstance(deps, Mapping):
        new_deps: dict[Any, Any] = {}
        for name, dep in deps.items():
            if isinstance(dep, Mapping):
                dep = _canonical(dep, DEPENDENCY_KEYS)
                if "DependencyType" in dep:
                    dep["DependencyType"] = _canonical_value(
                        dep["DependencyType"], DEPENDENCY_TYPES
                    )
            new_deps[name] = dep
        out["ComponentDependencies"] = new_deps
    manifests = out.get("Manifests")
    if isinstance(manifests, list):
        new_manifests: list[Any] = []
        for manifest in manifests:
            if not isinstance(manifest, Mapping):
                new_manifests.append(manifest)
                continue
            m = _canonical(manifest, MANIFEST_KEYS)
            if "Lifecycle" in m:
                m["Lifecycle"] = _normalize_lifecycle(m["Lifecycle"], selections=False)
            artifacts = m.get("Artifacts")
            if isinstance(artifacts, list):
                new_artifacts: list[Any] = []
                for artifact in artifacts:
                    if isinstance(artifact, Mapping):
                        a = _canonical(artifact, ARTIFACT_KEYS)
                        if "Unarchive" in a:
                            a["Unarchive"] = _canonical_value(a["Unarchive"], UNARCHIVE_TYPES)
                        if isinstance(a.get("Permission"), Mapping):
                            perm = _canonical(a["Permission"], PERMISSION_KEYS)
                            for key in PERMISSION_KEYS:
                                if key in perm:
                                    perm[key] = _canonical_value(perm[key], ARTIFACT_PERMISSIONS)
                            a["Permission"] = perm
                        new_artifacts.append(a)
                    else:
                        new_artifacts.append(artifact)
                m["Artifacts"] = new_artifacts
            new_manifests.append(m)
        out["Manifests"] = new_manifests
    if "Lifecycle" in out:
        out["Lifecycle"] = _normalize_lifecycle(out["Lifecycle"], selections=True)
    return out
