"""Choosing component versions: one version per component that meets every requirement.

Both the control plane (ResolveComponentCandidates) and the device runtime (resolving
a deployment's dependency closure) choose versions here, as the nucleus does: a
dependency keeps the version already chosen or installed if it satisfies every
``VersionRequirement`` on it, else gets the newest version that does; the
deployment's root components are pinned to the versions it names. Requirements
only count when they come from a component still needed (walking from the roots).

Failures are raised through the caller's ``fail(kind, message)`` factory, so each
caller reports them in its own terms (a service exception, a deployment failure).
``kind`` is one of :data:`CONFLICT`, :data:`INVALID_REQUIREMENT`, :data:`UNSETTLED`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from edgekit.errors import DeploymentError, EdgekitError
from edgekit.recipes.semver import VersionError, parse_version, version_matches

__all__ = [
    "CONFLICT",
    "INVALID_REQUIREMENT",
    "MAX_ROUNDS",
    "UNSETTLED",
    "Requirement",
    "best_version",
    "newest_first",
    "resolve_versions",
    "satisfies_all",
]

CONFLICT = "conflict"
INVALID_REQUIREMENT = "invalid-requirement"
UNSETTLED = "unsettled"
MAX_ROUNDS = 50

Fail = Callable[[str, str], EdgekitError]
DependenciesOf = Callable[[str, str], Mapping[str, str]]
VersionsOf = Callable[[str], list[str]]


@dataclass(frozen=True)
class Requirement:
    """``range`` on a component, from ``requirer`` ("com.example.App 1.0.0" or "deployment")."""

    requirer: str
    range: str


def _default_fail(kind: str, message: str) -> EdgekitError:
    return DeploymentError(message)


def newest_first(versions: Iterable[str]) -> list[str]:
    """Versions sorted by semver precedence, newest first (unparsable ones last)."""

    def key(v: str) -> tuple:
        try:
            return (1, parse_version(v))
        except VersionError:
            return (0, v)

    return sorted(versions, key=key, reverse=True)


def satisfies_all(version: str, ranges: Iterable[str]) -> bool:
    """Whether ``version`` meets every npm-style range (VersionError on a bad range)."""
    return all(version_matches(version, r) for r in ranges)


def best_version(
    versions: Iterable[str], ranges: Iterable[str], *, prefer: str | None = None
) -> str | None:
    """``prefer`` if it meets every range, else the newest of ``versions`` that does, else None."""
    ranges = list(ranges)
    if prefer and satisfies_all(prefer, ranges):
        return prefer
    return next((v for v in newest_first(versions) if satisfies_all(v, ranges)), None)


def _matches(version: str, req: Requirement, name: str, fail: Fail) -> bool:
    try:
        return version_matches(version, req.range)
    except VersionError as exc:
        raise fail(
            INVALID_REQUIREMENT,
            f"{req.requirer}: VersionRequirement {req.range!r} for {name} is invalid: {exc}",
        ) from exc


def _conflict_message(name: str, reqs: list[Requirement], available: list[str] | None) -> str:
    wanted = ", ".join(f"{r.requirer} requires {name} {r.range!r}" for r in reqs)
    avail = "" if available is None else f" (published versions: {', '.join(available) or 'none'})"
    return (
        f"no version of {name} satisfies every requirement: {wanted}{avail}; "
        "align the VersionRequirement of the requirers or publish a matching version"
    )


def _requirements(
    roots: Mapping[str, str],
    chosen: Mapping[str, str],
    dependencies_of: DependenciesOf,
    provided: Callable[[str], bool],
) -> tuple[list[str], dict[str, list[Requirement]]]:
    """Walk from the roots: the needed components in order, and the requirements on each."""
    reqs: dict[str, list[Requirement]] = {}
    needed: list[str] = list(roots)
    seen = set(needed)
    i = 0
    while i < len(needed):
        name = needed[i]
        i += 1
        if provided(name) or name not in chosen:
            continue
        version = chosen[name]
        for dep, rng in dependencies_of(name, version).items():
            reqs.setdefault(dep, []).append(Requirement(f"{name} {version}", rng))
            if dep not in seen:
                seen.add(dep)
                needed.append(dep)
    return needed, reqs


def resolve_versions(
    roots: Mapping[str, str],
    dependencies_of: DependenciesOf,
    versions_of: VersionsOf,
    installed: Mapping[str, str],
    *,
    provided: Callable[[str], bool] = lambda name: False,
    fail: Fail = _default_fail,
) -> dict[str, str]:
    """The version of every component of the deployment: ``{name: version}``.

    ``roots`` pins the deployment's components; ``dependencies_of(name, version)`` gives a
    version's ``{dependency: VersionRequirement}``; ``versions_of(name)`` the published
    versions; ``installed`` what the device has. ``provided(name)`` components (shipped
    with the runtime) are not resolved: they map to their installed version or
    ``"provided"``.
    """
    chosen: dict[str, str] = dict(roots)
    published: dict[str, list[str]] = {}
    for _ in range(MAX_ROUNDS):
        needed, reqs = _requirements(roots, chosen, dependencies_of, provided)
        new: dict[str, str] = {}
        for name in needed:
            rs = reqs.get(name, [])
            if name in roots:
                bad = [r for r in rs if not _matches(roots[name], r, name, fail)]
                if bad:
                    pinned = Requirement(f"the deployment (version {roots[name]})", roots[name])
                    raise fail(CONFLICT, _conflict_message(name, [pinned, *bad], None))
                new[name] = roots[name]
                continue
            if provided(name):
                new[name] = installed.get(name, "provided")
                continue
            current = chosen.get(name) or installed.get(name)
            if current and all(_matches(current, r, name, fail) for r in rs):
                new[name] = current
                continue
            if name not in published:
                published[name] = versions_of(name)
            pick = next(
                (
                    v
                    for v in newest_first(published[name])
                    if all(_matches(v, r, name, fail) for r in rs)
                ),
                None,
            )
            if pick is None:
                available = list(reversed(newest_first(published[name])))
                raise fail(CONFLICT, _conflict_message(name, rs, available))
            new[name] = pick
        if new == chosen:
            return chosen
        chosen = new
    raise fail(
        UNSETTLED,
        f"component versions did not settle after {MAX_ROUNDS} rounds of dependency resolution "
        f"(last choice: {chosen}); check for dependency cycles between versions",
    )
