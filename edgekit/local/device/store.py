"""The runtime's persistent state, written atomically so a crash never leaves half a file.

What survives a restart: the deployment document applied per target, the last
deployment handled per target, each component's version and configuration, and
the deployment in progress (if the runtime died during one, it is applied again).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.files import write_json_atomic

STATE_FORMAT = 1


@dataclass
class ComponentRecord:
    version: str
    configuration: dict[str, Any]
    root: bool
    provided: bool = False  # an AWS-provided stand-in the runtime itself provides

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "configuration": self.configuration,
            "root": self.root,
            "provided": self.provided,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ComponentRecord:
        return cls(
            str(data["version"]),
            dict(data.get("configuration") or {}),
            bool(data.get("root", False)),
            bool(data.get("provided", False)),
        )


@dataclass
class DeviceState:
    """``targets``: target ARN -> deployment document whose components are applied.
    ``handled``: target ARN -> id of the last deployment processed (also failed ones).
    ``components``: the committed component set. ``pending``: a deployment being applied.
    ``unreported``: final deployment statuses not yet accepted by the control plane."""

    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    handled: dict[str, str] = field(default_factory=dict)
    components: dict[str, ComponentRecord] = field(default_factory=dict)
    pending: dict[str, Any] | None = None
    unreported: dict[str, dict[str, Any]] = field(default_factory=dict)

    def copy(self) -> DeviceState:
        return copy.deepcopy(self)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "targets": self.targets,
            "handled": self.handled,
            "components": {n: c.to_json() for n, c in sorted(self.components.items())},
            "pending": self.pending,
            "unreported": self.unreported,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeviceState:
        return cls(
            targets=dict(data.get("targets") or {}),
            handled={str(k): str(v) for k, v in (data.get("handled") or {}).items()},
            components={
                n: ComponentRecord.from_json(c) for n, c in (data.get("components") or {}).items()
            },
            pending=data.get("pending"),
            unreported=dict(data.get("unreported") or {}),
        )


def load_state(path: Path) -> DeviceState:
    """The saved state, or an empty one for a new device."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return DeviceState()
    return DeviceState.from_json(data)


def save_state(path: Path, state: DeviceState) -> None:
    write_json_atomic(path, state.to_json())
