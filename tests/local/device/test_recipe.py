"""edgekit.local.device.recipe: the device's view of a recipe (platforms, manifests, steps)."""

from __future__ import annotations

import pytest

from edgekit.local.device.recipe import (
    Step,
    device_platform,
    platform_matches,
    resolve_recipe,
)


def test_platform_matching_exact_wildcard_regex() -> None:
    attrs = {"os": "linux", "architecture": "amd64"}
    assert platform_matches({"os": "linux"}, attrs)
    assert platform_matches({"os": "linux", "architecture": "*"}, attrs)
    assert platform_matches({"architecture": "/amd64|aarch64/"}, attrs)
    assert not platform_matches({"os": "windows"}, attrs)
    assert not platform_matches({"com.example.radio": "/.+/"}, attrs)
    assert platform_matches({"com.example.radio": "*"}, attrs)
    assert device_platform()["architecture"] in ("amd64", "aarch64", "arm", "x86")


def test_first_matching_manifest_and_global_lifecycle_selections() -> None:
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.ex.C",
        "ComponentVersion": "1.0.0",
        "Lifecycle": {"fast": {"Run": "echo fast"}, "all": {"Install": "echo all"}},
        "Manifests": [
            {"Platform": {"os": "windows"}, "Lifecycle": {"Run": "echo win"}},
            {"Platform": {"os": "linux"}, "Selections": ["fast"]},
            {"Lifecycle": {"Run": "echo any"}},
        ],
    }
    resolved = resolve_recipe(recipe, {"os": "linux", "architecture": "amd64"})
    assert resolved.step("run") == Step(script="echo fast", timeout=None)
    assert resolved.step("install") is None
    other = resolve_recipe(recipe, {"os": "darwin", "architecture": "amd64"})
    assert other.step("run").script == "echo any"


def test_step_defaults_follow_the_recipe_reference() -> None:
    recipe = {
        "ComponentName": "c",
        "ComponentVersion": "1.0.0",
        "Manifests": [
            {
                "Lifecycle": {
                    "Install": {"Script": "i", "Skipif": "onpath git"},
                    "Startup": "s",
                    "Shutdown": "d",
                    "Recover": {"script": "r", "timeout": "7"},
                }
            }
        ],
    }
    r = resolve_recipe(recipe, {"os": "linux"})
    assert r.step("install").timeout == 120 and r.step("install").skipif == "onpath git"
    assert r.step("startup").timeout == 120
    assert r.step("shutdown").timeout == 15
    assert r.step("recover").timeout == 7


def test_no_matching_manifest_fails_with_the_platform() -> None:
    recipe = {
        "ComponentName": "c",
        "ComponentVersion": "1.0.0",
        "Manifests": [{"Platform": {"os": "windows"}, "Lifecycle": {"Run": "x"}}],
    }
    with pytest.raises(Exception, match="no manifest for this device's platform.*os=linux"):
        resolve_recipe(recipe, {"os": "linux", "architecture": "amd64"})


def test_upgrade_and_uninstall_are_listed_as_ignored_steps() -> None:
    """Steps the nucleus never runs are kept out of the lifecycle and named for the log."""
    recipe = resolve_recipe(
        {
            "ComponentName": "c",
            "ComponentVersion": "1.0.0",
            "Manifests": [
                {
                    "Platform": {"os": "linux"},
                    "Lifecycle": {"Run": "echo run", "upgrade": "echo up", "Uninstall": "x"},
                }
            ],
        },
        {"os": "linux"},
    )
    assert set(recipe.lifecycle) == {"run"}
    assert recipe.ignored_steps == ("Upgrade", "Uninstall")
