"""Recipe templates: ``component/<ComponentName>/recipe.yaml`` with ``@@PLACEHOLDER@@`` values.

The templates install with edgekit (:func:`edgekit.resources.components_dir`);
``$EDGEKIT_COMPONENTS_DIR`` points at another folder laid out the same way.

A template is a valid Greengrass recipe except for placeholders, which the
build and publish steps fill in (names, version, S3 prefix, key, digests of
the package...). ``{...}`` recipe variables are left for the device. Filling
works on the parsed document (keys and values), so a value with quotes or new
lines (a PEM key) never breaks the YAML.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit import resources
from edgekit.errors import ConfigurationError, RecipeError
from edgekit.recipes import load_recipe

PLACEHOLDER = re.compile(r"@@([A-Z0-9_]+)@@")
ROLES = ("model", "agent", "inference")
# Template folder of each role (the default component names).
TEMPLATE_DIRS = {
    "model": "com.qualityinspection.model",
    "agent": "com.qualityinspection.agent",
    "inference": "com.qualityinspection",
}
RECIPE_FILES = ("recipe.yaml", "recipe.yml", "recipe.json")
COMPONENTS_DIR_ENV = "EDGEKIT_COMPONENTS_DIR"


def components_dir() -> Path:
    """The templates folder: ``$EDGEKIT_COMPONENTS_DIR``, else the one installed with edgekit."""
    env = os.environ.get(COMPONENTS_DIR_ENV)
    if not env:
        return resources.components_dir()
    folder = Path(env).expanduser()
    if not folder.is_dir():
        raise ConfigurationError(
            f"{folder}: component templates not found; set {COMPONENTS_DIR_ENV} to a folder "
            "laid out like edgekit's component/ (one folder per component with its recipe), "
            "or unset it to use the templates installed with edgekit"
        )
    return folder


def template_path(role: str, folder: Path | None = None) -> Path:
    base = (folder or components_dir()) / TEMPLATE_DIRS[role]
    for name in RECIPE_FILES:
        if (base / name).is_file():
            return base / name
    raise ConfigurationError(f"{base}: no recipe template ({' or '.join(RECIPE_FILES)})")


def shared_file(name: str, folder: Path | None = None) -> Path:
    path = (folder or components_dir()) / "shared" / name
    if not path.is_file():
        raise ConfigurationError(f"{path}: missing; the component templates are incomplete")
    return path


@dataclass(frozen=True)
class Template:
    role: str
    path: Path
    document: dict[str, Any]

    @classmethod
    def load(cls, role: str, folder: Path | None = None) -> Template:

        path = template_path(role, folder)
        return cls(role, path, load_recipe(path.read_bytes(), source=str(path)))

    def placeholders(self) -> set[str]:
        found: set[str] = set()
        _walk(self.document, lambda text, where: found.update(PLACEHOLDER.findall(text)) or text)
        return found

    def generated_configuration(self) -> list[str]:
        """JSON pointers of the ``DefaultConfiguration`` keys the build fills in (a placeholder
        in the key's value or below it): ``/PublicKey``, ``/ModelVersion``...

        A deployment resets them (Greengrass ``configurationUpdate.reset``) so each device
        takes the new version's values instead of keeping those of an older deployment.
        """
        defaults = (self.document.get("ComponentConfiguration") or {}).get(
            "DefaultConfiguration"
        ) or {}
        pointers = []
        for key, value in defaults.items():
            found: set[str] = set(PLACEHOLDER.findall(str(key)))
            _walk(value, _collector(found))
            if found:
                pointers.append("/" + str(key).replace("~", "~0").replace("/", "~1"))
        return pointers

    def render(self, values: Mapping[str, str]) -> dict[str, Any]:
        """The recipe with every placeholder filled; RecipeError naming a missing one."""

        def fill(text: str, where: str) -> str:
            def one(match: re.Match[str]) -> str:
                key = match.group(1)
                if key not in values:
                    raise RecipeError(
                        f"{self.path}: {where}: placeholder @@{key}@@ has no value; known: "
                        + ", ".join(sorted(values))
                    )
                return str(values[key])

            return PLACEHOLDER.sub(one, text)

        return _walk(self.document, fill)


def _collector(found: set[str]) -> Any:
    """A ``_walk`` callback that adds the placeholders it sees to ``found``."""

    def see(text: str, where: str) -> str:
        found.update(PLACEHOLDER.findall(text))
        return text

    return see


def _walk(node: Any, fill: Any, where: str = "") -> Any:
    if isinstance(node, str):
        return fill(node, where or "(recipe)")
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for key, value in node.items():
            path = f"{where}.{key}" if where else str(key)
            new_key = fill(key, path) if isinstance(key, str) else key
            out[new_key] = _walk(value, fill, path)
        return out
    if isinstance(node, list):
        return [_walk(v, fill, f"{where}[{i}]") for i, v in enumerate(node)]
    return node
