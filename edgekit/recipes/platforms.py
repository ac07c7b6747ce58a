"""Which manifest of a recipe a core device uses: platform matching and manifest selection.

The rules are the nucleus's (``PlatformHelper`` of aws-greengrass-component-common,
which the recipe reference's "Manifests" section describes):

* A manifest without ``Platform`` (or with an empty one) matches every device.
* Every attribute of ``Platform`` must match the device's attribute of the same name
  (``os``, ``architecture``, ``architecture.detail``, or one you define); names are
  compared exactly, as the nucleus looks them up.
* A value matches when it is: the device's value, compared exactly (case-sensitive);
  ``*`` (any value, or none); ``//`` (any value, but the attribute must exist);
  ``/regex/`` (a regular expression the whole device value matches); ``all`` or
  ``any`` for ``os`` and ``architecture``; a list of such values (any one matching);
  ``None`` (the device must not have the attribute).
* Anything else that does not start with a letter or digit never matches (reserved by
  the nucleus for future syntax).
* The device uses the FIRST manifest that matches; none matching = not installable.

Device attributes come from the caller (the device runtime's ``device_platform()`` or a
ResolveComponentCandidates request); this module never looks at the machine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "OS_ARCH_WILDCARDS",
    "manifest_platforms",
    "matches_every_platform",
    "platform_matches",
    "platform_value_matches",
    "select_manifest",
    "select_manifest_index",
]

# Values the nucleus treats as wildcards for the os and architecture attributes only.
OS_ARCH_WILDCARDS = ("all", "any")
_OS_ARCH = ("os", "architecture")
_SIMPLE_LABEL = re.compile(r"^[a-zA-Z0-9]")


def platform_value_matches(name: str, label: str | None, template: Any) -> bool:
    """Whether one ``Platform`` value (``template``) accepts the device's ``label``
    for the attribute ``name`` (None when the device lacks the attribute)."""
    if isinstance(template, list):
        return any(_single_value_matches(name, label, t) for t in template)
    return _single_value_matches(name, label, template)


def _single_value_matches(name: str, label: str | None, template: Any) -> bool:
    if template == "*":
        return True  # matches any value, and a missing one
    if template is None:
        return label is None  # an explicit "has no value" test
    if label is None or not isinstance(template, str):
        return False
    if template == "//":
        return True  # an explicit "has a value" test
    if len(template) > 2 and template.startswith("/") and template.endswith("/"):
        try:
            return re.fullmatch(template[1:-1], label) is not None
        except re.error:
            return False  # validation reports the bad pattern; it matches nothing
    if name in _OS_ARCH and template in OS_ARCH_WILDCARDS:
        return True
    if not _SIMPLE_LABEL.match(template):
        return False  # reserved syntax: the nucleus matches nothing
    return template == label


def platform_matches(platform: Mapping[str, Any] | None, device: Mapping[str, str]) -> bool:
    """Whether a manifest's ``Platform`` accepts a device's platform attributes.

    ``device`` holds the core device's attributes, e.g. ``{"os": "linux",
    "architecture": "amd64"}``. No (or an empty) Platform matches every device.
    """
    if not platform:
        return True
    if not isinstance(platform, Mapping):
        return False
    return all(platform_value_matches(k, device.get(k), v) for k, v in platform.items())


def select_manifest_index(recipe: Mapping[str, Any], device: Mapping[str, str]) -> int | None:
    """The index of the first manifest the device matches, or None."""
    for i, manifest in enumerate(recipe.get("Manifests") or []):
        if isinstance(manifest, Mapping) and platform_matches(manifest.get("Platform"), device):
            return i
    return None


def select_manifest(recipe: Mapping[str, Any], device: Mapping[str, str]) -> dict[str, Any] | None:
    """The first manifest whose platform the device matches, or None (not installable).

    ``recipe`` must be normalized (:func:`edgekit.recipes.normalize_recipe`), so its keys
    have their documented spelling.
    """
    index = select_manifest_index(recipe, device)
    return None if index is None else dict(recipe["Manifests"][index])


def matches_every_platform(manifest: Mapping[str, Any]) -> bool:
    """Whether a manifest matches any device whatever its attributes (so the manifests
    after it are never used)."""
    platform = manifest.get("Platform")
    if not platform:
        return True
    if not isinstance(platform, Mapping):
        return False

    def wildcard(key: str, value: Any) -> bool:
        if isinstance(value, list):
            return any(wildcard(key, v) for v in value)
        return value == "*" or (key in _OS_ARCH and value in OS_ARCH_WILDCARDS)

    return all(wildcard(k, v) for k, v in platform.items())


def manifest_platforms(recipe: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``ComponentPlatform`` list (name + attributes) the service shows for a recipe."""
    platforms: list[dict[str, Any]] = []
    for manifest in recipe.get("Manifests") or []:
        if not isinstance(manifest, Mapping):
            continue
        attrs = manifest.get("Platform") or {}
        attrs = {str(k): str(v) for k, v in attrs.items()} if isinstance(attrs, Mapping) else {}
        name = manifest.get("Name") or " ".join(
            attrs[k] for k in ("os", "architecture") if k in attrs
        )
        entry: dict[str, Any] = {"attributes": attrs}
        if name:
            entry["name"] = str(name)
        platforms.append(entry)
    return platforms
