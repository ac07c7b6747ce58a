"""npm-style version ranges (edgekit.recipes.semver), as Greengrass VersionRequirement uses them."""

from __future__ import annotations

import pytest

from edgekit.recipes.semver import (
    Version,
    VersionError,
    is_plain_version,
    max_satisfying,
    parse_range,
    parse_version,
    version_matches,
)


def test_parse_version() -> None:
    assert parse_version("1.2.3") == Version(1, 2, 3)
    v = parse_version("1.0.0-rc.1+build.7")
    assert v.prerelease == ("rc", 1) and v.build == ("build", "7")
    assert str(v) == "1.0.0-rc.1+build.7"
    for bad in ("1.2", "01.2.3", "1.2.3.4", "v1.2.3", "", "1.2.x"):
        with pytest.raises(VersionError):
            parse_version(bad)


def test_precedence() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.10.0",
        "2.0.0",
    ]
    parsed = [parse_version(v) for v in ordered]
    assert sorted(reversed(parsed)) == parsed
    assert parse_version("1.0.0+a") == parse_version("1.0.0+b")


def test_is_plain_version() -> None:
    assert is_plain_version("10.20.30")
    assert not is_plain_version("1.0.0-beta")
    assert not is_plain_version("1.0")


@pytest.mark.parametrize(
    ("version", "requirement", "expected"),
    [
        ("1.2.3", "1.2.3", True),
        ("1.2.4", "=1.2.3", False),
        ("1.2.3", ">=1.2.3", True),
        ("1.2.2", ">1.2.2", False),
        ("1.2.3", "<1.2.3", False),
        ("1.2.3", "<=1.2.3", True),
        ("1.5.0", ">=1.0.0 <2.0.0", True),
        ("2.0.0", ">=1.0.0 <2.0.0", False),
        ("1.0.0", ">= 1.0.0 < 2", True),
        ("3.1.0", "<2.0.0 || >=3.0.0", True),
        ("2.5.0", "<2.0.0 || >=3.0.0", False),
        # caret
        ("1.9.9", "^1.2.3", True),
        ("2.0.0", "^1.2.3", False),
        ("0.2.9", "^0.2.3", True),
        ("0.3.0", "^0.2.3", False),
        ("0.0.3", "^0.0.3", True),
        ("0.0.4", "^0.0.3", False),
        ("0.0.9", "^0.0", True),
        ("0.1.0", "^0.0", False),
        ("1.9.0", "^1.x", True),
        ("0.9.0", "^0.x", True),
        # tilde
        ("1.2.9", "~1.2.3", True),
        ("1.3.0", "~1.2.3", False),
        ("1.2.0", "~1.2", True),
        ("1.9.0", "~1", True),
        ("2.0.0", "~1", False),
        ("0.2.5", "~>0.2.3", True),
        # x-ranges and partials
        ("1.99.0", "1.x", True),
        ("2.0.0", "1.x", False),
        ("1.2.7", "1.2.*", True),
        ("1.3.0", "1.2", False),
        ("7.0.0", "*", True),
        ("7.0.0", "", True),
        ("1.0.0", ">1", False),
        ("2.0.0", ">1", True),
        ("1.2.9", "<=1.2", True),
        ("1.3.0", "<=1.2", False),
        ("1.1.9", "<1.2", True),
        ("1.2.0", "<1.2", False),
        ("1.0.0", ">*", False),
        # hyphen ranges
        ("1.5.0", "1.2.3 - 2.3.4", True),
        ("2.3.5", "1.2.3 - 2.3.4", False),
        ("2.3.9", "1.2.3 - 2.3", True),
        ("2.4.0", "1.2.3 - 2.3", False),
        ("1.0.0", "1.2 - 2", False),
        # pre-releases only match when the range names the same major.minor.patch
        ("2.0.0-beta", "^1.0.0", False),
        ("1.2.3-beta.3", ">=1.2.3-beta.2", True),
        ("1.2.4-beta", ">=1.2.3-beta.2", False),
        ("1.2.3-alpha", ">=1.2.3-beta", False),
        ("1.0.0-rc.1", "*", False),
    ],
)
def test_version_matches(version: str, requirement: str, expected: bool) -> None:
    assert version_matches(version, requirement) is expected


@pytest.mark.parametrize("bad", [">=abc", "^1.2.3.4", "1.2.3 -", ">=", "~x.y.z!"])
def test_bad_ranges_raise(bad: str) -> None:
    with pytest.raises(VersionError):
        parse_range(bad)


def test_max_satisfying() -> None:
    versions = ["1.0.0", "1.4.2", "2.0.0", "1.10.0", "0.9.0"]
    assert max_satisfying(versions, "^1.0.0") == "1.10.0"
    assert max_satisfying(versions, ">=3") is None
