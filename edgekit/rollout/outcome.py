"""A finished rollout's outcome on the registry version of its package.

The version whose package has the rollout's sha256 (in the model package group the
rollout names, default Settings.model_name) gets the ``edgekit:rollout*`` customer
metadata and an approval description that says what happened; its approval status is
left alone. A package that was never registered has no version to mark: the record says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgekit.registry import find_by_sha256, group_exists, record_rollout
from edgekit.registry.records import (
    KEY_ROLLOUT,
    KEY_ROLLOUT_AT,
    KEY_ROLLOUT_GATE,
    KEY_ROLLOUT_GROUP,
    KEY_ROLLOUT_ID,
)
from edgekit.settings import Settings

if TYPE_CHECKING:
    from edgekit.rollout.record import RolloutRecord


def describe(record: RolloutRecord) -> str:
    """One sentence for the version's approval description."""
    where = f"thing group {record.thing_group}"
    if record.status == "PROMOTED":
        return (
            f"edgekit rollout {record.id}: PROMOTED to every device of {where} "
            f"({len(record.canary_things)} canary, {len(record.fleet_things)} fleet) at "
            f"{record.finished_at}"
        )
    return (
        f"edgekit rollout {record.id}: ROLLED_BACK on {where} at {record.finished_at}: gate "
        f"{record.gate} failed: {record.gate_detail}"
    )


def record_in_registry(settings: Settings, record: RolloutRecord) -> dict[str, Any]:
    """Mark the package's registry version with the outcome; what was done, for the record."""
    group = str(record.options.get("model_group") or settings.model_name)
    if not group_exists(group, settings):
        return {"group": group, "version": None, "note": f"no model package group {group}"}
    version = find_by_sha256(group, record.package_sha256, settings)
    if version is None:
        return {
            "group": group,
            "version": None,
            "note": f"package sha256 {record.package_sha256[:12]} is not registered in {group}",
        }
    outcome = {
        KEY_ROLLOUT: record.status,
        KEY_ROLLOUT_GATE: record.gate or "none",
        KEY_ROLLOUT_ID: record.id[:256],
        KEY_ROLLOUT_GROUP: record.thing_group,
        KEY_ROLLOUT_AT: str(record.finished_at),
    }
    updated = record_rollout(version.arn, outcome, settings, description=describe(record))
    return {
        "group": group,
        "version": updated.version,
        "arn": updated.arn,
        "rollout": updated.rollout,
        "approval_status": updated.approval_status,
    }
