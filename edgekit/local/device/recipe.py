"""A component recipe as the device runtime uses it: typed steps, artifacts, dependencies.

What a recipe means (which manifest a platform selects, which lifecycle and
artifacts come with it, case-insensitive recipe keys) is decided by
:mod:`edgekit.recipes`, the same code the local control plane uses; this module
adapts the result to the runtime's types (:class:`ResolvedRecipe`, :class:`Step`,
:class:`Artifact`) and describes this machine's platform (:func:`device_platform`).
"""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass, field
from typing import Any

from edgekit.errors import DeploymentError
from edgekit.recipes import (
    normalize_recipe,
    platform_matches,
    resolve_lifecycle,
    select_manifest,
)
from edgekit.recipes.provided import is_stand_in

__all__ = [
    "DEFAULT_TIMEOUTS",
    "STEP_FIELDS",
    "STEP_KEYS",
    "Artifact",
    "Dependency",
    "ResolvedRecipe",
    "Step",
    "ci_get",
    "device_platform",
    "is_provided",
    "parse_step",
    "platform_matches",
    "resolve_recipe",
]

# Lifecycle keys the runtime understands (lower case).
STEP_KEYS = ("setenv", "bootstrap", "install", "startup", "run", "shutdown", "recover")
STEP_FIELDS = ("script", "timeout", "setenv", "skipif", "requiresprivilege")

# Default timeouts from the recipe reference (seconds); None = no timeout (Run).
DEFAULT_TIMEOUTS: dict[str, float | None] = {
    "bootstrap": 120.0,
    "install": 120.0,
    "startup": 120.0,
    "run": None,
    "shutdown": 15.0,
    "recover": 60.0,
}


def _machine_to_architecture(machine: str) -> str:
    """platform.machine() -> the architecture name Greengrass reports."""
    m = machine.lower()
    if m in ("x86_64", "amd64"):
        return "amd64"
    if m in ("i386", "i486", "i586", "i686", "x86"):
        return "x86"
    if m in ("aarch64", "arm64"):
        return "aarch64"
    if m.startswith("arm"):
        return "arm"
    return m


def device_platform() -> dict[str, str]:
    """Platform attributes of this machine: os, architecture, architecture.detail."""
    system = _platform.system().lower()
    os_name = {"linux": "linux", "darwin": "darwin", "windows": "windows"}.get(system, system)
    machine = _platform.machine()
    return {
        "os": os_name,
        "architecture": _machine_to_architecture(machine),
        "architecture.detail": machine.lower(),
    }


def ci_get(mapping: Any, key: str, default: Any = None) -> Any:
    """``mapping[key]`` with the key matched case-insensitively."""
    if not isinstance(mapping, dict):
        return default
    if key in mapping:
        return mapping[key]
    low = key.lower()
    for k, v in mapping.items():
        if isinstance(k, str) and k.lower() == low:
            return v
    return default


@dataclass(frozen=True)
class Step:
    """One lifecycle step, uninterpolated."""

    script: str
    timeout: float | None
    setenv: dict[str, str] = field(default_factory=dict)
    skipif: str | None = None
    requires_privilege: bool = False


def _timeout(value: Any, step: str, where: str) -> float | None:
    if value is None:
        return DEFAULT_TIMEOUTS[step]
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise DeploymentError(
            f"{where}: lifecycle step {step} has Timeout {value!r}; use a number of seconds"
        ) from None
    return seconds if seconds > 0 else DEFAULT_TIMEOUTS[step]


