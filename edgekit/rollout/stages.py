"""The Greengrass side of a rollout: groups, memberships, deployments, what ran before.

A canary on Greengrass is a thing group of its own. A core device runs the union of
the deployments of every group it is in, and two groups that pin different versions of
one component make its deployments fail (the nucleus' version requirements conflict),
so a canary device leaves the fleet group before it joins the canary group, and comes
back after the verdict. Every stage is one deployment with the ROLLBACK failure policy
and an IoT job rollout and abort configuration; a rollback is a deployment of the
components (versions and configuration updates) the group's previous deployment had.
"""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from edgekit import clients
from edgekit.awsapi import is_not_found, map_client_error, paginate
from edgekit.components.publish import account_id, component_arn
from edgekit.deploy import (
    DEPLOYMENT_POLICIES,
    DONE_STATUSES,
    FAILED_STATUSES,
    MODEL_RESET,
    DeploymentResult,
    execution_status,
    missing_group_message,
    thing_group_arn,
)
from edgekit.errors import ConfigurationError, DeploymentError, RolloutError
from edgekit.settings import Settings

#: The agent's keys follow each deployed agent recipe (a package signed with a new key), and
#: the extra key a shadow stage trusts goes away with the stage. Both are keys the build
#: generates, so `edgekit deploy` resets them too (edgekit.components.generated_configuration).
AGENT_RESET = ["/AdditionalPublicKeys", "/PublicKey"]  # sorted, as rollback_specs writes it
#: The inference app leaves shadow mode unless a deployment puts it there (edgekit.edge.config).
SHADOW_RESET = ["/ShadowPackagePath", "/ShadowModelName"]
#: How a stage's IoT job rolls out and when it aborts (a failed device cancels the rest).
ROLLOUT_PER_MINUTE = 1000


def job_configuration(devices: int) -> dict[str, Any]:
    """IoT job rollout and abort configuration of a stage's deployment: all at once, and
    cancelled as soon as one device fails (the gates decide the rest)."""
    return {
        "jobExecutionsRolloutConfig": {"maximumPerMinute": ROLLOUT_PER_MINUTE},
        "abortConfig": {
            "criteriaList": [
                {
                    "failureType": "FAILED",
                    "action": "CANCEL",
                    "thresholdPercentage": 1.0 if devices > 100 else 100.0 / max(devices, 1),
                    "minNumberOfExecutedThings": 1,
                }
            ]
        },
    }


def group_members(settings: Settings, group: str) -> list[str]:
    """The things of ``group`` in AWS IoT (the registry, not the devices' last report)."""
    iot = clients.client("iot", settings)
    try:
        rows = paginate(iot, "list_things_in_thing_group", "things", thingGroupName=group)
        return sorted(str(t) for t in rows)
    except ClientError as exc:
        if is_not_found(exc):
            raise ConfigurationError(missing_group_message(settings, group)) from exc
        raise map_client_error(exc, f"thing group {group}", "list its things") from exc


def ensure_group(settings: Settings, group: str, parent: str | None = None) -> str:
    """Thing group ``group`` (created if missing); its ARN."""
    iot = clients.client("iot", settings)
    try:
        return thing_group_arn(iot, group)
    except ConfigurationError:
        pass  # does not exist yet: create it below
    try:
        answer = iot.create_thing_group(
            thingGroupName=group,
            thingGroupProperties={
                "thingGroupDescription": f"edgekit rollout canary of {parent or 'a fleet'}"
            },
        )
    except ClientError as exc:
        raise map_client_error(exc, f"thing group {group}", "create it") from exc
    return str(answer["thingGroupArn"])


def add_thing(settings: Settings, thing: str, group: str) -> None:
    """Put ``thing`` in thing group ``group``."""
    iot = clients.client("iot", settings)
    try:
        iot.add_thing_to_thing_group(thingGroupName=group, thingName=thing)
    except ClientError as exc:
        raise map_client_error(exc, f"thing {thing}", f"add it to thing group {group}") from exc


def remove_thing(settings: Settings, thing: str, group: str) -> None:
    """Take ``thing`` out of thing group ``group``."""
    iot = clients.client("iot", settings)
    try:
        iot.remove_thing_from_thing_group(thingGroupName=group, thingName=thing)
    except ClientError as exc:
        raise map_client_error(
            exc, f"thing {thing}", f"remove it from thing group {group}"
        ) from exc


def move_things(settings: Settings, things: Iterable[str], source: str, dest: str) -> None:
    """Take ``things`` out of ``source``, then put them in ``dest`` (never in both at once,
    which would conflict on Greengrass while the groups pin different versions)."""
    for thing in things:
        remove_thing(settings, thing, source)
        add_thing(settings, thing, dest)


def latest_deployment(settings: Settings, group: str) -> dict[str, Any] | None:
    """The latest deployment to thing group ``group`` (GetDeployment), or None."""
    greengrass = clients.client("greengrassv2", settings)
    arn = thing_group_arn(clients.client("iot", settings), group, settings)
    try:
        rows = list(
            paginate(
                greengrass,
                "list_deployments",
                "deployments",
                targetArn=arn,
                historyFilter="LATEST_ONLY",
            )
        )
        if not rows:
            return None
        return dict(greengrass.get_deployment(deploymentId=rows[0]["deploymentId"]))
    except ClientError as exc:
        raise map_client_error(exc, f"thing group {group}", "read its deployments") from exc


