"""The AWS-provided public components: which names are AWS's, and what edgekit does for each.

AWS publishes a fixed set of public components (the developer guide's "AWS-provided
components" list); a deployment names them with their public versions and never
publishes them. Every other name, ``aws.greengrass.labs.*`` and any other
``aws.greengrass.`` prefix included, is an ordinary component that must be published
and that the device downloads and runs.

On the local device each public component is one of:

* ``STAND_IN``: nothing runs; the device reports it RUNNING at the deployed version.
  Either the runtime itself does its job (the nucleus, IPC, token exchange) or edgekit
  does not emulate it (``docs/compatibility.md`` says which).
* ``BUILT_IN``: edgekit implements it; the device runs it from a recipe edgekit writes
  (``edgekit.local.device.provided``), like any component: lifecycle, logs, status,
  configuration.

This module is data and lookups only (the local control plane and the device both use
it); it imports nothing from ``edgekit.local``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BUILT_IN",
    "PUBLIC_COMPONENTS",
    "STAND_IN",
    "ProvidedComponent",
    "is_built_in",
    "is_public",
    "is_stand_in",
    "public_component",
]

STAND_IN = "stand-in"
BUILT_IN = "built-in"


@dataclass(frozen=True)
class ProvidedComponent:
    """One AWS-provided public component as edgekit knows it."""

    name: str
    kind: str  # STAND_IN or BUILT_IN
    #: Public versions a deployment or a dependency may ask for, oldest first (the
    #: component's changelog in the developer guide).
    versions: tuple[str, ...]
    #: What the local device does for it, in one line (docs/compatibility.md quotes it).
    local: str


def _c(name: str, kind: str, versions: str, local: str) -> ProvidedComponent:
    return ProvidedComponent(name, kind, tuple(versions.split()), local)


_CATALOG: tuple[ProvidedComponent, ...] = (
    _c(
        "aws.greengrass.Nucleus",
        STAND_IN,
        "2.0.0 2.1.0 2.2.0 2.3.0 2.4.0 2.5.0 2.6.0 2.7.0 2.8.0 2.9.0 2.10.0 2.11.0 2.12.0 "
        "2.13.0 2.14.0",
        "the edgekit device runtime is the nucleus",
    ),
    _c(
        "aws.greengrass.TokenExchangeService",
        STAND_IN,
        "2.0.0 2.0.1 2.0.2 2.0.3",
        "components get credentials for the local endpoints in their environment",
    ),
    _c(
        "aws.greengrass.Cli",
        STAND_IN,
        "2.0.0 2.1.0 2.2.0 2.3.0 2.4.0 2.5.0 2.6.0 2.7.0 2.8.0 2.9.0 2.10.0 2.11.0 2.12.0 "
        "2.13.0 2.14.0",
        "`edgekit local device` is the CLI; its IPC authorization (GetComponentDetails) applies",
    ),
    _c(
        "aws.greengrass.SageMakerEdgeManager",
        BUILT_IN,
        "1.0.0 1.0.1 1.0.2 1.0.3 1.1.0 1.1.1 1.2.0 1.3.0 1.3.1 1.3.2 1.3.3 1.3.4",
        "edgekit's model agent serves the Edge Manager agent API on UnixSocketName "
        "(ONNX models; docs/edge-manager.md)",
    ),
)

PUBLIC_COMPONENTS: dict[str, ProvidedComponent] = {c.name: c for c in _CATALOG}


def public_component(name: str) -> ProvidedComponent | None:
    """The public component called ``name``, or None for every other name."""
    return PUBLIC_COMPONENTS.get(name)


def is_public(name: str) -> bool:
    """Whether ``name`` is an AWS-provided public component (never published by users)."""
    return name in PUBLIC_COMPONENTS


def is_stand_in(name: str) -> bool:
    """A public component the local device reports RUNNING without running anything."""
    c = PUBLIC_COMPONENTS.get(name)
    return c is not None and c.kind == STAND_IN


def is_built_in(name: str) -> bool:
    """A public component the local device runs from a recipe edgekit writes."""
    c = PUBLIC_COMPONENTS.get(name)
    return c is not None and c.kind == BUILT_IN
