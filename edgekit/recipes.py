"""Greengrass v2 component recipes: load (JSON or YAML), normalize and validate.

One implementation for the three places that read recipes: the local
control plane (CreateComponentVersion), the local device runtime, and
``edgekit components publish``. Every problem names the field path
(``Manifests[0].Artifacts[1].URI``) and what to do about it.

What is checked, and where the rule comes from:

* The recipe JSON Schema published with Greengrass's recipe library
  (aws-greengrass-component-common) and the GDK CLI, which both validate with
  every key lower-cased first: the four required top-level fields, no other top-level
  fields, value types, ``RecipeFormatVersion`` ``2020-01-25``, ``ComponentName``
  ``[a-zA-Z0-9-_.]``, at most 128 characters, ``ComponentVersion`` a string of at
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

import copy
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from edgekit import errors
from edgekit.semver import VersionError, parse_range, parse_version

__all__ = [
    "ARTIFACT_PERMISSIONS",
    "COMPONENT_TYPES",
    "LIFECYCLE_STEPS",
    "RECIPE_FORMAT_VERSION",
    "RECIPE_MAX_BYTES",
    "RecipeError",
    "artifact_file_name",
    "dump_recipe",
    "iter_artifacts",
    "load_recipe",
    "manifest_platforms",
    "normalize_recipe",
    "parse_recipe",
    "parse_s3_uri",
    "platform_matches",
    "recipe_problems",
    "resolve_lifecycle",
    "select_manifest",
    "validate_recipe",
]

RECIPE_FORMAT_VERSION = "2020-01-25"
COMPONENT_TYPES = (
    "aws.greengrass.generic",
    "aws.greengrass.lambda",
    "aws.greengrass.plugin",
    "aws.greengrass.nucleus",
)
LIFECYCLE_STEPS = ("Bootstrap", "Install", "Startup", "Run", "Shutdown", "Recover")
STEP_FIELDS = ("Script", "Skipif", "RequiresPrivilege", "Timeout", "Setenv")
ARTIFACT_PERMISSIONS = ("NONE", "OWNER", "ALL")
UNARCHIVE_TYPES = ("NONE", "ZIP")
ARTIFACT_SCHEMES = ("s3", "docker", "greengrass")
DEPENDENCY_TYPES = ("HARD", "SOFT")
PLUGIN_COMPONENT_TYPE = "aws.greengrass.plugin"
# The Greengrass quota on a component recipe; the GDK CLI enforces it as 16,000 bytes.
RECIPE_MAX_BYTES = 16_000

_TOP_LEVEL = (
    "RecipeFormatVersion",
    "ComponentName",
    "ComponentVersion",
    "ComponentDescription",
    "ComponentPublisher",
    "ComponentType",
    "ComponentSource",
    "ComponentConfiguration",
    "ComponentDependencies",
    "Manifests",
    "Lifecycle",
)
_MANIFEST_KEYS = ("Name", "Platform", "Lifecycle", "Selections", "Artifacts")
_ARTIFACT_KEYS = ("URI", "Unarchive", "Permission", "Digest", "Algorithm")
_PERMISSION_KEYS = ("Read", "Execute")
_DEPENDENCY_KEYS = ("VersionRequirement", "DependencyType")
_CONFIGURATION_KEYS = ("DefaultConfiguration",)
_LIFECYCLE_KEYS = ("Setenv", *LIFECYCLE_STEPS)

_NAME_RE = re.compile(r"^[a-zA-Z0-9\-_.]+$")
_LAMBDA_ARN_RE = re.compile(r"^arn:aws(-(cn|us-gov|iso(-[a-z])?))?:lambda:.*$")
_SKIPIF_RE = re.compile(r"^(onpath|exists)\s+\S.*$", re.DOTALL)
# Characters java.net.URI (how the service parses an artifact URI) refuses unescaped.
_URI_ILLEGAL_RE = re.compile(r'[\s"<>\\^`{|}\x00-\x1f\x7f]')
_URI_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# A recipe variable: {[component:]namespace:rest}, see the recipe reference.
_VARIABLE_RE = re.compile(
    r"\{(?:(?P<dep>[A-Za-z0-9._-]+):)?(?P<ns>artifacts|work|configuration|kernel|iot):"
    r"(?P<rest>[^{}\s]*)\}"
)
_VARIABLE_FORMS = {
    "artifacts": ("path", "decompressedPath"),
    "work": ("path",),
    "kernel": ("rootPath",),
    "iot": ("thingName",),
}
_MAX_VERSION_PART = 999_999


class RecipeError(errors.RecipeError):
    """A recipe is invalid; ``field`` is the path of the first bad field (or None).

    ``problems`` lists every ``(field, message)`` found, so a service can return
    them all at once (as the ValidationException ``fields`` list).
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        source: str = "recipe",
        problems: list[tuple[str, str]] | None = None,
    ) -> None:
        self.field = field
        self.source = source
        self.reason = message
        self.problems = problems if problems is not None else [(field or "", message)]
        where = f"{source}: {field}: " if field else f"{source}: "
        text = where + message
        if len(self.problems) > 1:
            more = "; ".join(f"{f}: {m}" for f, m in self.problems[1:6])
            extra = len(self.problems) - 6
            text += f" (also: {more}{f'; and {extra} more' if extra > 0 else ''})"
        super().__init__(text)


