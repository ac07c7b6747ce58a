"""Glue the notebooks share: find what an earlier notebook left behind, or make it.

Every notebook runs alone. Notebook 01 writes ``provisioned.json``, 02
``model_package.json``, 03 ``deployment.json`` and 04 ``results.jsonl`` into
the run's ``output_dir``; a later notebook reads them when they are there and
otherwise finds the same things in AWS (or the local endpoints), creating only
what is missing. The hand-over files are conveniences: the state that counts is
the stack, the core devices, the model registry and the component registry.

These helpers hold the few decisions the notebooks would otherwise repeat in
cells (which stack, which package, is it registered, where are the images); the
notebooks still make the edgekit calls themselves, so a reader sees them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import time
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.errors import ConfigurationError, DataError, EdgekitError
from edgekit.settings import Settings

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from edgekit.deploy import DeploymentResult, DeviceDeploymentError
    from edgekit.provision import Provisioned
    from edgekit.registry import ModelVersion
    from edgekit.results import ResultsTable

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

#: Hand-over files in a run's ``output_dir``, one per notebook.
PROVISIONED = "provisioned.json"
MODEL_PACKAGE = "model_package.json"
DEPLOYMENT = "deployment.json"
RESULTS = "results.jsonl"

#: Inference app settings notebook 03 deploys unless told otherwise.
DEFAULT_INFERENCE_INTERVAL = 0.2
DEFAULT_DEVICE_COUNT = 2
SAMPLE_IMAGES_FOLDER = "sample-images"
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


# --------------------------------------------------------------------------------------
# Hand-over files


def read_handover(output_dir: PathLike, name: str) -> dict[str, Any] | None:
    """``output_dir/name`` as a dict, or None if the file is not there.

    A file that exists but is not a JSON object raises DataError naming it: a
    half-written hand-over should be fixed (or deleted), not silently ignored.
    """
    path = Path(output_dir).expanduser() / name
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(
            f"not valid JSON ({exc.msg}, line {exc.lineno}); delete it and run the notebook "
            "that writes it again",
            path=str(path),
        ) from exc
    if not isinstance(data, dict):
        raise DataError(
            "expected a JSON object; delete it and run its notebook again", path=str(path)
        )
    return data


def write_handover(output_dir: PathLike, name: str, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as indented JSON to ``output_dir/name`` (atomically); returns the path."""
    folder = Path(output_dir).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    tmp = path.with_name(f".{name}.tmp")
    tmp.write_text(json.dumps(dict(data), indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _same_backend(data: Mapping[str, Any] | None, settings: Settings) -> bool:
    return data is not None and data.get("backend", settings.backend) == settings.backend


# --------------------------------------------------------------------------------------
# Devices (notebook 01's output)


def stack_name_for(settings: Settings, output_dir: PathLike | None = None) -> str:
    """The device stack: the one ``provisioned.json`` names (same backend), else the default."""
    from edgekit.provision import default_stack_name

    data = read_handover(output_dir, PROVISIONED) if output_dir is not None else None
    if _same_backend(data, settings) and data and data.get("stack_name"):
        return str(data["stack_name"])
    return default_stack_name(settings)


@dataclass(frozen=True)
class Devices:
    """The provisioned devices and whether this call had to create (or repair) them."""

    provisioned: Provisioned
    created: bool

    @property
    def how(self) -> str:
        return "provisioned now" if self.created else "found"


def ensure_devices(
    settings: Settings,
    output_dir: PathLike | None = None,
    *,
    device_count: int = DEFAULT_DEVICE_COUNT,
    thing_group: str | None = None,
    progress: bool = True,
) -> Devices:
    """The device stack and healthy devices: found if they exist, else provisioned.

    Uses the stack named in ``provisioned.json`` (notebook 01) when present. A stack
    whose devices all report HEALTHY is used as it is (``device_count`` is then
    ignored); a missing stack, or devices that are not healthy (e.g. after the local
    endpoints restarted), get :func:`edgekit.provision.provision`, which only creates
    what is missing. On the local backend the endpoints are started if needed.
    ``thing_group`` is only used when a new stack is made (default: Settings'); an
    existing stack keeps its own group.
    """
    from edgekit.provision import device_backend, find_provisioned, provision

    stack_name = stack_name_for(settings, output_dir)
    backend = device_backend(settings)
    found = None
    if backend.reachable():
        found = find_provisioned(settings, stack_name)
    if found is not None and found.things and found.healthy:
        return Devices(found, created=False)
    count = backend.device_count(device_count, len(found.things) if found is not None else None)
    made = provision(
        settings,
        stack_name=stack_name,
        thing_group=thing_group,
        device_count=count,
        progress=progress,
    )
    return Devices(made, created=True)


# --------------------------------------------------------------------------------------
# The model package (notebook 02's output)


@dataclass(frozen=True)
class PackageRef:
    """A signed model package on this machine and the public key that verifies it."""

    path: Path
    public_key: Path
    source: str

    @property
    def key_dir(self) -> Path:
        return self.public_key.parent

    def sha256(self) -> str:
        return file_sha256(self.path)


def file_sha256(path: PathLike) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def find_model_package(
    settings: Settings, output_dir: PathLike, *, work_dir: PathLike | None = None
) -> PackageRef:
    """Notebook 02's package (``model_package.json``), else the shipped model, packaged.

    The fallback is what ``build_components`` does by default: the model that ships
    with edgekit, packaged as version 1.0.0 and signed with the key in
    ``<local home>/keys`` (created on first use), written under ``work_dir``
    (default ``output_dir/components``). A ``model_package.json`` whose files are gone
    (a copied run folder, a deleted home) also falls back; ``source`` says why.
    """
    from edgekit.components import build_components, default_key_dir

    data = read_handover(output_dir, MODEL_PACKAGE)
    why = f"no {MODEL_PACKAGE} from notebook 02"
    if data is not None:
        where = Path(output_dir).expanduser() / MODEL_PACKAGE
        missing = [
            f"{key} {data.get(key)!r}"
            for key in ("package", "public_key")
            if not data.get(key) or not Path(str(data[key])).expanduser().is_file()
        ]
        if not missing:
            return PackageRef(
                Path(str(data["package"])).expanduser().resolve(),
                Path(str(data["public_key"])).expanduser().resolve(),
                f"notebook 02 ({where})",
            )
        why = f"{where} names files that are gone: {', '.join(missing)}; run notebook 02 again"
        log.warning("%s", why)
    out = Path(work_dir) if work_dir is not None else Path(output_dir).expanduser() / "components"
    (model,) = build_components(settings, out_dir=out, names=[settings.model_component])
    package = next(p for p in model.artifacts if p.name.endswith(".tar.gz"))
    return PackageRef(
        package.resolve(),
        (default_key_dir(settings) / "public_key.pem").resolve(),
        f"the model shipped with edgekit ({why})",
    )


# --------------------------------------------------------------------------------------
# The model registry


@dataclass(frozen=True)
class Registration:
    """The registry version of a package, and whether this call registered it."""

    version: ModelVersion
    created: bool
    package_s3_uri: str | None = None


def find_registered(settings: Settings, group: str, sha256: str) -> ModelVersion | None:
    """The newest version of ``group`` whose package has this SHA-256 (None if none)."""
    from edgekit.registry import ensure_group, list_versions

    ensure_group(group, settings)
    return next((v for v in list_versions(group, settings) if v.sha256 == sha256), None)


def ensure_registered(
    settings: Settings,
    group: str,
    package: PackageRef,
    *,
    bucket: str | None = None,
    approval_status: str = "Approved",
    description: str | None = None,
) -> Registration:
    """Register ``package`` in model package group ``group`` unless a version already has it.

    A package is "already registered" when a version records the same SHA-256; that
    version is returned unchanged, whatever its approval status. Otherwise the package
    is verified, uploaded to ``bucket`` (under a content-addressed key, so an older
    version's object is never overwritten) and registered with ``approval_status``.
    """
    from edgekit.registry import register_model_version, upload_package

    existing = find_registered(settings, group, package.sha256())
    if existing is not None:
        return Registration(existing, created=False, package_s3_uri=existing.package_s3_uri)
    uri, manifest, sha = upload_package(
        settings, package.path, public_key=package.public_key, bucket=bucket
    )
    version = register_model_version(
        settings,
        group=group,
        package_s3_uri=uri,
        manifest=manifest,
        approval_status=approval_status,
        sha256=sha,
        description=description,
    )
    return Registration(version, created=True, package_s3_uri=uri)


def version_rows(versions: Iterable[ModelVersion], *, current: int | None = None) -> list[dict]:
    """Registry versions as table rows; ``current`` marks the one being deployed."""
    rows = []
    for v in versions:
        rows.append(
            {
                "version": v.version,
                "semver": v.semver or "",
                "status": v.approval_status,
                "ap50": v.ap50,
                "sha256": (v.sha256 or "")[:12],
                "created": v.created.isoformat(timespec="seconds") if v.created else "",
                "deploy": "◀ deploying" if current is not None and v.version == current else "",
            }
        )
    return rows


VERSION_COLUMNS = [
    ("version", "version"),
    ("semver", "model version"),
    ("status", "approval"),
    ("ap50", "AP50"),
    ("sha256", "SHA-256"),
    ("created", "registered"),
    ("deploy", ""),
]


# --------------------------------------------------------------------------------------
# Deployment status


def component_roles(settings: Settings) -> dict[str, str]:
    """``{component name: short role}`` for table headers: model, agent, inference."""
    return {
        settings.model_component: "model",
        settings.agent_component: "agent",
        settings.inference_component: "inference",
    }


def deployment_columns(settings: Settings) -> list[tuple[str, str]]:
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


def installed_components(settings: Settings, thing: str) -> dict[str, tuple[str, str]]:
    """edgekit's components on ``thing`` as the control plane reports them: name -> (version,
    lifecycle state)."""
    from edgekit import clients

    greengrass = clients.client("greengrassv2", settings)
    wanted = component_roles(settings)
    found: dict[str, tuple[str, str]] = {}
    kwargs: dict[str, Any] = {"coreDeviceThingName": thing, "topologyFilter": "ALL"}
    while True:
        page = greengrass.list_installed_components(**kwargs)
        for comp in page.get("installedComponents", []):
            name = str(comp.get("componentName"))
            if name in wanted:
                found[name] = (str(comp.get("componentVersion")), str(comp.get("lifecycleState")))
        token = page.get("nextToken")
        if not token:
            return found
        kwargs["nextToken"] = token


def execution_status(settings: Settings, thing: str, deployment_id: str) -> str | None:
    """How ``thing`` reports deployment ``deployment_id`` (None if it has not yet)."""
    from edgekit import clients

    greengrass = clients.client("greengrassv2", settings)
    kwargs: dict[str, Any] = {"coreDeviceThingName": thing}
    while True:
        page = greengrass.list_effective_deployments(**kwargs)
        for row in page.get("effectiveDeployments", []):
            if row.get("deploymentId") == deployment_id:
                return str(row.get("coreDeviceExecutionStatus") or "QUEUED")
        token = page.get("nextToken")
        if not token:
            return None
        kwargs["nextToken"] = token


def installed_rows(
    settings: Settings, things: Sequence[str], *, deployment_id: str | None = None
) -> list[dict[str, str]]:
    """Rows like :func:`deployment_rows` from what each device runs now; ``status`` is the
    device's report of ``deployment_id`` when given."""
    rows = []
    for thing in things:
        components = installed_components(settings, thing)
        status = execution_status(settings, thing, deployment_id) if deployment_id else None
        row = {"thing": thing, "status": status or ("not reported" if deployment_id else "")}
        for name in component_roles(settings):
            version, state = components.get(name, ("-", "NOT INSTALLED"))
            row[name] = f"{version} {state}"
        rows.append(row)
    return rows


def failing_component(settings: Settings, reason: str) -> str | None:
    """Which of edgekit's components a failure reason names (the longest name that matches).

    ``com.qualityinspection`` is a prefix of the other two names, so a name only
    counts when no further name character follows it (``<name>.log`` counts).
    """
    for name in sorted(component_roles(settings), key=len, reverse=True):
        # not followed by another name character, except a log file's ".log"
        if re.search(re.escape(name) + r"(?![\w-])(?!\.(?!log\b)\w)", reason or ""):
            return name
    return None


def log_location(settings: Settings, thing: str, component: str | None) -> str:
    """Where a component's log is, in words, for the backend."""
    from edgekit.provision import device_backend

    return device_backend(settings).log_location(thing, component)


def log_tail(settings: Settings, thing: str, component: str | None, lines: int = 20) -> str:
    """The last ``lines`` of the component's log on a local device ('' elsewhere or if absent)."""
    from edgekit.provision import device_backend

    return device_backend(settings).log_tail(thing, component, lines)


def settings_home(settings: Settings) -> Path | None:
    """The local home a Settings object points at (None: EDGEKIT_LOCAL_HOME / the default)."""
    from edgekit.provision import local_home_of

    home = local_home_of(settings)
    return Path(home) if home is not None else None


@dataclass
class Failure:
    """What a failed deployment left: who, why, the log, and what runs after the rollback."""

    thing: str
    status: str
    reason: str
    component: str | None
    log_location: str
    log_tail: str
    after_rollback: list[dict[str, str]] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """The reason without the log lines a local device embeds in it, rollback kept."""
        lines = (self.reason or "no reason given").splitlines()
        text = lines[0].split("; last lines of ", 1)[0].removesuffix(":")
        outcome = re.search(r"; (rolled back\b.*|rollback failed\b.*)$", lines[-1])
        if outcome and outcome.group(1) not in text:
            text += f"; {outcome.group(1)}"
        return text


def explain_failure(
    settings: Settings, error: DeviceDeploymentError, *, settle: float = 10.0
) -> Failure:
    """Gather the failing device's reason, its failing component's log tail, and the
    components each device of the deployment runs after the rollback.

    The device reports FAILED once it has rolled back; its component list may follow a
    moment later, so this waits up to ``settle`` seconds for no component to be in a
    transitional state (NEW, INSTALLED, STARTING, STOPPING).
    """
    thing = error.device
    status = next(
        (d.execution_status for d in error.result.devices if d.thing_name == thing), "FAILED"
    )
    component = failing_component(settings, error.reason)
    things = [d.thing_name for d in error.result.devices] or [thing]
    transitional = {"NEW", "INSTALLED", "STARTING", "STOPPING"}
    deadline = time.monotonic() + settle
    while True:
        rows = installed_rows(settings, things, deployment_id=error.result.deployment_id)
        states = {cell.rsplit(" ", 1)[-1] for r in rows for k, cell in r.items() if "." in k}
        if not states & transitional or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    return Failure(
        thing=thing,
        status=status,
        reason=error.reason,
        component=component,
        log_location=log_location(settings, thing, component),
        log_tail=log_tail(settings, thing, component),
        after_rollback=rows,
    )


def deployment_record(
    settings: Settings,
    result: DeploymentResult,
    *,
    thing_group: str,
    model: ModelVersion | None = None,
    configuration: Mapping[str, Any] | None = None,
    failure: Failure | None = None,
) -> dict[str, Any]:
    """What ``deployment.json`` holds: the deployment, the model, each device's state."""
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
                "components": {
                    name: {"version": version, "state": state}
                    for name, (version, state) in sorted(d.components.items())
                },
            }
            for d in result.devices
        ],
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


