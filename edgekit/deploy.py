"""Deploy the three components to a thing group and wait until every device runs them.

``deploy`` creates one Greengrass deployment for the thing group (the latest
published version of each component unless versions are given), with
``failureHandlingPolicy: ROLLBACK`` so a device that cannot run the new set
goes back to the previous one. With ``wait=True`` it polls each core device of
the group (ListCoreDevices, ListEffectiveDeployments, ListInstalledComponents)
until the device reports the deployment SUCCEEDED and the new versions
RUNNING or FINISHED, showing a progress bar; a failed device raises
DeploymentError with the device's own reason.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgekit.errors import ConfigurationError, DeploymentError
from edgekit.progress import progress
from edgekit.settings import Settings

READY_STATES = ("RUNNING", "FINISHED")
FAILED_STATUSES = ("FAILED", "REJECTED", "TIMED_OUT", "CANCELED")
DONE_STATUSES = ("SUCCEEDED", "COMPLETED")
POLL_INTERVAL = 1.0
# How long to wait for the group's first core device to show up before giving up.
NO_DEVICE_GRACE = 30.0
# The model component's name and version follow each new recipe, not an older deployment.
MODEL_RESET = ["/ModelName", "/ModelVersion"]


@dataclass
class DeviceStatus:
    """One core device's view of the deployment."""

    thing_name: str
    execution_status: str = "PENDING"
    reason: str = ""
    components: dict[str, tuple[str, str]] = field(default_factory=dict)
    """name -> (version, lifecycle state) of edgekit's components on the device."""

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


class DeviceDeploymentError(DeploymentError):
    """A device reported the deployment failed; ``device`` and ``reason`` say which and why."""

    def __init__(self, message: str, *, device: str, reason: str, result: DeploymentResult) -> None:
        super().__init__(message)
        self.device = device
        self.reason = reason
        self.result = result


def _code(exc: Exception) -> str:
    return str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))


def thing_group_arn(iot: Any, group: str) -> str:
    try:
        return str(iot.describe_thing_group(thingGroupName=group)["thingGroupArn"])
    except Exception as exc:
        if _code(exc) == "ResourceNotFoundException":
            raise ConfigurationError(
                f"thing group {group} does not exist; create the device first (`edgekit local "
                "device add THING --thing-group GROUP` locally, or the device stack on AWS)"
            ) from exc
        raise


def parse_component_args(items: list[str] | None) -> dict[str, str]:
    """``["name=1.0.2", ...]`` -> ``{name: version}`` (ConfigurationError on a bad item)."""
    result: dict[str, str] = {}
    for item in items or []:
        name, sep, version = item.partition("=")
        if not sep or not name.strip() or not version.strip():
            raise ConfigurationError(f"--components {item!r}: write NAME=VERSION")
        result[name.strip()] = version.strip()
    return result


def resolve_versions(
    settings: Settings, greengrass: Any, account: str, versions: Mapping[str, str] | None
) -> dict[str, str]:
    """The given versions, and the latest published one for every other edgekit component."""
    from edgekit.components.publish import component_arn, component_versions, latest_version

    names = (settings.model_component, settings.agent_component, settings.inference_component)
    given = dict(versions or {})
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ConfigurationError(
            f"--components names {', '.join(unknown)}, not one of {', '.join(names)}"
        )
    published = {
        name: component_versions(greengrass, component_arn(settings, account, name))
        for name in names
    }
    for name, version in given.items():  # a wrong pin is the more useful error
        if version not in published[name]:
            raise ConfigurationError(
                f"component {name} has no version {version}; published: "
                + (", ".join(sorted(published[name])) or "none")
            )
    resolved: dict[str, str] = {}
    for name in names:
        latest = given.get(name) or latest_version(published[name])
        if latest is None:
            raise ConfigurationError(
                f"component {name} is not published yet; run `edgekit components publish`"
            )
        resolved[name] = latest
    return resolved


def _component_spec(
    settings: Settings, name: str, version: str, configuration: Mapping[str, Any]
) -> dict[str, Any]:
    spec: dict[str, Any] = {"componentVersion": version}
    update: dict[str, Any] = {}
    if name in configuration:
        merge = configuration[name]
        if not isinstance(merge, Mapping):
            raise ConfigurationError(f"configuration for {name} must be a mapping, got {merge!r}")
        update["merge"] = json.dumps(merge)
    if name == settings.model_component:
        update["reset"] = list(MODEL_RESET)
    if update:
        spec["configurationUpdate"] = update
    return spec


def _device_status(
    greengrass: Any, thing: str, deployment_id: str, want: Mapping[str, str]
) -> DeviceStatus:
    status = DeviceStatus(thing)
    rows = greengrass.list_effective_deployments(coreDeviceThingName=thing).get(
        "effectiveDeployments", []
    )
    for row in rows:
        if row.get("deploymentId") == deployment_id:
            status.execution_status = str(row.get("coreDeviceExecutionStatus") or "QUEUED")
            status.reason = str(row.get("reason") or "")
            break
    installed = greengrass.list_installed_components(
        coreDeviceThingName=thing, topologyFilter="ALL"
    ).get("installedComponents", [])
    for comp in installed:
        name = comp.get("componentName")
        if name in want:
            status.components[name] = (
                str(comp.get("componentVersion")),
                str(comp.get("lifecycleState")),
            )
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


