"""Greengrass deployments of edgekit's three components, and what the devices report.

Owns: creating a deployment for a thing group (`create`), waiting for every core device
(`wait`) until it proves inspection with the deployed package (`proof`: the criteria, the
results/health collector and each device's verdict; `expected`: the criteria read from
the deployed component versions), each device's status from the control plane
(`status`: effective deployments, installed components, table rows), why a device
failed and what it runs after the rollback (`diagnose`), and a deployment as a JSON
record (`record`).

Must not import: the notebooks' workflow (`edgekit.workflow`), the hand-over files,
`edgekit.cli`, `edgekit.viz`, or the local emulators (`edgekit.local`): it talks to
Greengrass through `edgekit.clients` only, on either backend.
"""

from __future__ import annotations

from edgekit.deploy.create import (
    DEFAULT_INFERENCE_INTERVAL,
    DEPLOYMENT_POLICIES,
    MODEL_RESET,
    deploy,
    inference_configuration,
    missing_group_message,
    parse_component_args,
    resolve_versions,
    thing_group_arn,
)
from edgekit.deploy.diagnose import (
    Failure,
    device_log_tail,
    explain_failure,
    explain_failures,
    failing_component,
    log_location,
)
from edgekit.deploy.expected import expected_proof
from edgekit.deploy.proof import (
    DEFAULT_MIN_RESULTS,
    PROOF_COLUMNS,
    DeviceProof,
    ProofCollector,
    ProofCriteria,
    proof_table,
)
from edgekit.deploy.record import deployment_record
from edgekit.deploy.status import (
    DONE_STATUSES,
    FAILED_STATUSES,
    READY_STATES,
    DeploymentResult,
    DeviceStatus,
    component_roles,
    core_devices,
    deployment_columns,
    deployment_rows,
    device_status,
    execution_status,
    installed_components,
    installed_rows,
    target_devices,
)
from edgekit.deploy.wait import NO_DEVICE_GRACE, POLL_INTERVAL, wait_for_deployment
from edgekit.errors import DeploymentError, DeviceDeploymentError

__all__ = [
    "DEFAULT_INFERENCE_INTERVAL",
    "DEFAULT_MIN_RESULTS",
    "DONE_STATUSES",
    "FAILED_STATUSES",
    "DEPLOYMENT_POLICIES",
    "MODEL_RESET",
    "NO_DEVICE_GRACE",
    "POLL_INTERVAL",
    "PROOF_COLUMNS",
    "READY_STATES",
    "DeploymentError",
    "DeploymentResult",
    "DeviceDeploymentError",
    "DeviceProof",
    "DeviceStatus",
    "Failure",
    "ProofCollector",
    "ProofCriteria",
    "component_roles",
    "core_devices",
    "target_devices",
    "deploy",
    "deployment_columns",
    "deployment_record",
    "deployment_rows",
    "device_log_tail",
    "device_status",
    "execution_status",
    "expected_proof",
    "explain_failure",
    "explain_failures",
    "failing_component",
    "inference_configuration",
    "installed_components",
    "installed_rows",
    "log_location",
    "parse_component_args",
    "proof_table",
    "resolve_versions",
    "missing_group_message",
    "thing_group_arn",
    "wait_for_deployment",
]
