"""Field-level checks of a (normalized) recipe; each adds ``(field path, message)`` problems.

:mod:`edgekit.recipes.validate` walks the recipe and calls these; see its docstring
for where each rule comes from.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from edgekit.recipes.artifacts import artifact_file_name
from edgekit.recipes.schema import (
    ARTIFACT_KEYS,
    ARTIFACT_PERMISSIONS,
    ARTIFACT_SCHEMES,
    IGNORED_LIFECYCLE_STEPS,
    LIFECYCLE_KEYS,
    LIFECYCLE_STEPS,
    MAX_VERSION_PART,
    PERMISSION_KEYS,
    RECIPE_MAX_BYTES,
    SKIPIF_RE,
    STEP_FIELDS,
    UNARCHIVE_TYPES,
    URI_BAD_ESCAPE_RE,
    URI_ILLEGAL_RE,
    VARIABLE_FORMS,
    VARIABLE_RE,
)
from edgekit.recipes.semver import VersionError, parse_version


class Problems:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.items.append((field, message))


def type_name(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "empty (null)",
    }.get(type(value), type(value).__name__)


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def unknown_keys(
    mapping: Mapping[str, Any], known: tuple[str, ...], path: str, p: Problems
) -> None:
    for key in mapping:
        if key not in known:
            p.add(
                _join(path, key),
                f"is not a recipe field here; use one of {', '.join(known)} (check the spelling)",
            )


def check_string(value: Any, path: str, p: Problems, *, hint: str = "") -> bool:
    if isinstance(value, str):
        return True
    extra = f"; {hint}" if hint else ""
    p.add(path, f"must be a string, got {type_name(value)}{extra}")
    return False


def check_choice(value: Any, choices: tuple[str, ...], path: str, p: Problems) -> None:
    """An enumerated value: one of ``choices``, in any letter case (as the service reads it)."""
    if not isinstance(value, str) or value.lower() not in {c.lower() for c in choices}:
        p.add(path, f"{value!r} is not one of {', '.join(choices)}")


def check_keys_are_strings(value: Any, path: str, p: Problems) -> None:
    """JSON object keys are strings; YAML reads unquoted on/off/yes/no/1 as other types."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                p.add(
                    _join(path, key),
                    f"key {key!r} is {type_name(key)}, not text (YAML reads unquoted "
                    "yes/no/on/off/true/false and numbers as values); quote the key",
                )
            check_keys_are_strings(item, _join(path, key), p)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_keys_are_strings(item, f"{path}[{i}]", p)


def check_setenv(value: Any, path: str, p: Problems) -> None:
    if not isinstance(value, Mapping):
        p.add(
            path,
            f"must be a mapping of environment variable names to values, got {type_name(value)}",
        )
        return
    for name, val in value.items():
        if not isinstance(val, str | int | float | bool):
            p.add(f"{path}.{name}", f"must be a string, number or boolean, got {type_name(val)}")


def check_step(
    step: Any, path: str, p: Problems, *, selections: bool, script_required: bool
) -> None:
    if isinstance(step, str):
        return
    if not isinstance(step, Mapping):
        p.add(path, f"must be a script string or a mapping with Script, got {type_name(step)}")
        return
    unknown_keys(step, STEP_FIELDS, path, p)
    if "Script" not in step:
        if script_required:
            p.add(
                f"{path}.Script", "is required when the step is a mapping; add the command to run"
            )
    else:
        script = step["Script"]
        if selections and isinstance(script, Mapping):
            for key, value in script.items():
                check_string(value, f"{path}.Script.{key}", p)
        else:
            check_string(script, f"{path}.Script", p)
    if "Skipif" in step:
        skipif = step["Skipif"]
        if check_string(skipif, f"{path}.Skipif", p) and not SKIPIF_RE.match(skipif.strip()):
            p.add(f"{path}.Skipif", f"{skipif!r} must be 'onpath EXECUTABLE' or 'exists FILE'")
    if "RequiresPrivilege" in step:
        value = step["RequiresPrivilege"]
        if not (
            isinstance(value, bool)
            or (isinstance(value, str) and value.lower() in ("true", "false"))
        ):
            p.add(f"{path}.RequiresPrivilege", f"must be true or false, got {value!r}")
    if "Timeout" in step:
        value = step["Timeout"]
        ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
        if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
            ok = True
        if not ok:
            p.add(f"{path}.Timeout", f"must be a positive whole number of seconds, got {value!r}")
    if "Setenv" in step:
        check_setenv(step["Setenv"], f"{path}.Setenv", p)