# --------------------------------------------------------------------------------------
# The whole of notebook 03, for notebook 04 when nothing is deployed yet


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
    from edgekit.provision import device_backend, find_provisioned

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
    if not _same_backend(record, settings):
        record = None
    return Deployed(provisioned.thing_group, tuple(running), record)


def inference_configuration(
    settings: Settings,
    *,
    inference_interval: float = DEFAULT_INFERENCE_INTERVAL,
    score_threshold: float | None = None,
) -> dict[str, dict[str, Any]]:
    """The ``configuration`` argument of ``deploy``: interval and threshold of the app.

    ``ScoreThreshold`` is always sent, ``null`` meaning "the package's threshold", so a
    threshold set by an earlier deployment does not linger.
    """
    if inference_interval < 0:
        raise ConfigurationError(f"inference_interval={inference_interval} must be >= 0 seconds")
    if score_threshold is not None and not 0.0 <= score_threshold <= 1.0:
        raise ConfigurationError(f"score_threshold={score_threshold} must be in [0, 1] or None")
    return {
        settings.inference_component: {
            "InferenceInterval": float(inference_interval),
            "ScoreThreshold": None if score_threshold is None else float(score_threshold),
        }
    }


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
) -> Deployed:
    """Notebook 03 in one call: devices, package, registry, components, deployment.

    Writes ``deployment.json`` like notebook 03 does. A device that fails the
    deployment raises DeviceDeploymentError after the record is written.
    """
    from edgekit.components import build_components, publish_components
    from edgekit.deploy import DeviceDeploymentError, deploy
    from edgekit.registry import RegistryError, download_package, latest_approved

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


