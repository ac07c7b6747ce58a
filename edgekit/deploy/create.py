"""Create a deployment of edgekit's three components to a thing group.

``deploy`` creates one Greengrass deployment for the thing group (the latest
published version of each component unless versions are given), with
``failureHandlingPolicy: ROLLBACK`` so a device that cannot run the new set
goes back to the previous one, and with ``wait=True`` waits until every device
proves it inspects with the deployed package (`edgekit.deploy.wait`,
`edgekit.deploy.proof`).

Each component's ``configurationUpdate`` resets the configuration keys the build
generates (`edgekit.components.generated_configuration`: the agent's ``PublicKey``,
the model's ``ModelName``/``ModelVersion``, topics, interpreter...), then merges the
caller's configuration. Greengrass keeps a device's existing configuration across
component versions, so without the reset a device would keep, say, the public key of
an older deployment and refuse a package signed with a new key.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from edgekit import clients
from edgekit.awsapi import error_code, map_client_error
from edgekit.components.build import generated_configuration
from edgekit.components.publish import (
    account_id,
    component_arn,
    component_versions,
    latest_version,
)
from edgekit.deploy.expected import expected_proof
from edgekit.deploy.proof import DEFAULT_MIN_RESULTS, ProofCollector
from edgekit.deploy.status import DeploymentResult, target_devices
from edgekit.deploy.wait import wait_for_deployment
from edgekit.errors import ConfigurationError, DeploymentError
from edgekit.provision import device_backend
from edgekit.schemas.capture_band import capture_band as check_capture_band
from edgekit.settings import Settings

# The model component's name and version follow each new recipe, not an older deployment
# (part of what `generated_configuration` resets; kept for callers of edgekit.deploy).
MODEL_RESET = ["/ModelName", "/ModelVersion"]
#: Every edgekit deployment: a device that cannot run the new set goes back to what it ran
#: (ROLLBACK); components are notified of an update and of a configuration change.
DEPLOYMENT_POLICIES: dict[str, Any] = {
    "failureHandlingPolicy": "ROLLBACK",
    "componentUpdatePolicy": {"timeoutInSeconds": 60, "action": "NOTIFY_COMPONENTS"},
    "configurationValidationPolicy": {"timeoutInSeconds": 60},
}
#: Seconds between two images of the inference app unless a deployment says otherwise.
DEFAULT_INFERENCE_INTERVAL = 0.2


def missing_group_message(settings: Settings | None, group: str) -> str:
    """'thing group G does not exist', and how the README makes it on this backend."""
    hint = (
        device_backend(settings).provision_hint
        if settings is not None
        else "`edgekit provision` (or notebook 01_provision_device)"
    )
    return f"thing group {group} does not exist; provision the devices first: {hint}"


def thing_group_arn(iot: Any, group: str, settings: Settings | None = None) -> str:
    """The ARN of thing group ``group`` (ConfigurationError, saying how to make it, if none).

    With ``settings`` the message says how to provision on that backend.
    """
    try:
        return str(iot.describe_thing_group(thingGroupName=group)["thingGroupArn"])
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise ConfigurationError(missing_group_message(settings, group)) from exc
        raise map_client_error(exc, f"thing group {group}", "describe it") from exc


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
                f"component {name} is not published yet; run `edgekit components publish` "
                f"(or `gdk component build && gdk component publish` in component/{name})"
            )
        resolved[name] = latest
    return resolved


def _component_spec(
    name: str, version: str, configuration: Mapping[str, Any], reset: Mapping[str, list[str]]
) -> dict[str, Any]:
    spec: dict[str, Any] = {"componentVersion": version}
    update: dict[str, Any] = {}
    if name in configuration:
        merge = configuration[name]
        if not isinstance(merge, Mapping):
            raise ConfigurationError(f"configuration for {name} must be a mapping, got {merge!r}")
        update["merge"] = json.dumps(merge)
    if reset.get(name):
        # Greengrass runs the reset before the merge: the caller's values still win.
        update["reset"] = list(reset[name])
    if update:
        spec["configurationUpdate"] = update
    return spec


def deploy(
    settings: Settings | None = None,
    *,
    thing_group: str | None = None,
    components: Mapping[str, str] | None = None,
    configuration: Mapping[str, Mapping[str, Any]] | None = None,
    wait: bool = True,
    timeout: float = 600.0,
    deployment_name: str | None = None,
    min_results: int = DEFAULT_MIN_RESULTS,
    prove: bool = True,
) -> DeploymentResult:
    """Deploy edgekit's three components to ``thing_group`` (default: Settings.thing_group).

    ``components``: ``{name: version}`` to pin (others: latest published).
    ``configuration``: ``{name: {key: value}}`` merged into the components'
    configuration (Greengrass ``configurationUpdate.merge``, after the reset of the keys
    the build generates). ``wait``: wait until every device of the group is done, which
    (``prove=True``) means Greengrass reports SUCCEEDED on it AND its health reports the
    deployed package's sha256 with at least ``min_results`` results published since the
    deployment started; DeviceDeploymentError names every device that is not, within
    ``timeout`` seconds. ``prove=False`` counts Greengrass's SUCCEEDED alone. The local
    home, on the local backend, is ``settings.home``.
    """
    settings = settings or Settings.from_env()
    group = thing_group or settings.thing_group
    greengrass = clients.client("greengrassv2", settings)
    iot = clients.client("iot", settings)
    group_arn = thing_group_arn(iot, group, settings)
    account = account_id(settings)
    versions = resolve_versions(settings, greengrass, account, components)
    config = dict(configuration or {})
    unknown = sorted(set(config) - set(versions))
    if unknown:
        raise ConfigurationError(
            f"configuration for {', '.join(unknown)}: not one of {', '.join(versions)}"
        )
    reset = generated_configuration(settings)
    specs = {n: _component_spec(n, v, config, reset) for n, v in sorted(versions.items())}
    name = deployment_name or f"{settings.project_name}-{group}-{uuid.uuid4().hex[:8]}"
    collector = None
    if wait and prove:
        criteria = expected_proof(
            settings,
            greengrass,
            account,
            versions,
            since=datetime.now(UTC),
            min_results=min_results,
        )
        # Subscribed before the deployment exists: no early result or health is missed.
        collector = ProofCollector(settings, criteria, target_devices(greengrass, iot, group_arn))
        collector.start()
    try:
        if collector is not None:
            collector.criteria.since = datetime.now(UTC)
        try:
            answer = greengrass.create_deployment(
                targetArn=group_arn,
                deploymentName=name,
                components=specs,
                deploymentPolicies=copy.deepcopy(DEPLOYMENT_POLICIES),
            )
        except ClientError as exc:
            raise map_client_error(
                exc,
                f"thing group {group}",
                "create a deployment (CreateDeployment)",
                hint="check the components' versions and the thing group",
                default=DeploymentError,
            ) from exc
        result = DeploymentResult(str(answer["deploymentId"]), group_arn, versions)
        if not wait:
            return result
        return wait_for_deployment(
            settings, result, timeout=timeout, greengrass=greengrass, iot=iot, collector=collector
        )
    finally:
        if collector is not None:
            collector.stop()


def inference_configuration(
    settings: Settings,
    *,
    inference_interval: float = DEFAULT_INFERENCE_INTERVAL,
    score_threshold: float | None = None,
    capture_band: Sequence[float] | None = None,
) -> dict[str, dict[str, Any]]:
    """The ``configuration`` argument of ``deploy``: interval, threshold and capture band.

    ``ScoreThreshold`` is always sent, ``null`` meaning "the package's threshold", so a
    threshold set by an earlier deployment does not linger. ``capture_band`` ``(low,
    high)`` sends ``CaptureBand`` (images whose best score lies in it go to CaptureData;
    ``()`` turns capture off); None leaves the app's band as it is (component default
    ``[0.2, 0.5]``).
    """
    if inference_interval < 0:
        raise ConfigurationError(f"inference_interval={inference_interval} must be >= 0 seconds")
    if score_threshold is not None and not 0.0 <= score_threshold <= 1.0:
        raise ConfigurationError(f"score_threshold={score_threshold} must be in [0, 1] or None")
    app: dict[str, Any] = {
        "InferenceInterval": float(inference_interval),
        "ScoreThreshold": None if score_threshold is None else float(score_threshold),
    }
    if capture_band is not None:
        band = check_capture_band(capture_band, what="capture_band")
        app["CaptureBand"] = [] if band is None else list(band)
    return {settings.inference_component: app}
