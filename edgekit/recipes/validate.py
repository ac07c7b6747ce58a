"""Validating a recipe: every problem as ``(field path, message)``.

Used by the local control plane (CreateComponentVersion), the local device runtime
and ``edgekit components publish``. Every problem names the field path
(``Manifests[0].Artifacts[1].URI``) and what to do about it.

What is checked, and where the rule comes from:

* The recipe JSON Schema published with Greengrass's recipe library
  (aws-greengrass-component-common) and the GDK CLI, which both validate with
  every key lower-cased first: the four required top-level fields, no other top-level
  fields, value types, ``RecipeFormatVersion`` ``2020-01-25``, ``ComponentName``
  ``[a-zA-Z0-9-_.]``, at most 128 characters, not ``.`` or ``..`` (the service refuses
  them; a device would read them as folders), ``ComponentVersion`` a string of at
  most 64 characters, ``ComponentSource`` a Lambda ARN, every dependency with a
  string ``VersionRequirement``, every artifact with a ``URI``, every Platform
  value a string, lifecycle steps a string or a mapping with ``Script``
  (``Script`` is optional only for ``aws.greengrass.plugin`` components),
  ``Skipif`` ``onpath|exists ...``, ``Timeout`` an integer or a numeric string.
* Greengrass's recipe parser (the same library): keys are matched case-insensitively, and so are
  the enumerated values (``ComponentType``, ``DependencyType`` HARD/SOFT,
  ``Unarchive`` NONE/ZIP, ``Permission`` Read/Execute NONE/OWNER/ALL);
  :func:`normalize_recipe` rewrites both to their documented spelling so later
  code reads one spelling. ``ComponentVersion`` is a semantic version whose
  major, minor and patch are at most 999999; pre-release versions are valid
  (AWS's own test framework publishes ``1.0.0-<test id>`` components). Artifact
  URIs must parse as URIs (no spaces; ``%`` only as an escape).
* The recipe reference: ``VersionRequirement`` is an npm-style range; only one
  of ``Run`` / ``Startup``; artifact file names unique within a manifest; a
  manifest for all platforms must be the last one; exact Platform values start
  with a letter or digit (``*`` and ``/regex/`` aside); recipe variables that
  name a component (``{name:configuration:/x}``) may name only a direct
  dependency; configuration variables take a JSON pointer (``/x``).
* The service quota: a recipe is at most 16 kB (the GDK CLI refuses to publish
  more than 16,000 bytes); measured on the bytes sent to CreateComponentVersion.

Where edgekit is deliberately stricter than the schema, it is because the value
would be silently ignored or mangled rather than rejected, i.e. almost surely a
typo: unknown keys inside a manifest, lifecycle, step, artifact, permission,
dependency or ``ComponentConfiguration`` (the schema tolerates them, the
device ignores them: a misspelt ``Skipif`` or a ``Start`` step just never
runs); ``Setenv`` a mapping of strings, numbers or booleans (the schema also
lets a plain string through, which the device ignores); ``DefaultConfiguration``
a mapping or empty (``{configuration:/key}`` needs an object); ``RequiresPrivilege``
``true``/``false``; ``Timeout`` above 0; dependency names that are valid component
names; mapping keys that are strings (YAML reads ``on``/``no`` as booleans, which
JSON would turn into ``"true"``/``"false"``); and the recipe-variable checks above
(the device leaves an unknown variable in the script as literal text).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from edgekit.errors import RecipeError
from edgekit.recipes.checks import (
    Problems,
    check_artifact,
    check_choice,
    check_global_lifecycle,
    check_keys_are_strings,
    check_manifest_lifecycle,
    check_platform,
    check_size,
    check_string,
    check_variables,
    check_version,
    type_name,
    unknown_keys,
)
from edgekit.recipes.limits import nesting_problem
from edgekit.recipes.loading import dump_recipe, load_recipe
from edgekit.recipes.normalize import normalize_recipe
from edgekit.recipes.platforms import matches_every_platform
from edgekit.recipes.schema import (
    COMPONENT_TYPES,
    CONFIGURATION_KEYS,
    DEPENDENCY_KEYS,
    DEPENDENCY_TYPES,
    LAMBDA_ARN_RE,
    MANIFEST_KEYS,
    NAME_RE,
    PLUGIN_COMPONENT_TYPE,
    RECIPE_FORMAT_VERSION,
    RESERVED_NAMES,
    TOP_LEVEL_KEYS,
)
from edgekit.recipes.semver import VersionError, parse_range

__all__ = ["parse_recipe", "recipe_problems", "validate_recipe"]


def _check_format(recipe: Mapping[str, Any], p: Problems) -> None:
    fmt = recipe.get("RecipeFormatVersion")
    if fmt is None:
        p.add(
            "RecipeFormatVersion",
            f"is required; add RecipeFormatVersion: '{RECIPE_FORMAT_VERSION}'",
        )
    elif not isinstance(fmt, str):
        p.add(
            "RecipeFormatVersion",
            f"must be a string, got {type_name(fmt)}; quote it: "
            f"RecipeFormatVersion: '{RECIPE_FORMAT_VERSION}'",
        )
    elif fmt != RECIPE_FORMAT_VERSION:
        p.add("RecipeFormatVersion", f"{fmt!r} is not supported; use '{RECIPE_FORMAT_VERSION}'")


def _check_identity(recipe: Mapping[str, Any], p: Problems) -> None:
    """ComponentName, ComponentVersion, description, publisher, type and source."""
    name = recipe.get("ComponentName")
    if name is None:
        p.add("ComponentName", "is required; name the component, e.g. com.example.HelloWorld")
    elif check_string(name, "ComponentName", p):
        if not name or len(name) > 128:
            p.add("ComponentName", "must be 1 to 128 characters long")
        elif not NAME_RE.match(name):
            p.add("ComponentName", f"{name!r} may only contain letters, digits, '-', '_' and '.'")
        elif name in RESERVED_NAMES:
            p.add(
                "ComponentName",
                f"{name!r} is not a valid component name (it names a folder on the "
                "device); use letters or digits, e.g. com.example.HelloWorld",
            )

    if "ComponentVersion" not in recipe:
        p.add("ComponentVersion", "is required; give a version such as '1.0.0'")
    else:
        check_version(recipe["ComponentVersion"], p)

    for key in ("ComponentDescription", "ComponentPublisher"):
        if key in recipe:
            check_string(recipe[key], key, p, hint="write some text or leave the field out")

    component_type = recipe.get("ComponentType")
    if "ComponentType" in recipe and (
        not isinstance(component_type, str) or component_type.lower() not in COMPONENT_TYPES
    ):
        p.add(
            "ComponentType",
            f"{component_type!r} is not one of "
            f"{', '.join(COMPONENT_TYPES)} (leave it out: the service sets it)",
        )
    if "ComponentSource" in recipe:
        source = recipe["ComponentSource"]
        if check_string(source, "ComponentSource", p) and not LAMBDA_ARN_RE.match(source):
            p.add("ComponentSource", f"{source!r} must be a Lambda function ARN")


def _script_required(recipe: Mapping[str, Any]) -> bool:
    """Only a plugin (runs inside the nucleus) may have lifecycle steps without a Script."""
    component_type = recipe.get("ComponentType")
    return not (isinstance(component_type, str) and component_type.lower() == PLUGIN_COMPONENT_TYPE)


def _check_configuration(recipe: Mapping[str, Any], p: Problems) -> None:
    if "ComponentConfiguration" in recipe:
        config = recipe["ComponentConfiguration"]
        if not isinstance(config, Mapping):
            p.add(
                "ComponentConfiguration",
                f"must be a mapping with DefaultConfiguration, got {type_name(config)}",
            )
        else:
            unknown_keys(config, CONFIGURATION_KEYS, "ComponentConfiguration", p)
            default = config.get("DefaultConfiguration")
            if default is not None and not isinstance(default, Mapping):
                p.add(
                    "ComponentConfiguration.DefaultConfiguration",
                    f"must be a mapping of configuration keys, got {type_name(default)}",
                )
            elif default is not None:
                try:
                    json.dumps(default, allow_nan=False)
                except (TypeError, ValueError) as exc:
                    p.add(
                        "ComponentConfiguration.DefaultConfiguration",
                        f"must hold JSON values only: {exc}",
                    )


def _check_dependencies(recipe: Mapping[str, Any], p: Problems) -> set[str]:
    """Check ComponentDependencies; returns the valid dependency names."""
    dependencies: set[str] = set()
    if "ComponentDependencies" in recipe:
        deps = recipe["ComponentDependencies"]
        if not isinstance(deps, Mapping):
            p.add(
                "ComponentDependencies",
                "must be a mapping of component names to "
                f"{{VersionRequirement, DependencyType}}, got {type_name(deps)}",
            )
        else:
            for dep_name, dep in deps.items():
                path = f"ComponentDependencies.{dep_name}"
                if (
                    not isinstance(dep_name, str)
                    or not NAME_RE.match(dep_name)
                    or dep_name in RESERVED_NAMES
                ):
                    p.add(path, f"{dep_name!r} is not a valid component name")
                else:
                    dependencies.add(dep_name)
                if not isinstance(dep, Mapping):
                    p.add(path, f"must be a mapping with VersionRequirement, got {type_name(dep)}")
                    continue
                unknown_keys(dep, DEPENDENCY_KEYS, path, p)
                req = dep.get("VersionRequirement")
                if req is None:
                    p.add(
                        f"{path}.VersionRequirement",
                        "is required; give an npm-style range such as '^1.0.0' or '>=1.0.0 <2.0.0'",
                    )
                elif check_string(req, f"{path}.VersionRequirement", p, hint="quote it"):
                    try:
                        parse_range(req)
                    except VersionError as exc:
                        p.add(f"{path}.VersionRequirement", str(exc))
                if "DependencyType" in dep:
                    check_choice(
                        dep["DependencyType"], DEPENDENCY_TYPES, f"{path}.DependencyType", p
                    )

    return dependencies


def _check_artifacts(artifacts: Any, path: str, p: Problems) -> None:
    if not isinstance(artifacts, list):
        p.add(path, f"must be a list, got {type_name(artifacts)}")
        return
    seen: dict[str, int] = {}
    for j, artifact in enumerate(artifacts):
        file_name = check_artifact(artifact, f"{path}[{j}]", p)
        if file_name is None:
            continue
        if file_name in seen:
            p.add(
                f"{path}[{j}].URI",
                f"file name {file_name!r} is already used by "
                f"{path}[{seen[file_name]}]; each artifact of a manifest "
                "needs a unique file name",
            )
        else:
            seen[file_name] = j


def _check_selections(sel: Any, path: str, p: Problems) -> None:
    if isinstance(sel, list):
        for j, key in enumerate(sel):
            check_string(key, f"{path}[{j}]", p)
    elif not isinstance(sel, str):
        p.add(path, f"must be a list of selection keys, got {type_name(sel)}")


def _check_manifest(
    manifest: Mapping[str, Any],
    path: str,
    p: Problems,
    *,
    last: bool,
    own_name: Any,
    dependencies: set[str],
    script_required: bool,
) -> None:
    unknown_keys(manifest, MANIFEST_KEYS, path, p)
    if "Name" in manifest:
        check_string(manifest["Name"], f"{path}.Name", p)
    if "Platform" in manifest:
        check_platform(manifest["Platform"], f"{path}.Platform", p)
    if not last and matches_every_platform(manifest):
        p.add(
            f"{path}.Platform" if "Platform" in manifest else path,
            "matches every device, so the manifests after it are never used; move "
            "this manifest last (devices use the first manifest they match)",
        )
    if "Lifecycle" in manifest:
        check_manifest_lifecycle(
            manifest["Lifecycle"], f"{path}.Lifecycle", p, script_required=script_required
        )
        check_variables(
            manifest["Lifecycle"],
            f"{path}.Lifecycle",
            p,
            own_name=own_name,
            dependencies=dependencies,
        )
    if "Selections" in manifest:
        _check_selections(manifest["Selections"], f"{path}.Selections", p)
    if "Artifacts" in manifest:
        _check_artifacts(manifest["Artifacts"], f"{path}.Artifacts", p)


def _check_manifests(
    recipe: Mapping[str, Any], p: Problems, *, dependencies: set[str], script_required: bool
) -> None:
    manifests = recipe.get("Manifests")
    if "Manifests" not in recipe:
        p.add(
            "Manifests",
            "is required; list at least one manifest, e.g. "
            "[{Platform: {os: linux}, Lifecycle: {Run: ...}}]",
        )
        return
    if not isinstance(manifests, list):
        p.add("Manifests", f"must be a list of manifests, got {type_name(manifests)}")
        return
    for i, manifest in enumerate(manifests):
        path = f"Manifests[{i}]"
        if not isinstance(manifest, Mapping):
            p.add(path, f"must be a mapping, got {type_name(manifest)}")
            continue
        _check_manifest(
            manifest,
            path,
            p,
            last=i == len(manifests) - 1,
            own_name=recipe.get("ComponentName"),
            dependencies=dependencies,
            script_required=script_required,
        )


def _check_global_lifecycle(
    recipe: Mapping[str, Any], p: Problems, *, dependencies: set[str], script_required: bool
) -> None:
    if "Lifecycle" not in recipe:
        return
    lifecycle = recipe["Lifecycle"]
    check_global_lifecycle(lifecycle, "Lifecycle", p, script_required=script_required)
    check_variables(
        lifecycle,
        "Lifecycle",
        p,
        own_name=recipe.get("ComponentName"),
        dependencies=dependencies,
    )


def _walk(recipe: Mapping[str, Any], p: Problems) -> None:
    """Every check, in the order problems are reported (top-level fields first)."""
    unknown_keys(recipe, TOP_LEVEL_KEYS, "", p)
    check_keys_are_strings(recipe, "", p)
    _check_format(recipe, p)
    _check_identity(recipe, p)
    _check_configuration(recipe, p)
    dependencies = _check_dependencies(recipe, p)
    script_required = _script_required(recipe)
    _check_manifests(recipe, p, dependencies=dependencies, script_required=script_required)
    _check_global_lifecycle(recipe, p, dependencies=dependencies, script_required=script_required)


def recipe_problems(
    recipe: Mapping[str, Any], *, private: bool = True, encoded_size: int | None = None
) -> list[tuple[str, str]]:
    """Every ``(field path, message)`` wrong with a recipe; [] when valid.

    ``encoded_size``: the size in bytes of the recipe as it goes to CreateComponentVersion;
    default: the size of ``dump_recipe(recipe, "JSON")``, which is what edgekit sends.
    ``private`` is accepted for older callers and changes nothing: the service takes
    pre-release versions for your own components too.
    """
    del private
    p = Problems()
    if not isinstance(recipe, Mapping):
        return [("", f"must be a mapping, got {type_name(recipe)}")]
    too_deep = nesting_problem(dict(recipe))
    if too_deep:
        return [("", too_deep)]
    normalized = normalize_recipe(recipe)
    _walk(normalized, p)
    if encoded_size is None:
        try:
            encoded_size = len(dump_recipe(normalized, "JSON"))
        except (TypeError, ValueError) as exc:
            p.add("", f"holds values JSON can't represent ({exc}); use strings, numbers, lists")
    if encoded_size is not None:
        check_size(encoded_size, p)
    return p.items


def validate_recipe(
    recipe: Mapping[str, Any],
    *,
    source: str = "recipe",
    private: bool = True,
    encoded_size: int | None = None,
) -> None:
    """Raise RecipeError naming the first bad field (all of them in ``.problems``).

    ``encoded_size`` as in :func:`recipe_problems`; ``private`` has no effect.
    """
    problems = recipe_problems(recipe, private=private, encoded_size=encoded_size)
    if problems:
        field, message = problems[0]
        raise RecipeError(message, field=field or None, source=source, problems=problems)


def parse_recipe(
    data: bytes | str | Mapping[str, Any], *, source: str = "recipe", private: bool = True
) -> dict:
    """Load, normalize and validate a recipe; returns the normalized dict.

    Recipe text is held to the 16 kB quota as given (bytes as sent to the service).
    """
    size: int | None = None
    if isinstance(data, bytes | bytearray):
        size = len(data)
    elif isinstance(data, str):
        size = len(data.encode("utf-8"))
    if size is not None:
        oversize = Problems()
        check_size(size, oversize)  # before reading: never parse more than the quota
        if oversize.items:
            field, message = oversize.items[0]
            raise RecipeError(message, field=field or None, source=source)
    recipe = normalize_recipe(load_recipe(data, source=source))
    validate_recipe(recipe, source=source, private=private, encoded_size=size)
    return recipe