# --------------------------------------------------------------------------------------
# Images and figures (notebook 04)


def _has_images(folder: Path) -> bool:
    return folder.is_dir() and any(p.suffix.lower() in _IMAGE_SUFFIXES for p in folder.iterdir())


def device_image_dir(settings: Settings, things: Iterable[str] = ()) -> Path | None:
    """On the local backend, the sample images the inference component unpacked on a device.

    ``<device root>/packages/artifacts-unarchived/<inference component>/<version>/
    sample-images``, for the version each device runs; None if no device has them (and
    always on AWS, whose devices are not on this machine).
    """
    from edgekit.provision import device_backend

    unpacked = device_backend(settings).unarchived_dirs(settings.inference_component, things)
    for folder in (d / SAMPLE_IMAGES_FOLDER for d in unpacked):
        if _has_images(folder):
            return folder
    return None


def regenerate_sample_images(out_dir: PathLike) -> Path:
    """The inference component's sample images, made again into ``out_dir/sample-images``.

    They come from edgekit's deterministic synthetic generator (same seed, same
    count as the component's ``sample-images.zip``), so names and pixels match what a
    device inspects when its ``ImageDirectory`` is empty, on either backend.
    """
    from edgekit.components.artifacts import sample_images_zip

    folder = Path(out_dir).expanduser() / SAMPLE_IMAGES_FOLDER
    if _has_images(folder):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    archive = sample_images_zip(folder.parent / f".{SAMPLE_IMAGES_FOLDER}-build")
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                name = Path(member).name
                if name and name == member:  # flat archive: nothing may leave the folder
                    (folder / name).write_bytes(zf.read(member))
    finally:
        archive.unlink(missing_ok=True)
        archive.parent.rmdir()
    return folder


