"""The lifecycle a device runs for its manifest (edgekit.recipes.lifecycle), table-driven.

Implements the recipe reference's "Manifests" section (how the core device picks the
lifecycle after it selected a manifest) and its "Lifecycle" section (global lifecycle
with selection keys), as the nucleus does it (``RecipeLoader`` and
``PlatformResolver.filterPlatform``). Rows marked ``disagreed`` gave another answer on
the device before issue 10.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from edgekit.recipes import normalize_recipe, resolve_lifecycle, select_manifest, selection_keywords

LINUX = {"os": "linux", "architecture": "amd64"}


class Case(NamedTuple):
    id: str
    lifecycle: dict[str, Any] | None  # the recipe's global Lifecycle
    manifest: dict[str, Any]
    expected: dict[str, Any]
    disagreed: str = ""


def _recipe(case: Case) -> dict[str, Any]:
    recipe: dict[str, Any] = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.example.L",
        "ComponentVersion": "1.0.0",
        "Manifests": [case.manifest, {"Platform": {"os": "windows"}, "Selections": ["win"]}],
    }
    if case.lifecycle is not None:
        recipe["Lifecycle"] = case.lifecycle
    return recipe


# Recipe reference, "Manifests": if the selected manifest defines a lifecycle, the core
# device uses it; else the global lifecycle, with the sections of the manifest's selection
# keys, or (without selection keys) the sections without selection keys; the "all"
# selection matches sections without selection keys.
LIFECYCLE_TABLE: list[Case] = [
    Case(
        "manifest-lifecycle-wins",
        {"Run": "echo global"},
        {"Platform": {"os": "linux"}, "Lifecycle": {"Run": "echo own"}},
        {"Run": "echo own"},
    ),
    Case(
        "empty-manifest-lifecycle-uses-global",
        {"Run": "echo global"},
        {"Platform": {"os": "linux"}, "Lifecycle": {}},
        {"Run": "echo global"},
    ),
    Case(
        "global-without-selection-keys",
        {"Install": "echo i", "Run": "echo r"},
        {"Platform": {"os": "linux"}},
        {"Install": "echo i", "Run": "echo r"},
    ),
    Case(
        "top-level-selection",
        {"linux": {"Run": "echo linux"}, "win": {"Run": "echo win"}},
        {"Platform": {"os": "linux"}, "Selections": ["linux"]},
        {"Run": "echo linux"},
    ),
    Case(
        "first-selection-present-wins",
        {"fast": {"Run": "echo fast"}, "linux": {"Run": "echo linux"}},
        {"Platform": {"os": "linux"}, "Selections": ["linux", "fast"]},
        {"Run": "echo linux"},
    ),
    Case(
        "all-section-is-the-default",
        {"win": {"Run": "echo win"}, "all": {"Run": "echo all"}},
        {"Platform": {"os": "linux"}, "Selections": ["linux"]},
        {"Run": "echo all"},
    ),
    Case(
        "all-section-without-selections",
        {"win": {"Run": "echo win"}, "all": {"Run": "echo all"}},
        {"Platform": {"os": "linux"}},
        {"Run": "echo all"},
    ),
    Case(
        "no-matching-section",
        {"win": {"Run": "echo win"}},
        {"Platform": {"os": "linux"}, "Selections": ["linux"]},
        {},
    ),
    Case(
        "selection-inside-a-step",
        {"Run": {"Script": {"linux": "echo l", "win": "echo w"}, "Timeout": 5}},
        {"Platform": {"os": "linux"}, "Selections": ["linux"]},
        {"Run": {"Script": "echo l", "Timeout": 5}},
    ),
    Case(
        "selection-inside-a-step-removed",
        {"Install": {"win": "echo w"}, "Run": "echo r"},
        {"Platform": {"os": "linux"}, "Selections": ["linux"]},
        {"Run": "echo r"},
    ),
    Case(
        "nested-selections",
        {"linux": {"fast": {"Run": "echo lf"}, "all": {"Run": "echo l"}}},
        {"Platform": {"os": "linux"}, "Selections": ["linux", "fast"]},
        {"Run": "echo lf"},
    ),
    Case(
        # filterPlatform: at a level with selection keys, other keys are ignored.
        "other-keys-beside-selection-keys-are-ignored",
        {"Setenv": {"A": "1"}, "linux": {"Run": "echo l"}},
        {"Platform": {"os": "linux"}, "Selections": ["linux"]},
        {"Run": "echo l"},
        disagreed="kept Setenv",
    ),
    Case(
        # Selection keys are not recipe keys: compared exactly.
        "selection-keys-are-case-sensitive",
        {"Linux": {"Run": "echo L"}, "all": {"Run": "echo all"}},
        {"Platform": {"os": "linux"}, "Selections": ["linux", "Linux"]},
        {"Run": "echo L"},
    ),
    Case(
        "selection-key-case-mismatch",
        {"Linux": {"Run": "echo L"}, "all": {"Run": "echo all"}},
        {"Platform": {"os": "linux"}, "Selections": ["linux"]},
        {"Run": "echo all"},
        disagreed="ran 'echo L'",
    ),
    Case("no-lifecycle-at-all", None, {"Platform": {"os": "linux"}}, {}),
]


@pytest.mark.parametrize("case", LIFECYCLE_TABLE, ids=[c.id for c in LIFECYCLE_TABLE])
def test_lifecycle_table(case: Case) -> None:
    recipe = normalize_recipe(_recipe(case))
    manifest = select_manifest(recipe, LINUX)
    assert manifest is not None
    assert resolve_lifecycle(recipe, manifest) == case.expected


def test_selection_keywords_are_every_manifests_selections_and_all() -> None:
    recipe = {
        "Manifests": [
            {"Selections": ["linux", "fast"]},
            {"Selections": "win"},
            {"Platform": {"os": "darwin"}},
        ]
    }
    assert selection_keywords(recipe) == {"all", "linux", "fast", "win"}


def test_lowercase_recipe_keys_normalize_before_lookup() -> None:
    """Recipe keys are case-insensitive: lifecycle/selections/run spelled in lower case."""
    recipe = normalize_recipe(
        {
            "componentname": "com.example.L",
            "componentversion": "1.0.0",
            "lifecycle": {"linux": {"run": "echo l"}},
            "manifests": [{"platform": {"os": "all"}, "selections": ["linux"]}],
        }
    )
    manifest = select_manifest(recipe, LINUX)
    assert manifest is not None
    assert resolve_lifecycle(recipe, manifest) == {"Run": "echo l"}
