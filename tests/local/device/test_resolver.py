"""edgekit.local.device.resolver: dependency version resolution."""

from __future__ import annotations

from typing import Any

import pytest

from edgekit.local.device.failures import DeploymentFailure
from edgekit.local.device.recipe import (
    resolve_recipe,
)
from edgekit.local.device.resolver import resolve


def _recipe(name: str, version: str, deps: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "ComponentName": name,
        "ComponentVersion": version,
        "ComponentDependencies": {
            d: {"VersionRequirement": r, "DependencyType": "HARD"} for d, r in (deps or {}).items()
        },
        "Manifests": [{"Lifecycle": {}}],
    }


def _sources(catalog: dict[tuple[str, str], dict[str, Any]]):
    def recipe_for(name: str, version: str):
        return resolve_recipe(catalog[(name, version)], {"os": "linux"})

    def versions_of(name: str) -> list[str]:
        return [v for (n, v) in catalog if n == name]

    return recipe_for, versions_of


def test_resolver_picks_newest_satisfying_and_prefers_installed() -> None:
    catalog = {
        ("app", "1.0.0"): _recipe("app", "1.0.0", {"lib": "^1.0.0", "aws.greengrass.Nucleus": "*"}),
        ("lib", "1.0.0"): _recipe("lib", "1.0.0"),
        ("lib", "1.4.0"): _recipe("lib", "1.4.0"),
        ("lib", "2.0.0"): _recipe("lib", "2.0.0"),
    }
    recipes, provided = resolve({"app": "1.0.0"}, *_sources(catalog), installed={})
    assert recipes["lib"].version == "1.4.0"
    assert "aws.greengrass.Nucleus" in provided
    recipes, _ = resolve({"app": "1.0.0"}, *_sources(catalog), installed={"lib": "1.0.0"})
    assert recipes["lib"].version == "1.0.0"


def test_resolver_conflict_names_both_requirers() -> None:
    catalog = {
        ("a", "1.0.0"): _recipe("a", "1.0.0", {"dep": "^1.0.0"}),
        ("b", "1.0.0"): _recipe("b", "1.0.0", {"dep": "^2.0.0"}),
        ("dep", "1.0.0"): _recipe("dep", "1.0.0"),
        ("dep", "2.0.0"): _recipe("dep", "2.0.0"),
    }
    with pytest.raises(DeploymentFailure) as info:
        resolve({"a": "1.0.0", "b": "1.0.0"}, *_sources(catalog), installed={})
    message = str(info.value)
    assert "a 1.0.0 requires dep '^1.0.0'" in message
    assert "b 1.0.0 requires dep '^2.0.0'" in message
    assert "COMPONENT_VERSION_REQUIREMENTS_NOT_MET" in info.value.error_stack


def test_resolver_conflict_with_a_pinned_root() -> None:
    catalog = {
        ("a", "1.0.0"): _recipe("a", "1.0.0", {"dep": ">=2.0.0"}),
        ("dep", "1.0.0"): _recipe("dep", "1.0.0"),
    }
    with pytest.raises(DeploymentFailure, match="a 1.0.0 requires dep '>=2.0.0'"):
        resolve({"a": "1.0.0", "dep": "1.0.0"}, *_sources(catalog), installed={})
