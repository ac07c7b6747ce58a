"""Which lifecycle a core device runs for the manifest it selected.

The recipe reference ("Manifests" and "Lifecycle"), as the nucleus implements it
(``RecipeLoader.convertLifecycleFromFile`` and ``PlatformResolver.filterPlatform``):

* If the selected manifest has a non-empty ``Lifecycle``, the device uses it, and only it.
* Else it uses the recipe's global ``Lifecycle`` filtered by selection keys. The
  selection keywords are every key named in any manifest's ``Selections``, plus ``all``.
  At a level of the global lifecycle where some key is a selection keyword, the device
  keeps the section of the manifest's first selection present there, else the ``all``
  section, else nothing; the other keys of that level are ignored. Levels without
  selection keywords are kept, filtered recursively. A manifest without ``Selections``
  therefore gets the parts of the global lifecycle outside selection keys, plus the
  ``all`` sections.
* Selection keys are compared exactly (they are not recipe keys).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["ALL_SELECTION", "resolve_lifecycle", "selection_keywords"]

ALL_SELECTION = "all"


def selection_keywords(recipe: Mapping[str, Any]) -> set[str]:
    """Every selection key of the recipe's manifests, plus ``all``."""
    keywords = {ALL_SELECTION}
    for m in recipe.get("Manifests") or []:
        if isinstance(m, Mapping):
            keywords.update(_selectors(m))
    return keywords


def _selectors(manifest: Mapping[str, Any]) -> list[str]:
    selections = manifest.get("Selections") or []
    if isinstance(selections, str):
        return [selections]
    return [s for s in selections if isinstance(s, str)] if isinstance(selections, list) else []


def _filter_selections(source: Any, keywords: set[str], selectors: list[str]) -> Any:
    """The nucleus's selection filter: at a level keyed by selection keywords, keep the
    first selector present (else ``all``); recurse into the rest. None = removed."""
    if not isinstance(source, Mapping):
        return source
    if any(k in keywords for k in source):
        chosen = next((source[s] for s in selectors if source.get(s) is not None), None)
        if chosen is None:
            chosen = source.get(ALL_SELECTION)
        return None if chosen is None else _filter_selections(chosen, keywords, selectors)
    out = {}
    for key, value in source.items():
        filtered = _filter_selections(value, keywords, selectors)
        if filtered is not None:
            out[key] = filtered
    return out


def resolve_lifecycle(recipe: Mapping[str, Any], manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The lifecycle a device runs for ``manifest``: the manifest's own Lifecycle if it has
    one, else the global Lifecycle filtered by the manifest's Selections (and ``all``)."""
    own = manifest.get("Lifecycle")
    if isinstance(own, Mapping) and own:
        return copy.deepcopy(dict(own))
    global_lifecycle = recipe.get("Lifecycle") or {}
    if not isinstance(global_lifecycle, Mapping):
        return {}
    filtered = _filter_selections(
        global_lifecycle, selection_keywords(recipe), _selectors(manifest)
    )
    return copy.deepcopy(filtered) if isinstance(filtered, dict) else {}
