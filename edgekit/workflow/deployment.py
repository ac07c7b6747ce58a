"""Notebook 03's output for notebook 04: devices that run the inference app, found or deployed.

:func:`deploy_latest_approved` is notebook 03 in one call, for notebook 04 when nothing
is deployed yet: devices, package, registry, components, deployment, ``deployment.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.components import build_components, publish_components
from edgekit.deploy import (
    DEFAULT_INFERENCE_INTERVAL,
    DEFAULT_MIN_RESULTS,
    deploy,
    deployment_record,
    explain_failure,
    inference_configuration,
    installed_components,
)
from edgekit.errors import DeviceDeploymentError, RegistryError
from edgekit.handover import DEPLOYMENT, PathLike, read_handover, same_backend, write_handover
from edgekit.provision import device_backend, find_provisioned
from edgekit.registry import download_package, latest_approved
from edgekit.settings import Settings
from edgekit.workflow.devices import DEFAULT_DEVICE_COUNT, ensure_devices, stack_name_for
from edgekit.workflow.model import ensure_registered, find_model_package


@dataclass(frozen=True)
class Deployed:
    """Devices that run the inference app now, and the deployment record if one is known."""

    thing_group: str
    things: tuple[str, ...]
    record: dict[str, Any] | None
    deployed_now: bool = False


def find_deployment(settings: Settings, output_dir: PathLike) -> Deployed | None:
    """Devices of the provisioned thing group whose inference app is RUNNING; None if none.

    Reads ``deployment.json`` (notebook 03) for the record, but trusts only what the
    devices report: a record whose devices no longer run the app counts as nothing.
    """
    if not device_backend(settings).reachable():
        return None
    provisioned = find_provisioned(settings, stack_name_for(settings, output_dir))
    if provisioned is None:
        return None
    running = [
        thing
        for thing in provisioned.things
        if installed_components(settings, thing).get(settings.inference_component, ("", ""))[1]
        == "RUNNING"
    ]
    if not running:
        return None
    record = read_handover(output_dir, DEPLOYMENT)
    if not same_backend(record, settings):
        record = None
    return Deployed(provisioned.thing_group, tuple(running), record)


def deploy_latest_approved(
    settings: Settings,
    output_dir: PathLike,
    *,
    device_count: int = DEFAULT_DEVICE_COUNT,
    model_group: str | None = None,
    inference_interval: float = DEFAULT_INFERENCE_INTERVAL,
    score_threshold: float | None = None,
    timeout: float = 300.0,
    progress: bool = True,
    min_results: int = DEFAULT_MIN_RESULTS,
) -> Deployed:
    """Notebook 03 in one call: devices, package, registry, components, deployment.

    Every device must prove inspection with the deployed package (Greengrass SUCCEEDED,
    its health reports the package's sha256, at least ``min_results`` results since the
    deployment: `edgekit.deploy.proof`). Writes ``deployment.json`` like notebook 03 does.
    When a device does not prove itself, DeviceDeploymentError (naming every such device)
    is raised after the record (with the first failure) is written.
    """
    group = model_group or settings.model_name
    devices = ensure_devices(
        settings, output_dir, device_count=device_count, progress=progress
    ).provisioned
    work = Path(output_dir).expanduser().resolve() / "components"
    package = find_model_package(settings, output_dir, work_dir=work / "package")
    ensure_registered(settings, group, package, bucket=devices.bucket)
    approved = latest_approved(group, settings)
    if approved is None:
        raise RegistryError(
            f"model package group {group} has no Approved version; approve one with "
            f"`edgekit registry approve --group {group} --version N`"
        )
    downloaded = download_package(approved, work / "registry", settings)
    built = build_components(
        settings, out_dir=work / "build", model_package=downloaded, key_dir=package.key_dir
    )
    publish_components(settings, built, bucket=devices.bucket)
    configuration = inference_configuration(
        settings, inference_interval=inference_interval, score_threshold=score_threshold
    )
    try:
        result = deploy(
            settings,
            thing_group=devices.thing_group,
            configuration=configuration,
            timeout=timeout,
            min_results=min_results,
        )
    except DeviceDeploymentError as error:
        failure = explain_failure(settings, error)
        write_handover(
            output_dir,
            DEPLOYMENT,
            deployment_record(
                settings,
                error.result,
                thing_group=devices.thing_group,
                model=approved,
                configuration=configuration,
                failure=failure,
            ),
        )
        raise
    record = deployment_record(
        settings,
        result,
        thing_group=devices.thing_group,
        model=approved,
        configuration=configuration,
    )
    write_handover(output_dir, DEPLOYMENT, record)
    return Deployed(
        devices.thing_group,
        tuple(d.thing_name for d in result.devices),
        record,
        deployed_now=True,
    )