# --- loading ----------------------------------------------------------------


class _RecipeYamlLoader(yaml.SafeLoader):
    """SafeLoader that keeps unquoted dates as text: ``RecipeFormatVersion: 2020-01-25``
    is the string '2020-01-25' for Greengrass, not a date."""


_RecipeYamlLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_recipe(data: bytes | str | Mapping[str, Any], *, source: str = "recipe") -> dict:
    """Read a recipe from JSON or YAML text (or copy a mapping); no validation.

    Raises RecipeError naming ``source`` and the line of a syntax error.
    """
    if isinstance(data, Mapping):
        return copy.deepcopy(dict(data))
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise RecipeError(
                f"is not UTF-8 text (byte {exc.start}); save the recipe as UTF-8 JSON or YAML",
                source=source,
            ) from None
    elif isinstance(data, str):
        text = data
    else:
        raise RecipeError(
            f"expected recipe text or a dict, got {type(data).__name__}", source=source
        )
    if not text.strip():
        raise RecipeError("is empty; write the recipe as a JSON or YAML document", source=source)
    json_error: json.JSONDecodeError | None = None
    if text.lstrip().startswith("{"):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            json_error = exc  # maybe a YAML flow mapping; YAML gets a try below
    if json_error is not None or not text.lstrip().startswith("{"):
        try:
            loaded = yaml.load(text, Loader=_RecipeYamlLoader)  # noqa: S506 - safe loader subclass
        except yaml.YAMLError as exc:
            if json_error is not None:
                raise RecipeError(
                    f"is not valid JSON: {json_error.msg} at line {json_error.lineno} column "
                    f"{json_error.colno}",
                    source=source,
                ) from None
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise RecipeError(f"is not valid YAML: {problem}{where}", source=source) from None
    if not isinstance(loaded, dict):
        raise RecipeError(
            f"must be a JSON object / YAML mapping at the top level, got {type(loaded).__name__}",
            source=source,
        )
    return loaded


def dump_recipe(recipe: Mapping[str, Any], fmt: str = "JSON") -> bytes:
    """Serialize a recipe as JSON or YAML bytes (key order kept)."""
    if fmt.upper() == "YAML":
        return yaml.safe_dump(dict(recipe), sort_keys=False, allow_unicode=True).encode("utf-8")
    if fmt.upper() == "JSON":
        return json.dumps(recipe, indent=2, ensure_ascii=False).encode("utf-8")
    raise RecipeError(f"unknown recipe format {fmt!r}; use JSON or YAML")


# --- normalizing ------------------------------------------------------------


