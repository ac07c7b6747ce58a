"""A rollout as a persistent record: one JSON file per rollout, rewritten atomically.

The record is the rollout's memory: it is saved after every step (stage started,
deployment created, gates evaluated, rollback done), so a dead kernel or a killed
process loses nothing, ``edgekit rollout status`` reads it, and running the same
rollout again resumes it, or reports it when it has finished.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import ConfigurationError
from edgekit.files import write_json_atomic
from edgekit.reports import render_rollout_report
from edgekit.settings import Settings
from edgekit.viz.figures import save_figure
from edgekit.viz.rollout import rollout_devices, rollout_gates

#: Statuses of a rollout. The last three are final.
PENDING, CANARY, FLEET, ROLLING_BACK = "PENDING", "CANARY", "FLEET", "ROLLING_BACK"
PROMOTED, ROLLED_BACK, FAILED = "PROMOTED", "ROLLED_BACK", "FAILED"
FINAL = (PROMOTED, ROLLED_BACK)
RECORD_VERSION = 1


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def rollouts_dir(settings: Settings) -> Path:
    """``settings.home / "rollouts"``: where every rollout record lives."""
    return Path(settings.home) / "rollouts"


def rollout_id(thing_group: str, package_sha256: str, options: dict[str, Any]) -> str:
    """The same package to the same group with the same options is the same rollout."""
    digest = hashlib.sha256(
        json.dumps({"sha": package_sha256, **options}, sort_keys=True).encode()
    ).hexdigest()[:8]
    return f"{thing_group}-{package_sha256[:12]}-{digest}"


@dataclass
class Stage:
    """One stage: shadow, canary or fleet (or the rollback of one)."""

    name: str
    status: str = "RUNNING"  # RUNNING, PASSED, FAILED, ROLLED_BACK, INTERRUPTED
    target: str | None = None
    things: list[str] = field(default_factory=list)
    deployment_id: str | None = None
    started_at: str = field(default_factory=now_iso)
    proven_at: str | None = None
    soak_started_at: str | None = None
    finished_at: str | None = None
    gates: list[dict[str, Any]] = field(default_factory=list)
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Stage:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class RolloutRecord:
    """Everything about one rollout; ``report()`` is the ``--report`` JSON."""

    id: str
    thing_group: str
    canary_group: str
    model_package: str
    package_sha256: str
    model_name: str | None
    model_version: str | None
    options: dict[str, Any]
    backend: str = "local"
    status: str = PENDING
    gate: str | None = None
    gate_detail: str | None = None
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    finished_at: str | None = None
    canary_things: list[str] = field(default_factory=list)
    fleet_things: list[str] = field(default_factory=list)
    previous: dict[str, Any] = field(default_factory=dict)
    candidate: dict[str, Any] = field(default_factory=dict)
    stages: list[Stage] = field(default_factory=list)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None
    registry: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    path: Path | None = field(default=None, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        return self.status in FINAL

    def stage(self, name: str) -> Stage | None:
        """The latest stage called ``name``."""
        return next((s for s in reversed(self.stages) if s.name == name), None)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("path", None)
        data["stages"] = [s.to_json() for s in self.stages]
        data["record_version"] = RECORD_VERSION
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path | None = None) -> RolloutRecord:
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k != "path"}
        fields["stages"] = [Stage.from_json(s) for s in data.get("stages") or []]
        return cls(**fields, path=path)

    def save(self, settings: Settings) -> Path:
        """Write the record atomically to ``settings.home/rollouts/<id>.json``."""
        self.updated_at = now_iso()
        self.path = rollouts_dir(settings) / f"{self.id}.json"
        write_json_atomic(self.path, self.to_json())
        return self.path

    def report(self) -> dict[str, Any]:
        """The issue's ``--report`` shape, and more: status, gate, stages, devices."""
        return {
            "id": self.id,
            "status": self.status,
            "gate": self.gate,
            "gate_detail": self.gate_detail,
            "thing_group": self.thing_group,
            "canary_group": self.canary_group,
            "model": {
                "name": self.model_name,
                "version": self.model_version,
                "package_sha256": self.package_sha256,
                "package": self.model_package,
            },
            "previous": dict(self.previous),
            "candidate": dict(self.candidate),
            "options": dict(self.options),
            "stages": [s.to_json() for s in self.stages],
            "devices": {t: dict(d) for t, d in sorted(self.devices.items())},
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "timings": dict(self.timings),
            "error": self.error,
            "registry": self.registry,
            "record": str(self.path) if self.path else None,
        }


def load_record(settings: Settings, rollout: str | None = None) -> RolloutRecord:
    """Rollout ``rollout`` (an id or a path), or the latest one; ConfigurationError if none."""
    folder = rollouts_dir(settings)
    if rollout is None:
        records = list_records(settings)
        if not records:
            raise ConfigurationError(
                f"no rollout recorded under {folder}; start one with `edgekit rollout "
                "--model-package PKG`"
            )
        return records[-1]
    path = Path(rollout)
    if not path.is_file():
        path = folder / f"{rollout}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(r.id for r in list_records(settings)[-5:]) or "none"
        raise ConfigurationError(
            f"no rollout {rollout} under {folder} (latest: {known}); `edgekit rollout status` "
            "shows the latest"
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{path}: not a rollout record ({exc})") from exc
    return RolloutRecord.from_json(data, path)


def find_record(settings: Settings, rid: str) -> RolloutRecord | None:
    path = rollouts_dir(settings) / f"{rid}.json"
    if not path.is_file():
        return None
    return load_record(settings, str(path))


def list_records(settings: Settings) -> list[RolloutRecord]:
    """Every rollout under the home, oldest first (by creation time)."""
    folder = rollouts_dir(settings)
    records = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{path}: not a rollout record ({exc}); move it away") from exc
        records.append(RolloutRecord.from_json(data, path))
    return sorted(records, key=lambda r: r.created_at)


def write_report(record: RolloutRecord, report: str | Path | None) -> Path | None:
    """Write the report JSON (and the HTML report beside it); the JSON's path."""
    if report is None:
        return None
    path = Path(report).expanduser()
    data = record.report()
    write_json_atomic(path, data)
    folder = path.with_name(f"{path.stem}_figures")  # inline in the HTML; PNGs for slides
    figures = {
        "devices": save_figure(rollout_devices(data), folder, "devices"),
        "gates": save_figure(rollout_gates(data), folder, "gates"),
    }
    render_rollout_report(
        data, path.with_suffix(".html"), {k: v for k, v in figures.items() if v is not None}
    )
    return path


def window_of(stage: Stage | None) -> tuple[float, float] | None:
    """The (start, end) of a finished stage's soak window, as time.time()."""
    if stage is None or not stage.soak_started_at or not stage.finished_at:
        return None
    start = dt.datetime.fromisoformat(stage.soak_started_at).timestamp()
    return start, dt.datetime.fromisoformat(stage.finished_at).timestamp()