def core_devices(greengrass: Any, group_arn: str) -> list[str]:
    things: list[str] = []
    for page in greengrass.get_paginator("list_core_devices").paginate(thingGroupArn=group_arn):
        things += [str(d["coreDeviceThingName"]) for d in page.get("coreDevices", [])]
    return sorted(things)


def deploy(
    settings: Settings | None = None,
    *,
    thing_group: str | None = None,
    components: Mapping[str, str] | None = None,
    configuration: Mapping[str, Mapping[str, Any]] | None = None,
    wait: bool = True,
    timeout: float = 600.0,
    deployment_name: str | None = None,
    home: str | os.PathLike[str] | None = None,
) -> DeploymentResult:
    """Deploy edgekit's three components to ``thing_group`` (default: Settings.thing_group).

    ``components``: ``{name: version}`` to pin (others: latest published).
    ``configuration``: ``{name: {key: value}}`` merged into the components'
    configuration (Greengrass ``configurationUpdate.merge``).
    """
    from edgekit import clients
    from edgekit.components.publish import account_id

    settings = settings or Settings.from_env()
    group = thing_group or settings.thing_group
    greengrass = clients.client("greengrassv2", settings, home=home)
    iot = clients.client("iot", settings, home=home)
    group_arn = thing_group_arn(iot, group)
    account = account_id(settings, home=home)
    versions = resolve_versions(settings, greengrass, account, components)
    config = dict(configuration or {})
    unknown = sorted(set(config) - set(versions))
    if unknown:
        raise ConfigurationError(
            f"configuration for {', '.join(unknown)}: not one of {', '.join(versions)}"
        )
    name = deployment_name or f"{settings.project_name}-{group}-{uuid.uuid4().hex[:8]}"
    try:
        answer = greengrass.create_deployment(
            targetArn=group_arn,
            deploymentName=name,
            components={
                n: _component_spec(settings, n, v, config) for n, v in sorted(versions.items())
            },
            deploymentPolicies={
                "failureHandlingPolicy": "ROLLBACK",
                "componentUpdatePolicy": {"timeoutInSeconds": 60, "action": "NOTIFY_COMPONENTS"},
                "configurationValidationPolicy": {"timeoutInSeconds": 60},
            },
        )
    except Exception as exc:
        message = (getattr(exc, "response", None) or {}).get("Error", {}).get("Message")
        raise DeploymentError(f"CreateDeployment for {group} failed: {message or exc}") from exc
    result = DeploymentResult(str(answer["deploymentId"]), group_arn, versions)
    if not wait:
        return result
    return wait_for_deployment(settings, result, timeout=timeout, home=home, greengrass=greengrass)


def wait_for_deployment(
    settings: Settings,
    result: DeploymentResult,
    *,
    timeout: float = 600.0,
    home: str | os.PathLike[str] | None = None,
    greengrass: Any = None,
    poll: float = POLL_INTERVAL,
) -> DeploymentResult:
    """Poll every core device of the target group until all are done; DeploymentError if not."""
    from edgekit import clients
    from edgekit.provision import device_backend

    greengrass = greengrass or clients.client("greengrassv2", settings, home=home)
    started = time.monotonic()
    deadline = started + timeout
    done: dict[str, DeviceStatus] = {}
    things: list[str] = []
    with progress(total=0, desc="deploy", unit="device") as bar:
        while True:
            # Re-listed every round: a device's group membership may show up a little late.
            listed = core_devices(greengrass, result.target_arn)
            if listed != things:
                things = sorted(set(things) | set(listed))
                bar.total = len(things)
                bar.refresh()
            for thing in things:
                if thing in done:
                    continue
                status = _device_status(greengrass, thing, result.deployment_id, result.components)
                if status.failed:
                    result.devices = [
                        status if t == thing else done.get(t, DeviceStatus(t)) for t in things
                    ]
                    hint = device_backend(settings, home).deploy_failed_hint(thing)
                    raise DeviceDeploymentError(
                        f"deployment {result.deployment_id} {status.execution_status} on "
                        f"{thing}: {status.reason or 'no reason given'}{hint}",
                        device=thing,
                        reason=status.reason,
                        result=result,
                    )
                if status.ready:
                    done[thing] = status
                    bar.update(1)
            if things and len(done) == len(things):
                break
            now = time.monotonic()
            if not things and now - started >= min(NO_DEVICE_GRACE, timeout):
                raise DeploymentError(
                    f"no core devices in {result.target_arn}: nothing would run deployment "
                    f"{result.deployment_id}; add one (`edgekit local device add THING "
                    "--thing-group GROUP`) or start the device stack"
                )
            if now >= deadline:
                pending = [t for t in things if t not in done]
                raise DeploymentError(
                    f"deployment {result.deployment_id}: {', '.join(pending)} did not finish "
                    f"within {timeout:.0f} s; check the devices are running"
                    + device_backend(settings, home).running_hint
                )
            time.sleep(poll)
    result.devices = [done[t] for t in things]
    return result
