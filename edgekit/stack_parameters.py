"""CloudFormation parameters, checked before any call to AWS.

Owns: turning the values a caller gives into the ``Parameters`` of a CreateChangeSet
request (names, required values, ``AllowedValues``/``AllowedPattern``/length/number
rules), and the device template's parameters that follow from Settings. Pure: imports
no AWS library and no edgekit module but ``errors`` and ``settings``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from edgekit.errors import StackError
from edgekit.settings import Settings


def as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(as_text(v) for v in value)
    return str(value)


def validate_parameters(
    declared: Mapping[str, Mapping[str, Any]],
    given: Mapping[str, Any],
    *,
    template: str | Path = "template",
    existing: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """CloudFormation ``Parameters`` for ``given``, or StackError naming the bad parameter.

    Unknown names, missing required values (no ``Default``) and values outside
    ``AllowedValues``/``AllowedPattern``/length limits fail here, before AWS is called.
    A required parameter the stack already has (``existing``) keeps its previous value.
    """
    known = ", ".join(sorted(declared)) or "none"
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise StackError(
            f"{template}: unknown parameter(s) {', '.join(unknown)}; the template declares: {known}"
        )
    existing = set(existing)
    result: list[dict[str, Any]] = []
    missing: list[str] = []
    for name, decl in declared.items():
        if name in given:
            value = as_text(given[name])
            _check_value(name, value, decl, template)
            result.append({"ParameterKey": name, "ParameterValue": value})
        elif "Default" in decl:
            continue  # CloudFormation applies the default
        elif name in existing:
            result.append({"ParameterKey": name, "UsePreviousValue": True})
        else:
            missing.append(name)
    if missing:
        raise StackError(
            f"{template}: missing required parameter(s) {', '.join(missing)} (no Default in "
            "the template); pass them, e.g. --param "
            + " --param ".join(f"{m}=..." for m in missing)
        )
    return result


def _check_value(name: str, value: str, decl: Mapping[str, Any], template: str | Path) -> None:
    allowed = decl.get("AllowedValues")
    if allowed is not None and value not in [as_text(a) for a in allowed]:
        raise StackError(
            f"{template}: parameter {name}={value!r} is not one of "
            + ", ".join(as_text(a) for a in allowed)
        )
    pattern = decl.get("AllowedPattern")
    if pattern is not None and re.fullmatch(pattern, value) is None:
        hint = decl.get("ConstraintDescription") or decl.get("Description") or ""
        raise StackError(
            f"{template}: parameter {name}={value!r} does not match {pattern}"
            + (f" ({hint})" if hint else "")
        )
    for key, ok in (
        ("MinLength", lambda n: len(value) >= n),
        ("MaxLength", lambda n: len(value) <= n),
    ):
        if key in decl and not ok(int(decl[key])):
            raise StackError(f"{template}: parameter {name}={value!r} breaks {key}={decl[key]}")
    if decl.get("Type") == "Number":
        try:
            float(value)
        except ValueError:
            raise StackError(f"{template}: parameter {name}={value!r} is not a number") from None


def device_parameters(settings: Settings, **overrides: Any) -> dict[str, str]:
    """Parameters of the shipped device template that follow from ``settings``."""
    params = {
        "ProjectName": settings.project_name,
        "ThingGroupName": settings.thing_group,
        "TopicPrefix": settings.results_topic.split("/", 1)[0],
    }
    params.update({k: as_text(v) for k, v in overrides.items() if v is not None})
    return params


__all__ = ["as_text", "device_parameters", "validate_parameters"]
