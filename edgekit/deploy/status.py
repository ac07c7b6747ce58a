"""What a core device reports about a deployment: its execution status and its components.

One device's view comes from two Greengrass calls, ListEffectiveDeployments and
ListInstalledComponents, each read through every page (`edgekit.awsapi.paginate`): a
device on a fleet lists many deployments and components, and the one wanted may be on
any page.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgekit import clients
from edgekit.awsapi import paginate
from edgekit.provision.controlplane import group_core_devices
from edgekit.settings import Settings

READY_STATES = ("RUNNING", "FINISHED")
FAILED_STATUSES = ("FAILED", "REJECTED", "TIMED_OUT", "CANCELED")
DONE_STATUSES = ("SUCCEEDED", "COMPLETED")
# Lifecycle states a component passes through; a rollback is settled when none is left.
TRANSITIONAL_STATES = frozenset({"NEW", "INSTALLED", "STARTING", "STOPPING"})


@dataclass
class DeviceStatus:
    """One core device's view of the deployment."""

    thing_name: str
    execution_status: str = "PENDING"
    reason: str = ""
    components: dict[str, tuple[str, str]] = field(default_factory=dict)
    """name -> (version, lifecycle state) of edgekit's components on the device."""
    reported: str = "PENDING"
    """The status as the device reported it (``execution_status`` says IN_PROGRESS for a
    reported SUCCEEDED while a component is not yet at its version and RUNNING/FINISHED)."""

    @property
    def ready(self) -> bool:
        return self.execution_status in DONE_STATUSES

    @property
    def failed(self) -> bool:
        return self.execution_status in FAILED_STATUSES


@dataclass
class DeploymentResult:
    deployment_id: str
    target_arn: str
    components: dict[str, str]
    devices: list[DeviceStatus] = field(default_factory=list)
    proofs: dict[str, Any] = field(default_factory=dict)
    """thing -> `edgekit.deploy.proof.DeviceProof` once waited for with proof criteria."""
    criteria: Any = None
    """The `edgekit.deploy.proof.ProofCriteria` the devices were judged by (None: none)."""

    def table(self) -> str:
        """Device, deployment status and each component's version and state."""
        names = sorted(self.components)
        header = ["DEVICE", "STATUS"] + names
        rows = [header]
        for device in self.devices:
            cells = [device.thing_name, device.execution_status]
            for name in names:
                version, state = device.components.get(name, ("-", "MISSING"))
                cells.append(f"{version} {state}")
            rows.append(cells)
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        return "\n".join(line.rstrip() for line in lines)


# --------------------------------------------------------------------------------------
# The Greengrass calls, on a client


def core_devices(greengrass: Any, group_arn: str) -> list[str]:
    """ListCoreDevices filtered by ``group_arn``, sorted.

    On AWS this lists only the core devices that have *already* deployed a deployment
    to the group, and keeps devices that left it: it says who deployed, not who is
    targeted. `target_devices` says who is targeted.
    """
    rows = paginate(greengrass, "list_core_devices", "coreDevices", thingGroupArn=group_arn)
    return sorted(str(d["coreDeviceThingName"]) for d in rows)


def target_devices(
    greengrass: Any, iot: Any, target_arn: str, known: Collection[str] = ()
) -> list[str]:
    """The core devices a deployment to ``target_arn`` must reach, sorted.

    A thing ARN targets that thing; a thing group, its member things that are core
    devices (`edgekit.provision.controlplane.group_core_devices`), not ListCoreDevices'
    answer, which on AWS names only devices that already deployed to the group.
    """
    resource = target_arn.split(":", 5)[-1]
    kind, _, name = resource.partition("/")
    if kind == "thing":
        return [name]
    return group_core_devices(greengrass, iot, target_arn, known)


def effective_deployment(
    greengrass: Any, thing: str, deployment_id: str
) -> Mapping[str, Any] | None:
    """``thing``'s ListEffectiveDeployments row for ``deployment_id`` (None: not reported)."""
    rows = paginate(
        greengrass, "list_effective_deployments", "effectiveDeployments", coreDeviceThingName=thing
    )
    return next((row for row in rows if row.get("deploymentId") == deployment_id), None)


