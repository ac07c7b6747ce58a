"""A deployment as a JSON record: what notebook 03 leaves in ``deployment.json``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from edgekit.deploy.diagnose import Failure
from edgekit.deploy.status import DeploymentResult
from edgekit.settings import Settings

if TYPE_CHECKING:
    from edgekit.registry import ModelVersion


def deployment_record(
    settings: Settings,
    result: DeploymentResult,
    *,
    thing_group: str,
    model: ModelVersion | None = None,
    configuration: Mapping[str, Any] | None = None,
    failure: Failure | None = None,
) -> dict[str, Any]:
    """The deployment, the model it deploys, each device's state and proof of inspection
    (``proof``: the criteria and each device's verdict), and the failure if any."""
    criteria = result.criteria
    proofs = result.proofs or {}
    return {
        "backend": settings.backend,
        "region": settings.region,
        "thing_group": thing_group,
        "target_arn": result.target_arn,
        "deployment_id": result.deployment_id,
        "status": "FAILED" if failure is not None else "SUCCEEDED",
        "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "components": dict(result.components),
        "configuration": {k: dict(v) for k, v in (configuration or {}).items()},
        "model": model.to_json() if model is not None else None,
        "devices": [
            {
                "thing": d.thing_name,
                "status": d.execution_status,
                "reason": d.reason,
                "proof": proofs[d.thing_name].as_dict() if d.thing_name in proofs else None,
                "components": {
                    name: {"version": version, "state": state}
                    for name, (version, state) in sorted(d.components.items())
                },
            }
            for d in result.devices
        ],
        "proof": None
        if criteria is None
        else {
            "package_sha256": criteria.package_sha256,
            "model_name": criteria.model_name,
            "model_version": criteria.model_version,
            "key_fingerprint": criteria.key_fingerprint,
            "min_results": criteria.min_results,
            "since": criteria.since.isoformat(timespec="milliseconds"),
            "failed": sorted(t for t, p in proofs.items() if p.failed),
        },
        "failure": None
        if failure is None
        else {
            "thing": failure.thing,
            "reason": failure.reason,
            "component": failure.component,
            "log": failure.log_location,
            "after_rollback": failure.after_rollback,
        },
    }
