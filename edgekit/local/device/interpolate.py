"""Recipe variables: ``{artifacts:path}``, ``{configuration:/json/pointer}``, ``{iot:thingName}``...

As on Greengrass, a variable may name a component before the namespace
(``{com.example.Dep:configuration:/port}``) but only a direct dependency; a
variable that cannot be resolved (unknown component, missing configuration
key) is left in the text unchanged. Configuration values become their string
form; objects and lists become JSON, null becomes ``null``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.local.device.configuration import get_path, parse_pointer

_VARIABLE = re.compile(r"\{(?:([A-Za-z0-9._-]+):)?([A-Za-z]+):([^{}]+)\}")


@dataclass(frozen=True)
class ComponentPaths:
    artifacts: Path
    decompressed: Path
    work: Path


@dataclass(frozen=True)
class Context:
    """Everything one component's recipe may refer to."""

    component: str
    paths: dict[str, ComponentPaths]  # the component itself and its direct dependencies
    configurations: dict[str, dict[str, Any]]
    root_path: Path
    thing_name: str


def config_to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def interpolate(text: str, ctx: Context, on_unresolved: Callable[[str], None] | None = None) -> str:
    def replace(match: re.Match[str]) -> str:
        owner, namespace, key = match.group(1), match.group(2), match.group(3)
        whole = match.group(0)
        if owner is None:
            if namespace == "kernel" and key == "rootPath":
                return str(ctx.root_path)
            if namespace == "iot" and key == "thingName":
                return ctx.thing_name
            owner = ctx.component
        if owner not in ctx.paths:
            if on_unresolved:
                on_unresolved(f"{whole}: {owner} is not a direct dependency of {ctx.component}")
            return whole
        if namespace == "configuration":
            try:
                value = get_path(ctx.configurations.get(owner, {}), parse_pointer(key))
            except (KeyError, Exception):
                if on_unresolved:
                    on_unresolved(f"{whole}: no configuration value at {key} of {owner}")
                return whole
            return config_to_text(value)
        paths = ctx.paths[owner]
        if namespace == "artifacts" and key == "path":
            return str(paths.artifacts)
        if namespace == "artifacts" and key == "decompressedPath":
            return str(paths.decompressed)
        if namespace == "work" and key == "path":
            return str(paths.work)
        if on_unresolved:
            on_unresolved(f"{whole}: unknown recipe variable")
        return whole

    return _VARIABLE.sub(replace, text)