def _setenv(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DeploymentError(f"{where}: Setenv must be an object of NAME: value")
    out: dict[str, str] = {}
    for k, v in value.items():
        if isinstance(v, bool):
            out[str(k)] = "true" if v else "false"
        else:
            out[str(k)] = "" if v is None else str(v)
    return out


def parse_step(step: str, value: Any, where: str) -> Step | None:
    if value is None:
        return None
    if isinstance(value, str):
        return Step(script=value, timeout=DEFAULT_TIMEOUTS[step])
    if not isinstance(value, dict):
        raise DeploymentError(f"{where}: lifecycle step {step} must be a script or an object")
    script = ci_get(value, "Script")
    if not isinstance(script, str):
        raise DeploymentError(f"{where}: lifecycle step {step} has no Script string")
    skipif = ci_get(value, "Skipif")
    return Step(
        script=script,
        timeout=_timeout(ci_get(value, "Timeout"), step, where),
        setenv=_setenv(ci_get(value, "Setenv"), where),
        skipif=str(skipif) if skipif else None,
        requires_privilege=bool(ci_get(value, "RequiresPrivilege", False)),
    )


@dataclass(frozen=True)
class Dependency:
    name: str
    requirement: str
    type: str  # HARD or SOFT


@dataclass(frozen=True)
class Artifact:
    uri: str
    unarchive: str  # NONE or ZIP
    digest: str | None
    algorithm: str | None
    read: str  # NONE, OWNER, ALL
    execute: str

    @property
    def filename(self) -> str:
        return self.uri.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ResolvedRecipe:
    """What one component version means on this device."""

    name: str
    version: str
    dependencies: dict[str, Dependency]
    default_configuration: dict[str, Any]
    lifecycle: dict[str, Any]  # lower-case step keys -> raw step value; "setenv" -> dict
    artifacts: list[Artifact]
    recipe: dict[str, Any]
    #: Lifecycle keys of the selected lifecycle the nucleus never runs (``Upgrade``,
    #: ``Uninstall``): the component's log says each is ignored when it installs.
    ignored_steps: tuple[str, ...] = ()

    def step(self, step: str) -> Step | None:
        return parse_step(step, self.lifecycle.get(step), f"{self.name} {self.version}")

    @property
    def global_setenv(self) -> dict[str, str]:
        return _setenv(self.lifecycle.get("setenv"), f"{self.name} {self.version}")


def _lower_lifecycle(lifecycle: Any, where: str) -> dict[str, Any]:
    if lifecycle is None:
        return {}
    if not isinstance(lifecycle, dict):
        raise DeploymentError(f"{where}: Lifecycle must be an object")
    out: dict[str, Any] = {}
    for key, value in lifecycle.items():
        low = str(key).lower()
        if low in STEP_KEYS:
            out[low] = value
    return out


def _ignored_steps(lifecycle: Any) -> tuple[str, ...]:
    """Lifecycle keys the nucleus does not run (``Upgrade``, ``Uninstall``...), as written."""
    if not isinstance(lifecycle, dict):
        return ()
    return tuple(str(key) for key in lifecycle if str(key).lower() not in STEP_KEYS)


def resolve_recipe(recipe: dict[str, Any], attrs: dict[str, str]) -> ResolvedRecipe:
    """Pick the manifest for this platform; DeploymentError if none matches.

    Manifest selection and lifecycle lookup are :mod:`edgekit.recipes`'s (the rules
    the control plane applies too); this only turns the result into device types.
    """
    normalized = normalize_recipe(recipe) if isinstance(recipe, dict) else {}
    name = str(normalized.get("ComponentName", ""))
    version = str(normalized.get("ComponentVersion", ""))
    where = f"component {name} {version}"
    deps: dict[str, Dependency] = {}
    for dep_name, spec in (normalized.get("ComponentDependencies") or {}).items():
        spec = spec or {}
        dep_type = str(ci_get(spec, "DependencyType", "HARD") or "HARD").upper()
        deps[dep_name] = Dependency(
            dep_name, str(ci_get(spec, "VersionRequirement", "*") or "*"), dep_type
        )
    defaults = ci_get(normalized.get("ComponentConfiguration") or {}, "DefaultConfiguration") or {}
    if not isinstance(defaults, dict):
        raise DeploymentError(f"{where}: DefaultConfiguration must be an object")
    chosen = select_manifest(normalized, attrs)
    if chosen is None:
        if normalized.get("Manifests") or normalized.get("Lifecycle") is None:
            raise DeploymentError(
                f"{where} has no manifest for this device's platform "
                f"(os={attrs.get('os')}, architecture={attrs.get('architecture')}); "
                "add a manifest with a matching Platform or one without Platform"
            )
        chosen = {}
    lifecycle = resolve_lifecycle(normalized, chosen)
    artifacts: list[Artifact] = []
    for art in chosen.get("Artifacts") or []:
        uri = ci_get(art, "URI")
        if not isinstance(uri, str) or not uri:
            raise DeploymentError(f"{where}: an artifact has no URI")
        perm = ci_get(art, "Permission") or {}
        artifacts.append(
            Artifact(
                uri=uri,
                unarchive=str(ci_get(art, "Unarchive", "NONE") or "NONE").upper(),
                digest=ci_get(art, "Digest"),
                algorithm=ci_get(art, "Algorithm"),
                read=str(ci_get(perm, "Read", "OWNER") or "OWNER").upper(),
                execute=str(ci_get(perm, "Execute", "NONE") or "NONE").upper(),
            )
        )
    return ResolvedRecipe(
        name=name,
        version=version,
        dependencies=deps,
        default_configuration=defaults,
        lifecycle=_lower_lifecycle(lifecycle, where),
        artifacts=artifacts,
        recipe=recipe,
        ignored_steps=_ignored_steps(lifecycle),
    )


def is_provided(name: str) -> bool:
    """AWS-provided public components the device reports RUNNING without running anything
    (nucleus, token exchange, CLI...; ``edgekit.recipes.provided`` lists them). Built-in
    ones (``edgekit.local.device.provided``) run from their recipe like any component."""
    return is_stand_in(name)
