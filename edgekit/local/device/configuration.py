"""Component configuration as the Greengrass nucleus resolves it during a deployment.

The running configuration is patched, never replaced: reset paths are removed
first, then the merge document is merged in, then the recipe's
``DefaultConfiguration`` fills in every key that is still missing (so a reset
path falls back to its default, or disappears if it has none, and ``""`` resets
everything). Objects merge key by key; any other value (lists included)
replaces the old one.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from edgekit.errors import DeploymentError
from edgekit.local.device.failures import DeploymentFailure
from edgekit.recipes.limits import MAX_NESTING_DEPTH, nesting_depth

_MISSING = object()
# Objects and lists nested deeper than this in a configuration fail the deployment (the
# merge, the result and the recipe defaults alike): merging walks them recursively. The
# same limit as the control plane's (edgekit.recipes.limits).
MAX_CONFIGURATION_DEPTH = MAX_NESTING_DEPTH


def check_depth(value: Any, component: str, what: str) -> None:
    """Fail the deployment when ``value`` nests deeper than MAX_CONFIGURATION_DEPTH."""
    depth = nesting_depth(value)
    if depth > MAX_CONFIGURATION_DEPTH:
        raise DeploymentFailure(
            f"component {component}: {what} is nested {depth} levels deep, more than the "
            f"{MAX_CONFIGURATION_DEPTH} levels the device accepts; flatten the configuration "
            "and deploy again",
            codes=["COMPONENT_CONFIGURATION_NOT_VALID"],
            types=["REQUEST_ERROR"],
        )


def parse_pointer(pointer: str) -> list[str]:
    """RFC 6901 JSON pointer -> list of keys (``""`` is the whole document)."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise DeploymentError(
            f"configuration path {pointer!r} is not a JSON pointer; it must start with '/' "
            "(e.g. '/network/port') or be '' for the whole configuration"
        )
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]


def get_path(document: Any, keys: list[str], default: Any = _MISSING) -> Any:
    """The value at ``keys`` (list indexes allowed as numbers); KeyError if absent."""
    node = document
    for key in keys:
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            if default is not _MISSING:
                return default
            raise KeyError("/" + "/".join(keys))
    return node


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` merged into a copy of ``base``: objects recursively, other values replace."""
    result = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def fill_missing(config: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Add every key of ``defaults`` that ``config`` lacks (recursively); existing values win."""
    result = copy.deepcopy(config)
    for key, value in defaults.items():
        if key not in result:
            result[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(result[key], dict):
            result[key] = fill_missing(result[key], value)
    return result


def remove_path(config: dict[str, Any], keys: list[str]) -> None:
    """Delete the value at ``keys`` in place; silently nothing if it is not there."""
    node: Any = config
    for key in keys[:-1]:
        if not isinstance(node, dict) or key not in node:
            return
        node = node[key]
    if isinstance(node, dict):
        node.pop(keys[-1], None)


def set_path(config: dict[str, Any], keys: list[str], value: Any) -> None:
    """Set ``value`` at ``keys`` in place, creating (or replacing non-object) parents."""
    node = config
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[keys[-1]] = copy.deepcopy(value)


def parse_merge(merge: Any, component: str) -> dict[str, Any]:
    """The deployment's ``merge`` (a JSON string, or an object) as a dict."""
    if merge is None or merge == "":
        return {}
    if isinstance(merge, str):
        try:
            merge = json.loads(merge)
        except json.JSONDecodeError as exc:
            raise DeploymentError(
                f"component {component}: configurationUpdate.merge is not valid JSON ({exc})"
            ) from exc
        except RecursionError as exc:  # nested too deeply for the JSON parser
            raise DeploymentFailure(
                f"component {component}: configurationUpdate.merge is nested more than "
                f"{MAX_CONFIGURATION_DEPTH} levels deep (too deep to parse); flatten the "
                "configuration and deploy again",
                codes=["COMPONENT_CONFIGURATION_NOT_VALID"],
                types=["REQUEST_ERROR"],
            ) from exc
    if not isinstance(merge, dict):
        raise DeploymentError(
            f"component {component}: configurationUpdate.merge must be a JSON object, "
            f"not {type(merge).__name__}"
        )
    check_depth(merge, component, "configurationUpdate.merge")
    return merge


def resolve_configuration(
    current: dict[str, Any] | None,
    defaults: dict[str, Any] | None,
    update: dict[str, Any] | None,
    component: str,
) -> dict[str, Any]:
    """The configuration a component gets: reset, then merge, then defaults fill the gaps."""
    update = update or {}
    merge = parse_merge(update.get("merge"), component)
    if defaults:
        check_depth(defaults, component, "the recipe's DefaultConfiguration")
    config = copy.deepcopy(current) if current else {}
    for pointer in update.get("reset") or []:
        keys = parse_pointer(pointer)
        if not keys:
            config = {}
        else:
            remove_path(config, keys)
    config = deep_merge(config, merge)
    if defaults:
        config = fill_missing(config, defaults)
    check_depth(config, component, "the resulting configuration")
    return config


def changed_paths(old: Any, new: Any, prefix: list[str] | None = None) -> list[list[str]]:
    """Key paths whose value differs between two configurations (the top-most ones)."""
    prefix = prefix or []
    if isinstance(old, dict) and isinstance(new, dict):
        paths: list[list[str]] = []
        for key in sorted(set(old) | set(new)):
            if key not in old or key not in new:
                paths.append([*prefix, key])
            elif old[key] != new[key]:
                paths.extend(changed_paths(old[key], new[key], [*prefix, key]))
        return paths
    return [] if old == new else [prefix]