def _reported(row: Mapping[str, Any]) -> str:
    """A device's execution status in its ListEffectiveDeployments row (QUEUED if empty)."""
    return str(row.get("coreDeviceExecutionStatus") or "QUEUED")


def installed_on(greengrass: Any, thing: str, names: Collection[str]) -> dict[str, tuple[str, str]]:
    """The components ``names`` installed on ``thing``: name -> (version, lifecycle state)."""
    found: dict[str, tuple[str, str]] = {}
    rows = paginate(
        greengrass,
        "list_installed_components",
        "installedComponents",
        coreDeviceThingName=thing,
        topologyFilter="ALL",
    )
    for comp in rows:
        name = str(comp.get("componentName"))
        if name in names:
            found[name] = (str(comp.get("componentVersion")), str(comp.get("lifecycleState")))
    return found


def device_status(
    greengrass: Any, thing: str, deployment_id: str, want: Mapping[str, str]
) -> DeviceStatus:
    """How ``thing`` runs deployment ``deployment_id`` of the components ``want``
    (name -> version).

    A device that reports the deployment SUCCEEDED while a wanted component is not yet
    at its version and RUNNING/FINISHED counts as IN_PROGRESS.
    """
    status = DeviceStatus(thing)
    row = effective_deployment(greengrass, thing, deployment_id)
    if row is not None:
        status.execution_status = status.reported = _reported(row)
        status.reason = str(row.get("reason") or "")
    status.components = installed_on(greengrass, thing, want)
    if status.execution_status in DONE_STATUSES:
        lagging = [
            n
            for n, v in want.items()
            if status.components.get(n, ("", ""))[0] != v
            or status.components.get(n, ("", ""))[1] not in READY_STATES
        ]
        if lagging:
            status.execution_status = "IN_PROGRESS"  # reported, but components not there yet
    return status


# --------------------------------------------------------------------------------------
# edgekit's three components, by Settings


def component_roles(settings: Settings) -> dict[str, str]:
    """``{component name: short role}`` for table headers: model, agent, inference."""
    return {
        settings.model_component: "model",
        settings.agent_component: "agent",
        settings.inference_component: "inference",
    }


def installed_components(settings: Settings, thing: str) -> dict[str, tuple[str, str]]:
    """edgekit's components on ``thing`` as the control plane reports them: name -> (version,
    lifecycle state)."""
    greengrass = clients.client("greengrassv2", settings)
    return installed_on(greengrass, thing, component_roles(settings))


def execution_status(settings: Settings, thing: str, deployment_id: str) -> str | None:
    """How ``thing`` reports deployment ``deployment_id`` (None if it has not yet)."""
    greengrass = clients.client("greengrassv2", settings)
    row = effective_deployment(greengrass, thing, deployment_id)
    return None if row is None else _reported(row)


def deployment_columns(settings: Settings) -> list[tuple[str, str]]:
    """``format_table`` columns of :func:`deployment_rows` and :func:`installed_rows`."""
    roles = component_roles(settings)
    return [("thing", "thing"), ("status", "deployment")] + [
        (name, f"{role} ({name})") for name, role in roles.items()
    ]


def deployment_rows(settings: Settings, result: DeploymentResult) -> list[dict[str, str]]:
    """One row per device: thing, deployment status, ``version STATE`` per component."""
    rows = []
    for device in result.devices:
        row = {"thing": device.thing_name, "status": device.execution_status}
        for name in component_roles(settings):
            version, state = device.components.get(name, ("-", "MISSING"))
            row[name] = f"{version} {state}"
        rows.append(row)
    return rows


def installed_rows(
    settings: Settings, things: Sequence[str], *, deployment_id: str | None = None
) -> list[dict[str, str]]:
    """Rows like :func:`deployment_rows` from what each device runs now; ``status`` is the
    device's report of ``deployment_id`` when given."""
    greengrass = clients.client("greengrassv2", settings)
    roles = component_roles(settings)
    rows = []
    for thing in things:
        components = installed_on(greengrass, thing, roles)
        report = effective_deployment(greengrass, thing, deployment_id) if deployment_id else None
        status = _reported(report) if report is not None else None
        row = {"thing": thing, "status": status or ("not reported" if deployment_id else "")}
        for name in roles:
            version, state = components.get(name, ("-", "NOT INSTALLED"))
            row[name] = f"{version} {state}"
        rows.append(row)
    return rows
