"""Choosing component versions for a deployment on the device.

The rules (roots pinned, a dependency keeps the version it has when that satisfies
every requirement, else the newest published version that does) are
:func:`edgekit.recipes.resolve_versions`'s, shared with the control plane. This
adapter feeds it the device's recipes and reports failures as
:class:`DeploymentFailure` with the nucleus's error codes. The AWS-provided stand-ins
(``edgekit.recipes.provided``) are provided by the runtime itself and are not resolved;
every other name, ``aws.greengrass.labs.*`` included, is.
"""

from __future__ import annotations

from collections.abc import Callable

from edgekit.local.device.failures import DeploymentFailure
from edgekit.local.device.recipe import ResolvedRecipe, is_provided
from edgekit.recipes.resolution import (
    CONFLICT,
    INVALID_REQUIREMENT,
    MAX_ROUNDS,
    Requirement,
    resolve_versions,
)

__all__ = ["MAX_ROUNDS", "RecipeFor", "Requirement", "VersionsOf", "resolve"]

RecipeFor = Callable[[str, str], ResolvedRecipe]
VersionsOf = Callable[[str], list[str]]

# What the nucleus reports for each kind of resolution failure: (error codes, error types).
_FAILURE_CODES: dict[str, tuple[list[str], list[str]]] = {
    CONFLICT: (
        ["NO_AVAILABLE_COMPONENT_VERSION", "COMPONENT_VERSION_REQUIREMENTS_NOT_MET"],
        ["REQUEST_ERROR"],
    ),
    INVALID_REQUIREMENT: (["COMPONENT_DEPENDENCY_NOT_VALID"], ["COMPONENT_RECIPE_ERROR"]),
}
_UNSETTLED_CODES = (["COMPONENT_CIRCULAR_DEPENDENCY_ERROR"], ["REQUEST_ERROR"])


def _failure(kind: str, message: str) -> DeploymentFailure:
    codes, types = _FAILURE_CODES.get(kind, _UNSETTLED_CODES)
    return DeploymentFailure(message, codes=codes, types=types)


def resolve(
    roots: dict[str, str],
    recipe_for: RecipeFor,
    versions_of: VersionsOf,
    installed: dict[str, str],
) -> tuple[dict[str, ResolvedRecipe], dict[str, str]]:
    """``(recipes by name, provided components by name -> version)`` for the desired set."""

    def dependencies_of(name: str, version: str) -> dict[str, str]:
        recipe = recipe_for(name, version)
        return {dep.name: dep.requirement for dep in recipe.dependencies.values()}

    chosen = resolve_versions(
        roots, dependencies_of, versions_of, installed, provided=is_provided, fail=_failure
    )
    recipes = {n: recipe_for(n, v) for n, v in chosen.items() if not is_provided(n)}
    provided = {n: v for n, v in chosen.items() if is_provided(n)}
    return recipes, provided