def find_image_dir(
    settings: Settings,
    output_dir: PathLike,
    *,
    image_dir: PathLike | None = None,
    things: Iterable[str] = (),
) -> tuple[Path, str]:
    """Where the images behind the results are, and how that was decided.

    ``image_dir`` wins (ConfigurationError if it is not a folder); locally the folder a
    device unpacked; otherwise the sample images regenerated under ``output_dir``.
    """
    if image_dir is not None:
        folder = Path(image_dir).expanduser()
        if not folder.is_dir():
            raise ConfigurationError(
                f"image_dir={str(image_dir)!r} is not a folder; pass the folder of the images "
                "the devices inspect, or None for the sample images"
            )
        return folder, "image_dir parameter"
    found = device_image_dir(settings, things)
    if found is not None:
        return found, "the inference component's artifacts on the device"
    return (
        regenerate_sample_images(output_dir),
        "regenerated from edgekit's synthetic generator (same images the component ships)",
    )


class NoResultsError(EdgekitError):
    """No result message arrived from devices that should be publishing."""


def check_results(
    settings: Settings, results: ResultsTable, *, things: Sequence[str] = (), timeout: float
) -> None:
    """Raise NoResultsError, saying where to look, when a collection got nothing at all."""
    if len(results):
        return
    thing = things[0] if things else "THING"
    invalid = (
        f"; {len(results.invalid)} message(s) were invalid, first: {results.invalid[0].reason}"
        if results.invalid
        else ""
    )
    raise NoResultsError(
        f"no result on topic {settings.results_topic} within {timeout:g} s from "
        f"{', '.join(things) or 'the devices'}{invalid}. Is the inference app running and "
        f"publishing? Its log: {log_location(settings, thing, settings.inference_component)}"
    )


