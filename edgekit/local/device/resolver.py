"""Choosing component versions for a deployment, as the nucleus does.

The deployment pins its root components to exact versions. Every recipe's
``ComponentDependencies`` adds an npm-style requirement on its dependency;
a dependency gets the version already on the device if that satisfies every
requirement, else the newest published version that does. When no version
satisfies all requirements the deployment fails and the message names each
requirer and its range. ``aws.greengrass.*`` components are provided by the
runtime itself and are not resolved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgekit.local.device.failures import DeploymentFailure
from edgekit.local.device.recipe import ResolvedRecipe, is_provided
from edgekit.semver import VersionError, parse_version, version_matches

RecipeFor = Callable[[str, str], ResolvedRecipe]
VersionsOf = Callable[[str], list[str]]

MAX_ROUNDS = 50


@dataclass(frozen=True)
class Requirement:
    requirer: str  # "com.example.App 1.0.0" or "deployment"
    range: str


def _conflict(name: str, reqs: list[Requirement], available: list[str] | None) -> DeploymentFailure:
    wanted = ", ".join(f"{r.requirer} requires {name} {r.range!r}" for r in reqs)
    avail = "" if available is None else f" (published versions: {', '.join(available) or 'none'})"
    return DeploymentFailure(
        f"no version of {name} satisfies every requirement: {wanted}{avail}; "
        "align the VersionRequirement of the requirers or publish a matching version",
        codes=["NO_AVAILABLE_COMPONENT_VERSION", "COMPONENT_VERSION_REQUIREMENTS_NOT_MET"],
        types=["REQUEST_ERROR"],
    )


def _matches(version: str, req: Requirement, name: str) -> bool:
    try:
        return version_matches(version, req.range)
    except VersionError as exc:
        raise DeploymentFailure(
            f"{req.requirer}: VersionRequirement {req.range!r} for {name} is invalid: {exc}",
            codes=["COMPONENT_DEPENDENCY_NOT_VALID"],
            types=["COMPONENT_RECIPE_ERROR"],
        ) from exc


def resolve(
    roots: dict[str, str],
    recipe_for: RecipeFor,
    versions_of: VersionsOf,
    installed: dict[str, str],
) -> tuple[dict[str, ResolvedRecipe], dict[str, str]]:
    """``(recipes by name, provided components by name -> version)`` for the desired set."""
    chosen: dict[str, str] = dict(roots)
    published: dict[str, list[str]] = {}
    for _ in range(MAX_ROUNDS):
        recipes = {n: recipe_for(n, v) for n, v in chosen.items() if not is_provided(n)}
        # Walk from the roots so requirements of components no longer needed do not count.
        reqs: dict[str, list[Requirement]] = {}
        needed: list[str] = list(roots)
        seen = set(needed)
        i = 0
        while i < len(needed):
            name = needed[i]
            i += 1
            recipe = recipes.get(name)
            if recipe is None:
                continue
            for dep in recipe.dependencies.values():
                reqs.setdefault(dep.name, []).append(
                    Requirement(f"{name} {recipe.version}", dep.requirement)
                )
                if dep.name not in seen:
                    seen.add(dep.name)
                    needed.append(dep.name)
        new: dict[str, str] = {}
        for name in needed:
            rs = reqs.get(name, [])
            if name in roots:
                bad = [r for r in rs if not _matches(roots[name], r, name)]
                if bad:
                    raise _conflict(
                        name,
                        [Requirement(f"the deployment (version {roots[name]})", roots[name]), *bad],
                        None,
                    )
                new[name] = roots[name]
                continue
            if is_provided(name):
                new[name] = installed.get(name, "provided")
                continue
            current = chosen.get(name) or installed.get(name)
            if current and all(_matches(current, r, name) for r in rs):
                new[name] = current
                continue
            if name not in published:
                published[name] = versions_of(name)
            candidates = sorted(published[name], key=parse_version, reverse=True)
            pick = next((v for v in candidates if all(_matches(v, r, name) for r in rs)), None)
            if pick is None:
                raise _conflict(name, rs, sorted(published[name], key=parse_version))
            new[name] = pick
        if new == chosen:
            provided = {n: v for n, v in chosen.items() if is_provided(n)}
            return {n: recipes[n] for n in chosen if n in recipes}, provided
        chosen = new
    raise DeploymentFailure(
        f"component versions did not settle after {MAX_ROUNDS} rounds of dependency resolution "
        f"(last choice: {chosen}); check for dependency cycles between versions",
        codes=["COMPONENT_CIRCULAR_DEPENDENCY_ERROR"],
        types=["REQUEST_ERROR"],
    )
