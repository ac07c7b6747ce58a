"""Platform matching and manifest selection (edgekit.recipes.platforms), table-driven.

Each table implements a section of the Greengrass component recipe reference
(https://docs.aws.amazon.com/greengrass/v2/developerguide/component-recipe-reference.html)
as the nucleus reads it (``PlatformHelper`` in aws-greengrass-component-common). Rows
marked ``disagreed`` are the cases on which the control plane's and the device's copies
of these rules gave different answers before they became one module (issue 10).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from edgekit.recipes import (
    matches_every_platform,
    normalize_recipe,
    platform_matches,
    select_manifest,
    select_manifest_index,
)

LINUX_AMD64 = {"os": "linux", "architecture": "amd64", "architecture.detail": "x86_64"}


class Case(NamedTuple):
    id: str
    platform: Any
    device: dict[str, str]
    matches: bool
    disagreed: str = ""  # what the device's own copy answered before issue 10 (when wrong)


# Recipe reference, "Manifests" > "Platform": os, architecture, architecture.detail and
# attributes you define; a value is the exact label, "*" for any value, or a /regex/;
# the nucleus also reads "all"/"any" as wildcards for os and architecture, and a list
# as alternatives.
PLATFORM_TABLE: list[Case] = [
    Case("no-platform", None, LINUX_AMD64, True),
    Case("empty-platform", {}, LINUX_AMD64, True),
    Case("exact-os", {"os": "linux"}, LINUX_AMD64, True),
    Case("exact-os-other", {"os": "windows"}, LINUX_AMD64, False),
    Case("exact-os-and-arch", {"os": "linux", "architecture": "amd64"}, LINUX_AMD64, True),
    Case("exact-arch-other", {"os": "linux", "architecture": "aarch64"}, LINUX_AMD64, False),
    Case("architecture-detail", {"architecture.detail": "x86_64"}, LINUX_AMD64, True),
    # Wildcards.
    Case("star-os", {"os": "*"}, LINUX_AMD64, True),
    Case("star-custom-missing", {"com.example.radio": "*"}, LINUX_AMD64, True),
    Case("os-all", {"os": "all"}, LINUX_AMD64, True, disagreed="no manifest (os=linux)"),
    Case("os-any", {"os": "any"}, LINUX_AMD64, True, disagreed="no manifest (os=linux)"),
    Case("arch-all", {"architecture": "all"}, LINUX_AMD64, True, disagreed="no manifest"),
    Case("arch-any", {"os": "linux", "architecture": "any"}, LINUX_AMD64, True, "no manifest"),
    Case("all-is-not-a-wildcard-for-custom", {"com.example.radio": "all"}, LINUX_AMD64, False),
    Case("all-for-custom-present", {"gpu": "all"}, {**LINUX_AMD64, "gpu": "nvidia"}, False),
    # Lists of alternatives.
    Case("list-match", {"os": ["darwin", "linux"]}, LINUX_AMD64, True, disagreed="no manifest"),
    Case("list-no-match", {"os": ["darwin", "windows"]}, LINUX_AMD64, False),
    Case("list-with-wildcard", {"os": ["windows", "all"]}, LINUX_AMD64, True, "no manifest"),
    Case("list-nested-never", {"os": [["linux"]]}, LINUX_AMD64, False),  # control plane: matched
    # Regular expressions: the whole label must match.
    Case("regex", {"architecture": "/amd64|aarch64/"}, LINUX_AMD64, True),
    Case("regex-full-match", {"os": "/lin/"}, LINUX_AMD64, False),
    Case("regex-missing-attribute", {"com.example.radio": "/.+/"}, LINUX_AMD64, False),
    Case("has-value", {"os": "//"}, LINUX_AMD64, True, disagreed="no manifest ('//' as regex)"),
    Case("has-value-missing", {"com.example.radio": "//"}, LINUX_AMD64, False),
    Case("bad-regex-matches-nothing", {"os": "/(/"}, LINUX_AMD64, False),
    # Case: labels and attribute names are compared exactly, as the nucleus does.
    Case("case-value", {"os": "Linux"}, LINUX_AMD64, False, disagreed="matched"),
    Case("case-name", {"OS": "linux"}, LINUX_AMD64, False, disagreed="matched"),
    Case("case-all", {"os": "ALL"}, LINUX_AMD64, False),
    # Reserved syntax (a label must start with a letter or digit) never matches.
    Case("reserved", {"os": "!linux"}, LINUX_AMD64, False),
    # Explicit null: the device must not have the attribute.
    Case("null-missing", {"com.example.radio": None}, LINUX_AMD64, True, "no manifest"),
    Case("null-present", {"os": None}, LINUX_AMD64, False),
]


@pytest.mark.parametrize("case", PLATFORM_TABLE, ids=[c.id for c in PLATFORM_TABLE])
def test_platform_table(case: Case) -> None:
    assert platform_matches(case.platform, case.device) is case.matches


def _recipe(*platforms: Any) -> dict[str, Any]:
    manifests = []
    for i, platform in enumerate(platforms):
        manifest: dict[str, Any] = {"Lifecycle": {"Run": f"echo {i}"}}
        if platform is not None:
            manifest["Platform"] = platform
        manifests.append(manifest)
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.example.P",
        "ComponentVersion": "1.0.0",
        "Manifests": manifests,
    }


# Recipe reference, "Manifests": "The core device uses the first manifest with platform
# requirements that the device meets"; a manifest without platform requirements matches
# any core device.
SELECTION_TABLE: list[tuple[str, tuple[Any, ...], dict[str, str], int | None]] = [
    ("first-of-two-matching", ({"os": "linux"}, {"os": "all"}), LINUX_AMD64, 0),
    ("first-wins-over-more-specific", ({"os": "all"}, {"os": "linux"}), LINUX_AMD64, 0),
    ("skips-other-os", ({"os": "windows"}, {"os": "linux"}), LINUX_AMD64, 1),
    ("falls-back-to-no-platform", ({"os": "windows"}, None), LINUX_AMD64, 1),
    ("darwin-gets-fallback", ({"os": "linux"}, None), {"os": "darwin"}, 1),
    ("none-matches", ({"os": "windows"}, {"architecture": "arm"}), LINUX_AMD64, None),
    ("no-manifests", (), LINUX_AMD64, None),
]


@pytest.mark.parametrize(
    ("platforms", "device", "expected"),
    [row[1:] for row in SELECTION_TABLE],
    ids=[row[0] for row in SELECTION_TABLE],
)
def test_first_matching_manifest_wins(
    platforms: tuple[Any, ...], device: dict[str, str], expected: int | None
) -> None:
    recipe = _recipe(*platforms)
    assert select_manifest_index(recipe, device) == expected
    chosen = select_manifest(recipe, device)
    if expected is None:
        assert chosen is None
    else:
        assert chosen == recipe["Manifests"][expected]


def test_recipe_keys_are_case_insensitive_after_normalizing() -> None:
    """Recipe reference: recipe keys are read case-insensitively (the nucleus's parser);
    normalize_recipe gives them one spelling before selection."""
    recipe = {
        "componentname": "com.example.P",
        "componentversion": "1.0.0",
        "manifests": [
            {"platform": {"os": "windows"}, "lifecycle": {"run": "echo win"}},
            {"PLATFORM": {"os": "all"}, "Lifecycle": {"Run": "echo all"}},
        ],
    }
    chosen = select_manifest(normalize_recipe(recipe), LINUX_AMD64)
    assert chosen is not None and chosen["Lifecycle"] == {"Run": "echo all"}


@pytest.mark.parametrize(
    ("platform", "every"),
    [
        (None, True),
        ({}, True),
        ({"os": "*"}, True),
        ({"os": "all", "architecture": "any"}, True),
        ({"os": ["linux", "all"]}, True),
        ({"os": "linux"}, False),
        ({"com.example.radio": "all"}, False),
    ],
)
def test_matches_every_platform(platform: Any, every: bool) -> None:
    manifest = {} if platform is None else {"Platform": platform}
    assert matches_every_platform(manifest) is every