def summary_rows(results: ResultsTable) -> list[dict[str, Any]]:
    """``results.summary()`` rows for format_table, by device name: the defect rate in
    percent, the model versions as one string."""
    rows = sorted(results.summary().rows, key=lambda r: _natural_key(str(r["thing_name"])))
    return [
        {
            **row,
            "defect_rate": f"{100 * row['defect_rate']:.0f} %",
            "model_versions": ", ".join(row["model_versions"]),
        }
        for row in rows
    ]


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def pick_examples(results: Sequence[Mapping[str, Any]], count: int = 8) -> list[Mapping[str, Any]]:
    """Up to ``count`` recent results of distinct images, defective and clean ones alternating.

    A grid of only clean tags (or only scratched ones) would hide half the story.
    """
    newest: dict[str, Mapping[str, Any]] = {}
    for result in reversed(results):
        newest.setdefault(str(result.get("image_name")), result)
    defects = [r for r in newest.values() if r.get("defect")]
    clean = [r for r in newest.values() if not r.get("defect")]
    picked: list[Mapping[str, Any]] = []
    while len(picked) < count and (defects or clean):
        for pool in (defects, clean):
            if pool and len(picked) < count:
                picked.append(pool.pop(0))
    return sorted(picked, key=lambda r: str(r.get("image_name")))


