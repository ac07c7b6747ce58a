"""Semantic versions and npm-style version ranges, as Greengrass uses them.

Greengrass picks component versions with npm range syntax (``VersionRequirement``
in recipes, dependency resolution on the device). This module implements the
subset of node-semver that recipes use: comparators (``<``, ``<=``, ``>``, ``>=``,
``=``), tilde and caret ranges, x-ranges (``1.x``, ``1.2.*``, ``*``), hyphen
ranges (``1.2.3 - 2.3.4``), whitespace for AND and ``||`` for OR. As in npm, a
pre-release version only satisfies a range when a comparator of the same
comparator set names a pre-release of the same ``major.minor.patch``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from edgekit.errors import EdgekitError

__all__ = [
    "Version",
    "VersionError",
    "is_plain_version",
    "max_satisfying",
    "parse_range",
    "parse_version",
    "version_matches",
]


class VersionError(EdgekitError, ValueError):
    """A version or a version range is not valid semver / npm syntax."""


_NUM = r"0|[1-9]\d*"
_IDENT = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_VERSION_RE = re.compile(
    rf"^(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_IDENT}(?:\.{_IDENT})*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_PLAIN_RE = re.compile(rf"^(?:{_NUM})\.(?:{_NUM})\.(?:{_NUM})$")
# A partial version inside a range: missing parts and x/X/* parts are wildcards.
_PARTIAL_RE = re.compile(
    r"^v?(?P<major>\d+|[xX*])"
    r"(?:\.(?P<minor>\d+|[xX*])"
    r"(?:\.(?P<patch>\d+|[xX*])"
    r"(?:-(?P<pre>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
    r")?)?$"
)
_OPERATOR_RE = re.compile(r"^(<=|>=|<|>|=|~>|~|\^)?\s*(.*)$")


@functools.total_ordering
@dataclass(frozen=True)
class Version:
    """A semantic version 2.0.0; ordering follows semver precedence (build ignored)."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...] = ()
    build: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(str(p) for p in self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    @property
    def core(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def _key(self) -> tuple:
        # A release sorts after all of its pre-releases; numeric identifiers sort
        # before alphanumeric ones, and numerically among themselves.
        if not self.prerelease:
            pre: tuple = ((2, 0, ""),)
        else:
            pre = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, not self.prerelease, pre)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __lt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()


def _prerelease(text: str | None) -> tuple[int | str, ...]:
    if not text:
        return ()
    return tuple(int(p) if p.isdigit() else p for p in text.split("."))


def parse_version(text: str | Version) -> Version:
    """Parse a full semver 2.0.0 version such as ``1.2.3``, ``1.0.0-rc.1+build.5``."""
    if isinstance(text, Version):
        return text
    if not isinstance(text, str):
        raise VersionError(f"version {text!r} must be a string such as '1.0.0'")
    m = _VERSION_RE.match(text.strip())
    if not m:
        raise VersionError(
            f"version {text!r} is not a semantic version; use MAJOR.MINOR.PATCH such as '1.0.0'"
        )
    return Version(
        int(m["major"]),
        int(m["minor"]),
        int(m["patch"]),
        _prerelease(m["pre"]),
        tuple(m["build"].split(".")) if m["build"] else (),
    )


def is_plain_version(text: str) -> bool:
    """True for ``MAJOR.MINOR.PATCH`` without pre-release or build metadata."""
    return isinstance(text, str) and bool(_PLAIN_RE.match(text))


# --- ranges -----------------------------------------------------------------

Comparator = tuple[str, Version]  # (operator, version); operator in <, <=, >, >=, =


@dataclass(frozen=True)
class _Partial:
    major: int | None
    minor: int | None
    patch: int | None
    prerelease: tuple[int | str, ...]

    def floor(self) -> Version:
        return Version(self.major or 0, self.minor or 0, self.patch or 0, self.prerelease)


def _parse_partial(text: str, whole: str) -> _Partial:
    m = _PARTIAL_RE.match(text)
    if not m:
        raise VersionError(
            f"version range {whole!r}: {text!r} is not a version; "
            "use forms such as '1.2.3', '^1.2.0', '~1.2', '>=1.0.0 <2.0.0' or '1.x'"
        )

    def part(name: str) -> int | None:
        value = m[name]
        return None if value is None or value in ("x", "X", "*") else int(value)

    major, minor, patch = part("major"), part("minor"), part("patch")
    # Once a part is a wildcard, the parts after it are wildcards too ("1.x.3" == "1.x").
    if major is None:
        minor = patch = None
    if minor is None:
        patch = None
    pre = _prerelease(m["pre"]) if patch is not None else ()
    return _Partial(major, minor, patch, pre)


def _bump(p: _Partial) -> Version:
    """The first version after the most specific given part (for exclusive upper bounds)."""
    if p.minor is None:
        return Version((p.major or 0) + 1, 0, 0)
    if p.patch is None:
        return Version(p.major or 0, p.minor + 1, 0)
    return Version(p.major or 0, p.minor, p.patch + 1)


def _expand(op: str, p: _Partial) -> list[Comparator] | None:
    """Comparators for one ``op partial`` token; [] means any version, None means none."""
    if op == "~>":
        op = "~"
    if op == "^":
        if p.major is None:
            return []
        low = p.floor()
        if p.major > 0 or p.minor is None:
            high = Version(p.major + 1, 0, 0)
        elif p.minor > 0 or p.patch is None:
            high = Version(0, p.minor + 1, 0)
        else:
            high = Version(0, 0, p.patch + 1)
        return [(">=", low), ("<", high)]
    if op == "~":
        if p.major is None:
            return []
        if p.minor is None:
            return [(">=", p.floor()), ("<", Version(p.major + 1, 0, 0))]
        return [(">=", p.floor()), ("<", Version(p.major, p.minor + 1, 0))]
    if op in ("", "="):
        if p.major is None:
            return []
        if p.patch is None:
            return [(">=", p.floor()), ("<", _bump(p))]
        return [("=", p.floor())]
    # Comparison operators with a partial version.
    if p.major is None:
        return [] if op in (">=", "<=") else None
    if p.patch is not None:
        return [(op, p.floor())]
    if op == ">":
        return [(">=", _bump(p))]
    if op == ">=":
        return [(">=", p.floor())]
    if op == "<":
        return [("<", p.floor())]
    return [("<", _bump(p))]  # "<="


def _tokens(comparator_set: str) -> list[str]:
    """Split on whitespace, gluing an operator to the version after it (``>= 1.2``)."""
    raw = comparator_set.split()
    tokens: list[str] = []
    pending = ""
    for tok in raw:
        if tok in ("<", "<=", ">", ">=", "=", "~", "~>", "^"):
            pending += tok
            continue
        tokens.append(pending + tok)
        pending = ""
    if pending:
        tokens.append(pending)
    return tokens


@functools.lru_cache(maxsize=512)
def parse_range(text: str) -> tuple[tuple[Comparator, ...] | None, ...]:
    """Parse an npm range into OR-ed comparator sets (each set AND-ed).

    A set of ``()`` matches every release; ``None`` marks a set no version can
    satisfy (such as ``<0.0.0-0`` or ``>*``). Raises VersionError naming the
    offending part.
    """
    if not isinstance(text, str):
        raise VersionError(f"version range {text!r} must be a string such as '^1.0.0'")
    sets: list[tuple[Comparator, ...] | None] = []
    for alternative in text.split("||"):
        alternative = alternative.strip()
        hyphen = re.match(r"^(\S+)\s+-\s+(\S+)$", alternative)
        if hyphen:
            low = _parse_partial(hyphen[1], text)
            high = _parse_partial(hyphen[2], text)
            comps: list[Comparator] = []
            if low.major is not None:
                comps.append((">=", low.floor()))
            if high.major is not None:
                comps.append(("<=", high.floor()) if high.patch is not None else ("<", _bump(high)))
            sets.append(tuple(comps))
            continue
        comps = []
        impossible = False
        for tok in _tokens(alternative):
            m = _OPERATOR_RE.match(tok)
            assert m is not None  # the pattern matches any string
            op, rest = m[1] or "", m[2]
            if not rest:
                raise VersionError(f"version range {text!r}: operator {op!r} needs a version")
            expanded = _expand(op, _parse_partial(rest, text))
            if expanded is None:
                impossible = True
            else:
                comps.extend(expanded)
        sets.append(None if impossible else tuple(comps))
    return tuple(sets)


def _satisfies(version: Version, op: str, bound: Version) -> bool:
    if op == "=":
        return version == bound
    if op == "<":
        return version < bound
    if op == "<=":
        return version <= bound
    if op == ">":
        return version > bound
    return version >= bound


def _set_matches(version: Version, comps: tuple[Comparator, ...]) -> bool:
    if not all(_satisfies(version, op, bound) for op, bound in comps):
        return False
    if version.prerelease:
        return any(bound.prerelease and bound.core == version.core for _, bound in comps)
    return True


def version_matches(version: str | Version, requirement: str) -> bool:
    """Whether ``version`` satisfies the npm-style ``requirement``."""
    v = parse_version(version)
    return any(comps is not None and _set_matches(v, comps) for comps in parse_range(requirement))


def max_satisfying(versions: list[str] | list[Version], requirement: str) -> str | None:
    """The highest of ``versions`` that satisfies ``requirement`` (as given), or None."""
    best: tuple[Version, str] | None = None
    for raw in versions:
        v = parse_version(raw)
        if version_matches(v, requirement) and (best is None or v > best[0]):
            best = (v, str(raw))
    return None if best is None else best[1]