def check_manifest_lifecycle(
    lifecycle: Any, path: str, p: Problems, *, script_required: bool
) -> None:
    if not isinstance(lifecycle, Mapping):
        p.add(
            path,
            f"must be a mapping of lifecycle steps ({', '.join(LIFECYCLE_STEPS)}), got "
            f"{type_name(lifecycle)}",
        )
        return
    unknown_keys(lifecycle, LIFECYCLE_KEYS, path, p)
    for key, value in lifecycle.items():
        if key == "Setenv":
            check_setenv(value, f"{path}.Setenv", p)
        elif key in LIFECYCLE_STEPS:
            check_step(value, f"{path}.{key}", p, selections=False, script_required=script_required)
        elif key in IGNORED_LIFECYCLE_STEPS:  # accepted; the device ignores it with a warning
            check_step(value, f"{path}.{key}", p, selections=False, script_required=False)
    if "Run" in lifecycle and "Startup" in lifecycle:
        p.add(f"{path}.Startup", "a lifecycle may define Run or Startup, not both; keep one")


def check_global_lifecycle(
    lifecycle: Any, path: str, p: Problems, *, script_required: bool, depth: int = 0
) -> None:
    if not isinstance(lifecycle, Mapping):
        p.add(
            path,
            f"must be a mapping of lifecycle steps or selection keys, got {type_name(lifecycle)}",
        )
        return
    if depth > 8:
        p.add(path, "selection keys are nested too deeply")
        return
    for key, value in lifecycle.items():
        if key == "Setenv":
            check_setenv(value, f"{path}.Setenv", p)
        elif key in LIFECYCLE_STEPS:
            check_step(value, f"{path}.{key}", p, selections=True, script_required=script_required)
        elif key in IGNORED_LIFECYCLE_STEPS:  # accepted; the device ignores it with a warning
            check_step(value, f"{path}.{key}", p, selections=True, script_required=False)
        else:  # a selection key naming a sub-section of the lifecycle
            check_global_lifecycle(
                value, f"{path}.{key}", p, script_required=script_required, depth=depth + 1
            )
    if "Run" in lifecycle and "Startup" in lifecycle:
        p.add(f"{path}.Startup", "a lifecycle may define Run or Startup, not both; keep one")