def _canonical(mapping: Mapping[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    """Rename keys matching ``known`` case-insensitively to their documented spelling."""
    lookup = {k.lower(): k for k in known}
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = lookup.get(key.lower(), key) if isinstance(key, str) else key
        if name in out:  # e.g. both "Run" and "run": keep both visible to validation
            name = key
        out[name] = value
    return out


def _canonical_value(value: Any, choices: tuple[str, ...]) -> Any:
    """``value`` in its documented spelling when it matches one of ``choices`` ignoring
    case (the service reads these enumerations case-insensitively); else unchanged."""
    if isinstance(value, str):
        for choice in choices:
            if value.lower() == choice.lower():
                return choice
    return value


def _normalize_step(step: Any) -> Any:
    return _canonical(step, STEP_FIELDS) if isinstance(step, Mapping) else step


def _normalize_lifecycle(lifecycle: Any, *, selections: bool) -> Any:
    if not isinstance(lifecycle, Mapping):
        return lifecycle
    out = _canonical(lifecycle, _LIFECYCLE_KEYS)
    for key, value in list(out.items()):
        if key in LIFECYCLE_STEPS:
            out[key] = _normalize_step(value)
        elif selections and key != "Setenv" and isinstance(value, Mapping):
            out[key] = _normalize_lifecycle(value, selections=True)
    return out


def normalize_recipe(recipe: Mapping[str, Any]) -> dict:
    """A copy of ``recipe`` with every known key, and every enumerated value
    (ComponentType, DependencyType, Unarchive, Permission), in its documented spelling.

    Unknown keys and values are kept as they are (validation reports them).
    """
    out = _canonical(copy.deepcopy(dict(recipe)), _TOP_LEVEL)
    if "ComponentType" in out:
        out["ComponentType"] = _canonical_value(out["ComponentType"], COMPONENT_TYPES)
    config = out.get("ComponentConfiguration")
    if isinstance(config, Mapping):
        out["ComponentConfiguration"] = _canonical(config, _CONFIGURATION_KEYS)
    deps = out.get("ComponentDependencies")
    if isinstance(deps, Mapping):
        new_deps: dict[Any, Any] = {}
        for name, dep in deps.items():
            if isinstance(dep, Mapping):
                dep = _canonical(dep, _DEPENDENCY_KEYS)
                if "DependencyType" in dep:
                    dep["DependencyType"] = _canonical_value(
                        dep["DependencyType"], DEPENDENCY_TYPES
                    )
            new_deps[name] = dep
        out["ComponentDependencies"] = new_deps
    manifests = out.get("Manifests")
    if isinstance(manifests, list):
        new_manifests: list[Any] = []
        for manifest in manifests:
            if not isinstance(manifest, Mapping):
                new_manifests.append(manifest)
                continue
            m = _canonical(manifest, _MANIFEST_KEYS)
            if "Lifecycle" in m:
                m["Lifecycle"] = _normalize_lifecycle(m["Lifecycle"], selections=False)
            artifacts = m.get("Artifacts")
            if isinstance(artifacts, list):
                new_artifacts: list[Any] = []
                for artifact in artifacts:
                    if isinstance(artifact, Mapping):
                        a = _canonical(artifact, _ARTIFACT_KEYS)
                        if "Unarchive" in a:
                            a["Unarchive"] = _canonical_value(a["Unarchive"], UNARCHIVE_TYPES)
                        if isinstance(a.get("Permission"), Mapping):
                            perm = _canonical(a["Permission"], _PERMISSION_KEYS)
                            for key in _PERMISSION_KEYS:
                                if key in perm:
                                    perm[key] = _canonical_value(perm[key], ARTIFACT_PERMISSIONS)
                            a["Permission"] = perm
                        new_artifacts.append(a)
                    else:
                        new_artifacts.append(artifact)
                m["Artifacts"] = new_artifacts
            new_manifests.append(m)
        out["Manifests"] = new_manifests
    if "Lifecycle" in out:
        out["Lifecycle"] = _normalize_lifecycle(out["Lifecycle"], selections=True)
    return out


# --- helpers shared with the control plane and the device -------------------


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); raises RecipeError if not of that form."""
    m = re.match(r"^s3://([^/]+)/(.+)$", uri or "")
    if not m:
        raise RecipeError(f"{uri!r} is not an S3 URI; write it as s3://BUCKET/KEY")
    return m[1], m[2]


def artifact_file_name(uri: str) -> str:
    """The file name an artifact gets on the device: the last path segment of its URI."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    return rest.rstrip("/").rsplit("/", 1)[-1]


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


# --- validation -------------------------------------------------------------


class _Problems:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.items.append((field, message))


def _type_name(value: Any) -> str:
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


def _unknown_keys(
    mapping: Mapping[str, Any], known: tuple[str, ...], path: str, p: _Problems
) -> None:
    for key in mapping:
        if key not in known:
            p.add(
                _join(path, key),
                f"is not a recipe field here; use one of {', '.join(known)} (check the spelling)",
            )


def _check_string(value: Any, path: str, p: _Problems, *, hint: str = "") -> bool:
    if isinstance(value, str):
        return True
    extra = f"; {hint}" if hint else ""
    p.add(path, f"must be a string, got {_type_name(value)}{extra}")
    return False


def _check_choice(value: Any, choices: tuple[str, ...], path: str, p: _Problems) -> None:
    """An enumerated value: one of ``choices``, in any letter case (as the service reads it)."""
    if not isinstance(value, str) or value.lower() not in {c.lower() for c in choices}:
        p.add(path, f"{value!r} is not one of {', '.join(choices)}")


def _check_keys_are_strings(value: Any, path: str, p: _Problems) -> None:
    """JSON object keys are strings; YAML reads unquoted on/off/yes/no/1 as other types."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                p.add(
                    _join(path, key),
                    f"key {key!r} is {_type_name(key)}, not text (YAML reads unquoted "
                    "yes/no/on/off/true/false and numbers as values); quote the key",
                )
            _check_keys_are_strings(item, _join(path, key), p)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_keys_are_strings(item, f"{path}[{i}]", p)


def _check_setenv(value: Any, path: str, p: _Problems) -> None:
    if not isinstance(value, Mapping):
        p.add(
            path,
            f"must be a mapping of environment variable names to values, got {_type_name(value)}",
        )
        return
    for name, val in value.items():
        if not isinstance(val, str | int | float | bool):
            p.add(f"{path}.{name}", f"must be a string, number or boolean, got {_type_name(val)}")


def _check_step(
    step: Any, path: str, p: _Problems, *, selections: bool, script_required: bool
) -> None:
    if isinstance(step, str):
        return
    if not isinstance(step, Mapping):
        p.add(path, f"must be a script string or a mapping with Script, got {_type_name(step)}")
        return
    _unknown_keys(step, STEP_FIELDS, path, p)
    if "Script" not in step:
        if script_required:
            p.add(
                f"{path}.Script", "is required when the step is a mapping; add the command to run"
            )
    else:
        script = step["Script"]
        if selections and isinstance(script, Mapping):
            for key, value in script.items():
                _check_string(value, f"{path}.Script.{key}", p)
        else:
            _check_string(script, f"{path}.Script", p)
    if "Skipif" in step:
        skipif = step["Skipif"]
        if _check_string(skipif, f"{path}.Skipif", p) and not _SKIPIF_RE.match(skipif.strip()):
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
        _check_setenv(step["Setenv"], f"{path}.Setenv", p)


def _check_manifest_lifecycle(
    lifecycle: Any, path: str, p: _Problems, *, script_required: bool
) -> None:
    if not isinstance(lifecycle, Mapping):
        p.add(
            path,
            f"must be a mapping of lifecycle steps ({', '.join(LIFECYCLE_STEPS)}), got "
            f"{_type_name(lifecycle)}",
        )
        return
    _unknown_keys(lifecycle, _LIFECYCLE_KEYS, path, p)
    for key, value in lifecycle.items():
        if key == "Setenv":
            _check_setenv(value, f"{path}.Setenv", p)
        elif key in LIFECYCLE_STEPS:
            _check_step(
                value, f"{path}.{key}", p, selections=False, script_required=script_required
            )
    if "Run" in lifecycle and "Startup" in lifecycle:
        p.add(f"{path}.Startup", "a lifecycle may define Run or Startup, not both; keep one")


def _check_global_lifecycle(
    lifecycle: Any, path: str, p: _Problems, *, script_required: bool, depth: int = 0
) -> None:
    if not isinstance(lifecycle, Mapping):
        p.add(
            path,
            f"must be a mapping of lifecycle steps or selection keys, got {_type_name(lifecycle)}",
        )
        return
    if depth > 8:
        p.add(path, "selection keys are nested too deeply")
        return
    for key, value in lifecycle.items():
        if key == "Setenv":
            _check_setenv(value, f"{path}.Setenv", p)
        elif key in LIFECYCLE_STEPS:
            _check_step(value, f"{path}.{key}", p, selections=True, script_required=script_required)
        else:  # a selection key naming a sub-section of the lifecycle
            _check_global_lifecycle(
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


def _check_variables(
    lifecycle: Any, path: str, p: _Problems, *, own_name: Any, dependencies: set[str]
) -> None:
    """Recipe variables in lifecycle text: a form the device knows, naming a direct
    dependency (or nothing); the device leaves anything else as literal text."""
    for where, text in _iter_strings(lifecycle, path):
        for match in _VARIABLE_RE.finditer(text):
            variable, dep, ns, rest = match[0], match["dep"], match["ns"], match["rest"]
            if ns == "configuration":
                if not rest.startswith("/"):
                    p.add(
                        where,
                        f"{variable}: a configuration variable takes a JSON pointer that "
                        f"starts with '/', e.g. {{configuration:/{rest}}}",
                    )
            elif rest not in _VARIABLE_FORMS[ns]:
                forms = " or ".join(f"{{{ns}:{form}}}" for form in _VARIABLE_FORMS[ns])
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


def _check_platform_value(value: Any, field: str, p: _Problems) -> None:
    if isinstance(value, list):
        p.add(
            field,
            "must be a single string (Greengrass platform attributes are strings); for "
            "alternatives use a regular expression such as /linux|darwin/",
        )
        return
    if not _check_string(value, field, p, hint="quote the value"):
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


def _check_platform(platform: Any, path: str, p: _Problems) -> None:
    if not isinstance(platform, Mapping):
        p.add(
            path,
            f"must be a mapping such as {{os: linux, architecture: amd64}}, got "
            f"{_type_name(platform)}",
        )
        return
    for key, value in platform.items():
        _check_platform_value(value, f"{path}.{key}", p)


def _matches_every_platform(manifest: Mapping[str, Any]) -> bool:
    platform = manifest.get("Platform")
    if platform is None:
        return True
    if not isinstance(platform, Mapping):
        return False
    return all(
        value == "*" or (key in ("os", "architecture") and value in ("all", "any"))
        for key, value in platform.items()
    )


def _check_uri(uri: str, path: str, p: _Problems) -> str | None:
    """Problems with an artifact URI; returns the artifact's file name when it has one."""
    bad = _URI_ILLEGAL_RE.search(uri)
    if bad:
        p.add(
            path,
            f"{uri!r} is not a valid URI: {bad[0]!r} at position {bad.start()} must be "
            "percent-encoded (a space is %20); better, rename the file",
        )
        return None
    if _URI_BAD_ESCAPE_RE.search(uri):
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


def _check_artifact(artifact: Any, path: str, p: _Problems) -> str | None:
    if not isinstance(artifact, Mapping):
        p.add(path, f"must be a mapping with a URI, got {_type_name(artifact)}")
        return None
    _unknown_keys(artifact, _ARTIFACT_KEYS, path, p)
    name: str | None = None
    if "URI" not in artifact:
        p.add(f"{path}.URI", "is required; give the artifact location, e.g. s3://BUCKET/KEY")
    elif _check_string(artifact["URI"], f"{path}.URI", p):
        name = _check_uri(artifact["URI"], f"{path}.URI", p)
    if "Unarchive" in artifact:
        _check_choice(artifact["Unarchive"], UNARCHIVE_TYPES, f"{path}.Unarchive", p)
    if "Permission" in artifact:
        perm = artifact["Permission"]
        if not isinstance(perm, Mapping):
            p.add(
                f"{path}.Permission",
                f"must be a mapping with Read and/or Execute, got {_type_name(perm)}",
            )
        else:
            _unknown_keys(perm, _PERMISSION_KEYS, f"{path}.Permission", p)
            for key in _PERMISSION_KEYS:
                if key in perm:
                    _check_choice(perm[key], ARTIFACT_PERMISSIONS, f"{path}.Permission.{key}", p)
    for key in ("Digest", "Algorithm"):
        if key in artifact:
            _check_string(artifact[key], f"{path}.{key}", p)
    return name


def _check_version(value: Any, p: _Problems) -> None:
    path = "ComponentVersion"
    if isinstance(value, int | float) and not isinstance(value, bool):
        p.add(
            path,
            f"must be a string; quote it, e.g. ComponentVersion: '{value}.0'"
            if isinstance(value, float)
            else f"must be a string such as '{value}.0.0'",
        )
        return
    if not _check_string(value, path, p):
        return
    if len(value) > 64:
        p.add(path, "is longer than 64 characters")
        return
    try:
        version = parse_version(value)
    except VersionError:
        p.add(path, f"{value!r} is not a semantic version; use MAJOR.MINOR.PATCH such as '1.0.0'")
        return
    if max(version.core) > _MAX_VERSION_PART:
        p.add(path, f"{value!r}: major, minor and patch can't exceed {_MAX_VERSION_PART}")


def _check_size(size: int, p: _Problems) -> None:
    if size > RECIPE_MAX_BYTES:
        p.add(
            "",
            f"is {size:,} bytes; Greengrass accepts recipes up to 16 kB ({RECIPE_MAX_BYTES:,} "
            "bytes): shorten the lifecycle scripts (move long ones into an artifact) or the "
            "default configuration",
        )


def _walk(recipe: Mapping[str, Any], p: _Problems) -> None:
    _unknown_keys(recipe, _TOP_LEVEL, "", p)
    _check_keys_are_strings(recipe, "", p)

    fmt = recipe.get("RecipeFormatVersion")
    if fmt is None:
        p.add(
            "RecipeFormatVersion",
            f"is required; add RecipeFormatVersion: '{RECIPE_FORMAT_VERSION}'",
        )
    elif not isinstance(fmt, str):
        p.add(
            "RecipeFormatVersion",
            f"must be a string, got {_type_name(fmt)}; quote it: "
            f"RecipeFormatVersion: '{RECIPE_FORMAT_VERSION}'",
        )
    elif fmt != RECIPE_FORMAT_VERSION:
        p.add("RecipeFormatVersion", f"{fmt!r} is not supported; use '{RECIPE_FORMAT_VERSION}'")

    name = recipe.get("ComponentName")
    if name is None:
        p.add("ComponentName", "is required; name the component, e.g. com.example.HelloWorld")
    elif _check_string(name, "ComponentName", p):
        if not name or len(name) > 128:
            p.add("ComponentName", "must be 1 to 128 characters long")
        elif not _NAME_RE.match(name):
            p.add("ComponentName", f"{name!r} may only contain letters, digits, '-', '_' and '.'")

    if "ComponentVersion" not in recipe:
        p.add("ComponentVersion", "is required; give a version such as '1.0.0'")
    else:
        _check_version(recipe["ComponentVersion"], p)

    for key in ("ComponentDescription", "ComponentPublisher"):
        if key in recipe:
            _check_string(recipe[key], key, p, hint="write some text or leave the field out")

    component_type = recipe.get("ComponentType")
    if "ComponentType" in recipe and (
        not isinstance(component_type, str) or component_type.lower() not in COMPONENT_TYPES
    ):
        p.add(
            "ComponentType",
            f"{component_type!r} is not one of "
            f"{', '.join(COMPONENT_TYPES)} (leave it out: the service sets it)",
        )
    # Only a plugin (runs inside the nucleus) may have lifecycle steps without a Script.
    script_required = not (
        isinstance(component_type, str) and component_type.lower() == PLUGIN_COMPONENT_TYPE
    )

    if "ComponentSource" in recipe:
        source = recipe["ComponentSource"]
        if _check_string(source, "ComponentSource", p) and not _LAMBDA_ARN_RE.match(source):
            p.add("ComponentSource", f"{source!r} must be a Lambda function ARN")

    if "ComponentConfiguration" in recipe:
        config = recipe["ComponentConfiguration"]
        if not isinstance(config, Mapping):
            p.add(
                "ComponentConfiguration",
                f"must be a mapping with DefaultConfiguration, got {_type_name(config)}",
            )
        else:
            _unknown_keys(config, _CONFIGURATION_KEYS, "ComponentConfiguration", p)
            default = config.get("DefaultConfiguration")
            if default is not None and not isinstance(default, Mapping):
                p.add(
                    "ComponentConfiguration.DefaultConfiguration",
                    f"must be a mapping of configuration keys, got {_type_name(default)}",
                )
            elif default is not None:
                try:
                    json.dumps(default, allow_nan=False)
                except (TypeError, ValueError) as exc:
                    p.add(
                        "ComponentConfiguration.DefaultConfiguration",
                        f"must hold JSON values only: {exc}",
                    )

    dependencies: set[str] = set()
    if "ComponentDependencies" in recipe:
        deps = recipe["ComponentDependencies"]
        if not isinstance(deps, Mapping):
            p.add(
                "ComponentDependencies",
                "must be a mapping of component names to "
                f"{{VersionRequirement, DependencyType}}, got {_type_name(deps)}",
            )
        else:
            for dep_name, dep in deps.items():
                path = f"ComponentDependencies.{dep_name}"
                if not isinstance(dep_name, str) or not _NAME_RE.match(dep_name):
                    p.add(path, f"{dep_name!r} is not a valid component name")
                else:
                    dependencies.add(dep_name)
                if not isinstance(dep, Mapping):
                    p.add(path, f"must be a mapping with VersionRequirement, got {_type_name(dep)}")
                    continue
                _unknown_keys(dep, _DEPENDENCY_KEYS, path, p)
                req = dep.get("VersionRequirement")
                if req is None:
                    p.add(
                        f"{path}.VersionRequirement",
                        "is required; give an npm-style range such as '^1.0.0' or '>=1.0.0 <2.0.0'",
                    )
                elif _check_string(req, f"{path}.VersionRequirement", p, hint="quote it"):
                    try:
                        parse_range(req)
                    except VersionError as exc:
                        p.add(f"{path}.VersionRequirement", str(exc))
                if "DependencyType" in dep:
                    _check_choice(
                        dep["DependencyType"], DEPENDENCY_TYPES, f"{path}.DependencyType", p
                    )

    manifests = recipe.get("Manifests")
    if "Manifests" not in recipe:
        p.add(
            "Manifests",
            "is required; list at least one manifest, e.g. "
            "[{Platform: {os: linux}, Lifecycle: {Run: ...}}]",
        )
    elif not isinstance(manifests, list):
        p.add("Manifests", f"must be a list of manifests, got {_type_name(manifests)}")
    else:
        for i, manifest in enumerate(manifests):
            path = f"Manifests[{i}]"
            if not isinstance(manifest, Mapping):
                p.add(path, f"must be a mapping, got {_type_name(manifest)}")
                continue
            _unknown_keys(manifest, _MANIFEST_KEYS, path, p)
            if "Name" in manifest:
                _check_string(manifest["Name"], f"{path}.Name", p)
            if "Platform" in manifest:
                _check_platform(manifest["Platform"], f"{path}.Platform", p)
            if i < len(manifests) - 1 and _matches_every_platform(manifest):
                p.add(
                    f"{path}.Platform" if "Platform" in manifest else path,
                    "matches every device, so the manifests after it are never used; move "
                    "this manifest last (devices use the first manifest they match)",
                )
            if "Lifecycle" in manifest:
                _check_manifest_lifecycle(
                    manifest["Lifecycle"], f"{path}.Lifecycle", p, script_required=script_required
                )
                _check_variables(
                    manifest["Lifecycle"],
                    f"{path}.Lifecycle",
                    p,
                    own_name=name,
                    dependencies=dependencies,
                )
            if "Selections" in manifest:
                sel = manifest["Selections"]
                if isinstance(sel, list):
                    for j, key in enumerate(sel):
                        _check_string(key, f"{path}.Selections[{j}]", p)
                elif not isinstance(sel, str):
                    p.add(
                        f"{path}.Selections",
                        f"must be a list of selection keys, got {_type_name(sel)}",
                    )
            if "Artifacts" in manifest:
                artifacts = manifest["Artifacts"]
                if not isinstance(artifacts, list):
                    p.add(f"{path}.Artifacts", f"must be a list, got {_type_name(artifacts)}")
                    continue
                seen: dict[str, int] = {}
                for j, artifact in enumerate(artifacts):
                    file_name = _check_artifact(artifact, f"{path}.Artifacts[{j}]", p)
                    if file_name is None:
                        continue
                    if file_name in seen:
                        p.add(
                            f"{path}.Artifacts[{j}].URI",
                            f"file name {file_name!r} is already used by "
                            f"{path}.Artifacts[{seen[file_name]}]; each artifact of a manifest "
                            "needs a unique file name",
                        )
                    else:
                        seen[file_name] = j

    if "Lifecycle" in recipe:
        _check_global_lifecycle(
            recipe["Lifecycle"], "Lifecycle", p, script_required=script_required
        )
        _check_variables(
            recipe["Lifecycle"], "Lifecycle", p, own_name=name, dependencies=dependencies
        )


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
    p = _Problems()
    if not isinstance(recipe, Mapping):
        return [("", f"must be a mapping, got {_type_name(recipe)}")]
    normalized = normalize_recipe(recipe)
    _walk(normalized, p)
    if encoded_size is None:
        try:
            encoded_size = len(dump_recipe(normalized, "JSON"))
        except (TypeError, ValueError) as exc:
            p.add("", f"holds values JSON can't represent ({exc}); use strings, numbers, lists")
    if encoded_size is not None:
        _check_size(encoded_size, p)
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
    recipe = normalize_recipe(load_recipe(data, source=source))
    validate_recipe(recipe, source=source, private=private, encoded_size=size)
    return recipe


def iter_artifacts(recipe: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(field path, artifact)`` for every artifact of every manifest."""
    for i, manifest in enumerate(recipe.get("Manifests") or []):
        if not isinstance(manifest, Mapping):
            continue
        for j, artifact in enumerate(manifest.get("Artifacts") or []):
            if isinstance(artifact, dict):
                yield f"Manifests[{i}].Artifacts[{j}]", artifact


# --- what a device does with a recipe -------------------------------------------


def _platform_field_matches(name: str, label: str | None, template: Any) -> bool:
    if isinstance(template, list):
        return any(_platform_field_matches(name, label, t) for t in template)
    if template == "*":
        return True  # matches any value, and a missing one
    if template is None:
        return label is None
    if label is None or not isinstance(template, str):
        return False
    if template == "//":
        return True
    if len(template) > 2 and template.startswith("/") and template.endswith("/"):
        return re.fullmatch(template[1:-1], label) is not None
    if name in ("os", "architecture") and template in ("all", "any"):
        return True
    return template == label


def platform_matches(platform: Mapping[str, Any] | None, device: Mapping[str, str]) -> bool:
    """Whether a manifest's ``Platform`` accepts a device's platform attributes.

    ``device`` holds the core device's attributes, e.g. ``{"os": "linux",
    "architecture": "amd64"}``. Exact labels, ``*``, ``/regex/`` and lists of
    alternatives behave as in the Greengrass nucleus; no Platform matches all.
    """
    if not platform:
        return True
    return all(_platform_field_matches(k, device.get(k), v) for k, v in platform.items())


def select_manifest(recipe: Mapping[str, Any], device: Mapping[str, str]) -> dict[str, Any] | None:
    """The first manifest whose platform the device matches, or None (not installable)."""
    for manifest in recipe.get("Manifests") or []:
        if isinstance(manifest, Mapping) and platform_matches(manifest.get("Platform"), device):
            return dict(manifest)
    return None


def _filter_selections(source: Any, keywords: set[str], selectors: list[str]) -> Any:
    """The nucleus's selection filter: at a level keyed by selection keywords, keep the
    first selector present (else ``all``); recurse into the rest. None = removed."""
    if not isinstance(source, Mapping):
        return source
    if any(k in keywords for k in source):
        chosen = next((source[s] for s in selectors if source.get(s) is not None), None)
        if chosen is None:
            chosen = source.get("all")
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
    keywords = {"all"}
    for m in recipe.get("Manifests") or []:
        if isinstance(m, Mapping):
            sel = m.get("Selections") or []
            keywords.update([sel] if isinstance(sel, str) else sel)
    selections = manifest.get("Selections") or []
    selectors = [selections] if isinstance(selections, str) else list(selections)
    filtered = _filter_selections(recipe.get("Lifecycle") or {}, keywords, selectors)
    return copy.deepcopy(filtered) if isinstance(filtered, dict) else {}