def package_of(settings: Settings, component: str, version: str) -> dict[str, Any]:
    """The model package a model component version carries: name, version, archive sha256
    (hex, from the artifact's Digest, which is what the devices' health reports)."""
    greengrass = clients.client("greengrassv2", settings)
    arn = component_arn(settings, account_id(settings), component, version)
    try:
        raw = greengrass.get_component(arn=arn, recipeOutputFormat="JSON")["recipe"]
    except ClientError as exc:
        raise map_client_error(exc, f"component {component} {version}", "read its recipe") from exc
    recipe = json.loads(raw if isinstance(raw, str) else raw.decode())
    defaults = (recipe.get("ComponentConfiguration") or {}).get("DefaultConfiguration") or {}
    sha = None
    for manifest in recipe.get("Manifests") or []:
        for artifact in manifest.get("Artifacts") or []:
            if str(artifact.get("URI", "")).endswith(".tar.gz") and artifact.get("Digest"):
                sha = base64.b64decode(artifact["Digest"]).hex()
    return {
        "name": defaults.get("ModelName"),
        "version": defaults.get("ModelVersion"),
        "package_sha256": sha,
    }


def candidate_specs(
    settings: Settings, versions: Mapping[str, str], previous: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Component specs of the candidate: the new versions, the app's configuration of the
    previous deployment kept, the model's name and the agent's key reset to the new recipes."""
    specs: dict[str, Any] = {}
    for name, version in sorted(versions.items()):
        spec: dict[str, Any] = {"componentVersion": version}
        before = ((previous or {}).get(name) or {}).get("configurationUpdate") or {}
        update: dict[str, Any] = {}
        if name == settings.inference_component and before.get("merge"):
            update["merge"] = before["merge"]
        reset = _resets(settings, name)
        if reset:
            update["reset"] = reset
        if update:
            spec["configurationUpdate"] = update
        specs[name] = spec
    return specs


def rollback_specs(settings: Settings, previous: Mapping[str, Any]) -> dict[str, Any]:
    """The previous deployment's components again, resetting what the candidate changed."""
    specs = copy.deepcopy(dict(previous))
    for name, spec in specs.items():
        reset = _resets(settings, name)
        if reset:
            update = spec.setdefault("configurationUpdate", {})
            update["reset"] = sorted(set(update.get("reset") or []) | set(reset))
    return specs


def _resets(settings: Settings, name: str) -> list[str]:
    if name == settings.model_component:
        return list(MODEL_RESET)
    if name == settings.agent_component:
        return list(AGENT_RESET)
    if name == settings.inference_component:
        return list(SHADOW_RESET)
    return []


def create_stage_deployment(
    settings: Settings, group: str, specs: Mapping[str, Any], name: str, devices: int
) -> DeploymentResult:
    """One stage: a deployment of ``specs`` to ``group`` (ROLLBACK on failure, IoT job
    rollout and abort configuration); the DeploymentResult to wait on."""
    greengrass = clients.client("greengrassv2", settings)
    arn = thing_group_arn(clients.client("iot", settings), group, settings)
    try:
        answer = greengrass.create_deployment(
            targetArn=arn,
            deploymentName=name,
            components=dict(specs),
            iotJobConfiguration=job_configuration(devices),
            deploymentPolicies=copy.deepcopy(DEPLOYMENT_POLICIES),
        )
    except ClientError as exc:
        raise map_client_error(
            exc,
            f"thing group {group}",
            "create a deployment (CreateDeployment)",
            default=DeploymentError,
        ) from exc
    versions = {n: str(s["componentVersion"]) for n, s in specs.items()}
    return DeploymentResult(str(answer["deploymentId"]), arn, versions)


def wait_effective(
    settings: Settings, things: Iterable[str], group: str, timeout: float, poll: float = 1.0
) -> dict[str, str]:
    """Wait until the latest deployment of ``group`` is done (succeeded or failed) on every
    one of ``things``; ``{thing: status}``. RolloutError naming the devices at the timeout."""
    latest = latest_deployment(settings, group)
    if latest is None:
        return {}
    deployment_id = str(latest["deploymentId"])
    pending = sorted(things)
    done: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while pending:
        for thing in list(pending):
            status = execution_status(settings, thing, deployment_id)
            if status in DONE_STATUSES or status in FAILED_STATUSES:
                done[thing] = str(status)
                pending.remove(thing)
        if not pending:
            break
        if time.monotonic() >= deadline:
            raise RolloutError(
                f"deployment {deployment_id} of thing group {group} is not done on "
                f"{', '.join(pending)} after {timeout:.0f} s; check the devices are running "
                "(`edgekit local device list` locally) and run the rollout again to resume"
            )
        time.sleep(poll)
    return done


def restore_group(
    settings: Settings, group: str, fleet_group: str, things: Iterable[str], name: str
) -> None:
    """Put ``things`` back in ``group`` (a canary group the user named), after making the
    group's latest deployment pin the versions ``fleet_group`` pins (while nobody is in it),
    so the devices are never in two groups that pin different versions."""
    missing = [t for t in things if t not in set(group_members(settings, group))]
    if not missing:
        return
    fleet, canary = latest_deployment(settings, fleet_group), latest_deployment(settings, group)

    def versions(doc: Mapping[str, Any] | None) -> dict[str, Any]:
        return {
            n: s.get("componentVersion") for n, s in ((doc or {}).get("components") or {}).items()
        }

    if fleet is not None and versions(fleet) != versions(canary):
        create_stage_deployment(settings, group, fleet["components"], name, 1)
    for thing in missing:
        add_thing(settings, thing, group)