def _iter_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _iter_strings(item, _join(path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _iter_strings(item, f"{path}[{i}]")


def check_variables(
    lifecycle: Any, path: str, p: Problems, *, own_name: Any, dependencies: set[str]
) -> None:
    """Recipe variables in lifecycle text: a form the device knows, naming a direct
    dependency (or nothing); the device leaves anything else as literal text."""
    for where, text in _iter_strings(lifecycle, path):
        for match in VARIABLE_RE.finditer(text):
            variable, dep, ns, rest = match[0], match["dep"], match["ns"], match["rest"]
            if ns == "configuration":
                if not rest.startswith("/"):
                    p.add(
                        where,
                        f"{variable}: a configuration variable takes a JSON pointer that "
                        f"starts with '/', e.g. {{configuration:/{rest}}}",
                    )
            elif rest not in VARIABLE_FORMS[ns]:
                forms = " or ".join(f"{{{ns}:{form}}}" for form in VARIABLE_FORMS[ns])
                p.add(where, f"{variable} is not a recipe variable; use {forms}")
            if dep is None:
                continue
            if ns in ("kernel", "iot"):
                p.add(where, f"{variable}: {{{ns}:...}} takes no component name; remove {dep}:")
            elif dep != own_name and dep not in dependencies:
                p.add(
                    where,
                    f"{variable} names {dep}, which is not in ComponentDependencies; a recipe "
                    "variable may name only a direct dependency (or leave the name out to "
                    "mean this component)",
                )


def check_platform_value(value: Any, field: str, p: Problems) -> None:
    if isinstance(value, list):
        p.add(
            field,
            "must be a single string (Greengrass platform attributes are strings); for "
            "alternatives use a regular expression such as /linux|darwin/",
        )
        return
    if not check_string(value, field, p, hint="quote the value"):
        return
    if value in ("*", "all", "any", "//"):
        return
    if len(value) > 2 and value.startswith("/") and value.endswith("/"):
        try:
            re.compile(value[1:-1])
        except re.error as exc:
            p.add(field, f"regular expression {value!r} is invalid: {exc}")
        return
    if not value or not value[0].isalnum():
        p.add(
            field,
            f"{value!r} must start with a letter or digit, be '*', or be a regular "
            "expression between slashes such as /linux|darwin/",
        )


def check_platform(platform: Any, path: str, p: Problems) -> None:
    if not isinstance(platform, Mapping):
        p.add(
            path,
            f"must be a mapping such as {{os: linux, architecture: amd64}}, got "
            f"{type_name(platform)}",
        )
        return
    for key, value in platform.items():
        check_platform_value(value, f"{path}.{key}", p)


def check_uri(uri: str, path: str, p: Problems) -> str | None:
    """Problems with an artifact URI; returns the artifact's file name when it has one."""
    bad = URI_ILLEGAL_RE.search(uri)
    if bad:
        p.add(
            path,
            f"{uri!r} is not a valid URI: {bad[0]!r} at position {bad.start()} must be "
            "percent-encoded (a space is %20); better, rename the file",
        )
        return None
    if URI_BAD_ESCAPE_RE.search(uri):
        p.add(path, f"{uri!r} is not a valid URI: '%' must start an escape such as %20 or %25")
        return None
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    if scheme not in ARTIFACT_SCHEMES:
        p.add(path, f"{uri!r} must start with s3://, docker: or greengrass:")
        return None
    if scheme == "s3":
        if not re.match(r"^s3://[^/]+/.*[^/]$", uri, re.IGNORECASE):
            p.add(path, f"{uri!r} must name an object: s3://BUCKET/KEY")
            return None
        return artifact_file_name(uri)
    if scheme == "greengrass":
        return artifact_file_name(uri)
    return None  # docker: images are not files in the artifacts folder


def check_artifact(artifact: Any, path: str, p: Problems) -> str | None:
    if not isinstance(artifact, Mapping):
        p.add(path, f"must be a mapping with a URI, got {type_name(artifact)}")
        return None
    unknown_keys(artifact, ARTIFACT_KEYS, path, p)
    name: str | None = None
    if "URI" not in artifact:
        p.add(f"{path}.URI", "is required; give the artifact location, e.g. s3://BUCKET/KEY")
    elif check_string(artifact["URI"], f"{path}.URI", p):
        name = check_uri(artifact["URI"], f"{path}.URI", p)
    if "Unarchive" in artifact:
        check_choice(artifact["Unarchive"], UNARCHIVE_TYPES, f"{path}.Unarchive", p)
    if "Permission" in artifact:
        perm = artifact["Permission"]
        if not isinstance(perm, Mapping):
            p.add(
                f"{path}.Permission",
                f"must be a mapping with Read and/or Execute, got {type_name(perm)}",
            )
        else:
            unknown_keys(perm, PERMISSION_KEYS, f"{path}.Permission", p)
            for key in PERMISSION_KEYS:
                if key in perm:
                    check_choice(perm[key], ARTIFACT_PERMISSIONS, f"{path}.Permission.{key}", p)
    for key in ("Digest", "Algorithm"):
        if key in artifact:
            check_string(artifact[key], f"{path}.{key}", p)
    return name


def check_version(value: Any, p: Problems) -> None:
    path = "ComponentVersion"
    if isinstance(value, int | float) and not isinstance(value, bool):
        p.add(
            path,
            f"must be a string; quote it, e.g. ComponentVersion: '{value}.0'"
            if isinstance(value, float)
            else f"must be a string such as '{value}.0.0'",
        )
        return
    if not check_string(value, path, p):
        return
    if len(value) > 64:
        p.add(path, "is longer than 64 characters")
        return
    try:
        version = parse_version(value)
    except VersionError:
        p.add(path, f"{value!r} is not a semantic version; use MAJOR.MINOR.PATCH such as '1.0.0'")
        return
    if max(version.core) > MAX_VERSION_PART:
        p.add(path, f"{value!r}: major, minor and patch can't exceed {MAX_VERSION_PART}")


def check_size(size: int, p: Problems) -> None:
    if size > RECIPE_MAX_BYTES:
        p.add(
            "",
            f"is {size:,} bytes; Greengrass accepts recipes up to 16 kB ({RECIPE_MAX_BYTES:,} "
            "bytes): shorten the lifecycle scripts (move long ones into an artifact) or the "
            "default configuration",
        )
