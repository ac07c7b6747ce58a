"""Choosing component versions (edgekit.recipes.resolution), table-driven.

Implements the recipe reference's "ComponentDependencies" section (``VersionRequirement``
is an npm-style range; ``DependencyType``) as the nucleus resolves a deployment's
dependencies: roots pinned, a dependency keeps its current version when it satisfies
every requirement, else gets the newest published version that does. The control plane
(ResolveComponentCandidates) and the device runtime both choose versions here.
"""

from __future__ import annotations

import pytest

from edgekit.errors import DeploymentError
from edgekit.recipes import best_version, newest_first, resolve_versions, satisfies_all
from edgekit.recipes.resolution import CONFLICT, INVALID_REQUIREMENT, UNSETTLED

VERSIONS = ["1.0.0", "1.4.0", "2.0.0", "2.1.0-beta.1", "0.9.0"]

# (id, ranges, prefer, expected)
BEST_TABLE = [
    ("newest-overall", ["*"], None, "2.0.0"),
    ("caret", ["^1.0.0"], None, "1.4.0"),
    ("two-ranges", [">=1.0.0", "<1.4.0"], None, "1.0.0"),
    ("no-ranges-take-the-newest", [], None, "2.1.0-beta.1"),
    ("prefer-if-satisfying", ["^1.0.0"], "1.0.0", "1.0.0"),
    ("prefer-ignored-if-not", ["^2.0.0"], "1.0.0", "2.0.0"),
    ("prerelease-only-when-named", [">=2.1.0-beta.0"], None, "2.1.0-beta.1"),
    ("prerelease-not-for-plain-range", [">=2.0.1"], None, None),
    ("conflicting", ["^1.0.0", "^2.0.0"], None, None),
]


@pytest.mark.parametrize(
    ("ranges", "prefer", "expected"), [r[1:] for r in BEST_TABLE], ids=[r[0] for r in BEST_TABLE]
)
def test_best_version_table(ranges: list[str], prefer: str | None, expected: str | None) -> None:
    assert best_version(VERSIONS, ranges, prefer=prefer) == expected


def test_newest_first_and_satisfies_all() -> None:
    assert newest_first(["1.0.0", "10.0.0", "2.0.0", "2.0.0-rc.1"]) == [
        "10.0.0",
        "2.0.0",
        "2.0.0-rc.1",
        "1.0.0",
    ]
    assert satisfies_all("1.2.3", ["^1.0.0", "<1.3.0"])
    assert not satisfies_all("1.3.0", ["^1.0.0", "<1.3.0"])


CATALOG = {
    ("app", "1.0.0"): {"lib": "^1.0.0", "aws.greengrass.Nucleus": ">=2.0.0"},
    ("app", "2.0.0"): {"lib": "^2.0.0"},
    ("lib", "1.0.0"): {},
    ("lib", "1.4.0"): {"util": "~1.0.0"},
    ("lib", "2.0.0"): {},
    ("util", "1.0.0"): {},
    ("util", "1.0.5"): {},
    ("util", "1.1.0"): {},
    ("other", "1.0.0"): {"lib": ">=2.0.0"},
    ("bad", "1.0.0"): {"lib": "not a range"},
}


def _deps(name: str, version: str) -> dict[str, str]:
    return CATALOG[(name, version)]


def _versions(name: str) -> list[str]:
    return [v for (n, v) in CATALOG if n == name]


def _provided(name: str) -> bool:
    return name.startswith("aws.greengrass.")


# (id, roots, installed, expected choice)
RESOLVE_TABLE = [
    (
        "newest-satisfying-and-transitive",
        {"app": "1.0.0"},
        {},
        {"app": "1.0.0", "lib": "1.4.0", "util": "1.0.5", "aws.greengrass.Nucleus": "provided"},
    ),
    (
        "installed-version-kept",
        {"app": "1.0.0"},
        {"lib": "1.0.0", "aws.greengrass.Nucleus": "2.12.0"},
        {"app": "1.0.0", "lib": "1.0.0", "aws.greengrass.Nucleus": "2.12.0"},
    ),
    (
        "installed-version-replaced-when-unsatisfying",
        {"app": "2.0.0"},
        {"lib": "1.4.0"},
        {"app": "2.0.0", "lib": "2.0.0"},
    ),
    ("root-pinned", {"lib": "1.0.0"}, {}, {"lib": "1.0.0"}),
]


@pytest.mark.parametrize(
    ("roots", "installed", "expected"),
    [r[1:] for r in RESOLVE_TABLE],
    ids=[r[0] for r in RESOLVE_TABLE],
)
def test_resolve_versions_table(
    roots: dict[str, str], installed: dict[str, str], expected: dict[str, str]
) -> None:
    assert resolve_versions(roots, _deps, _versions, installed, provided=_provided) == expected


class _Failed(DeploymentError):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _fail(kind: str, message: str) -> _Failed:
    return _Failed(kind, message)


@pytest.mark.parametrize(
    ("roots", "kind", "text"),
    [
        ({"app": "1.0.0", "other": "1.0.0"}, CONFLICT, "app 1.0.0 requires lib '^1.0.0'"),
        ({"app": "1.0.0", "lib": "2.0.0"}, CONFLICT, "the deployment (version 2.0.0)"),
        ({"bad": "1.0.0"}, INVALID_REQUIREMENT, "VersionRequirement 'not a range' for lib"),
    ],
    ids=["two-requirers", "pinned-root", "invalid-range"],
)
def test_resolve_versions_failures(roots: dict[str, str], kind: str, text: str) -> None:
    with pytest.raises(_Failed) as info:
        resolve_versions(roots, _deps, _versions, {}, provided=_provided, fail=_fail)
    assert info.value.kind == kind
    assert text in str(info.value)


def test_resolve_versions_default_failure_is_a_deployment_error() -> None:
    with pytest.raises(DeploymentError, match="no version of lib satisfies"):
        resolve_versions({"app": "1.0.0", "other": "1.0.0"}, _deps, _versions, {})


def test_unsettled_resolution_is_reported() -> None:
    flip = {"x": 0}

    def deps(name: str, version: str) -> dict[str, str]:
        if name == "a":
            flip["x"] += 1
            return {"b": "1.0.0" if flip["x"] % 2 else "2.0.0"}
        return {}

    with pytest.raises(_Failed) as info:
        resolve_versions({"a": "1.0.0"}, deps, lambda n: ["1.0.0", "2.0.0"], {}, fail=_fail)
    assert info.value.kind == UNSETTLED
