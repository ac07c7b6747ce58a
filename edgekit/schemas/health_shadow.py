"""The health shadow: a flat summary of a device's health in a named device shadow.

A state machine cannot subscribe to MQTT, so besides its health message
(``health.schema.json``) the inference app writes this summary to the named shadow
:data:`HEALTH_SHADOW` of its thing (``$aws/things/<thing>/shadow/name/edgekit-health/update``,
``{"state": {"reported": R}}``). Whatever reads it with ``GetThingShadow`` (the
deploy-on-approval workflow) finds in ``state.reported`` the same proof
``edgekit deploy --wait`` reads from health: the current model's package sha256, the
agent's key fingerprint and the results it published since the app started.

R is flat and carries every key of :data:`REPORTED_KEYS` every time; an unknown value is
JSON null (which, in shadow semantics, deletes the field from the shadow: a reader
treats a missing key as null). Timestamps are RFC 3339 UTC with an uppercase ``T`` and
``Z`` (``2026-12-06T05:30:00.123Z``), as Step Functions' ``TimestampGreaterThanEquals``
needs.

Imports nothing of edgekit but the standard library: devices, the workflow and
notebooks import it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

HEALTH_SHADOW = "edgekit-health"
"""The default shadow name (the inference component's ``HealthShadow``)."""

REPORTED_KEYS: tuple[str, ...] = (
    "thing_name",
    "timestamp",
    "started_at",
    "health_state",
    "problem",
    "model_name",
    "model_version",
    "package_sha256",
    "key_fingerprint",
    "results_published",
    "model_state",
)
"""Every key of ``state.reported``, in this order."""

MAX_STATE_BYTES = 8 * 1024
"""AWS IoT Core's limit on a shadow's state document (desired plus reported)."""

MAX_TEXT = 1000
"""Longest ``problem`` kept, so the document stays well under :data:`MAX_STATE_BYTES`."""


def update_topic(thing_name: str, shadow_name: str = HEALTH_SHADOW) -> str:
    """The reserved topic a device publishes a named shadow update to."""
    return f"$aws/things/{thing_name}/shadow/name/{shadow_name}/update"


def current_model(health: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The health message's ``models`` entry of the model the app acts on (role ``current``)."""
    for entry in health.get("models") or []:
        if isinstance(entry, Mapping) and entry.get("role", "current") == "current":
            return entry
    return None


def _text(value: Any, limit: int = MAX_TEXT) -> str | None:
    return None if value is None or value == "" else str(value)[:limit]


def reported_state(health: Mapping[str, Any]) -> dict[str, Any]:
    """``state.reported`` of the health shadow, from one health message (schema v2).

    Every key of :data:`REPORTED_KEYS` is present; what the message does not say is None.
    ``results_published`` is the current model's ``since_start.results_published``
    (0 without a current model or count).
    """
    model = current_model(health) or {}
    counts = model.get("since_start") or {}
    published = counts.get("results_published") if isinstance(counts, Mapping) else None
    return {
        "thing_name": _text(health.get("thing_name"), 128),
        "timestamp": _text(health.get("timestamp"), 64),
        "started_at": _text(health.get("started_at"), 64),
        "health_state": _text(health.get("state"), 64),
        "problem": _text(health.get("problem")),
        "model_name": _text(model.get("name"), 128),
        "model_version": _text(model.get("version"), 128),
        "package_sha256": _text(model.get("package_sha256"), 64),
        "key_fingerprint": _text(model.get("key_fingerprint"), 128),
        "results_published": int(published) if isinstance(published, int) else 0,
        "model_state": _text(model.get("state"), 64),
    }


def update_document(reported: Mapping[str, Any], client_token: str | None = None) -> bytes:
    """The payload of a shadow update that reports ``reported`` (compact JSON, UTF-8)."""
    document: dict[str, Any] = {"state": {"reported": dict(reported)}}
    if client_token is not None:
        document["clientToken"] = client_token[:64]
    return json.dumps(document, separators=(",", ":")).encode()


__all__ = [
    "HEALTH_SHADOW",
    "MAX_STATE_BYTES",
    "REPORTED_KEYS",
    "current_model",
    "reported_state",
    "update_document",
    "update_topic",
]