def time_bin_seconds(results: Sequence[Mapping[str, Any]], bins: int = 12) -> float:
    """A bin width giving about ``bins`` points over the collection's span (at least 1 s)."""
    from edgekit.schemas import parse_timestamp

    stamps = []
    for r in results:
        try:
            stamps.append(parse_timestamp(str(r.get("timestamp"))))
        except ValueError:
            continue
    if len(stamps) < 2:
        return 60.0
    span = (max(stamps) - min(stamps)).total_seconds()
    return float(max(1, round(span / max(bins, 1))))


def save_figure(figure: Figure, figures_dir: PathLike | None, name: str) -> Path | None:
    """Save ``figure`` as ``figures_dir/name.png`` when ``figures_dir`` is set; the path."""
    if figures_dir is None:
        return None
    folder = Path(figures_dir).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    figure.savefig(path, facecolor="white")
    return path


__all__ = [
    "DEPLOYMENT",
    "MODEL_PACKAGE",
    "PROVISIONED",
    "RESULTS",
    "VERSION_COLUMNS",
    "Deployed",
    "Devices",
    "Failure",
    "NoResultsError",
    "PackageRef",
    "Registration",
    "check_results",
    "component_roles",
    "deploy_latest_approved",
    "deployment_columns",
    "deployment_record",
    "deployment_rows",
    "device_image_dir",
    "ensure_devices",
    "ensure_registered",
    "execution_status",
    "explain_failure",
    "failing_component",
    "file_sha256",
    "find_deployment",
    "find_image_dir",
    "find_model_package",
    "find_registered",
    "inference_configuration",
    "installed_components",
    "installed_rows",
    "log_location",
    "log_tail",
    "pick_examples",
    "read_handover",
    "regenerate_sample_images",
    "save_figure",
    "settings_home",
    "stack_name_for",
    "summary_rows",
    "time_bin_seconds",
    "version_rows",
    "write_handover",
]
