"""Local deployments: ``greengrass-cli deployment create`` for the local device.

The semantics are the Greengrass CLI's (``deployment create`` and the IPC
``CreateLocalDeployment`` it calls), without the control plane:

* recipes come from every recipe file (``.json``, ``.yaml``, ``.yml``) of the recipe
  folder, artifacts from ``<artifact folder>/<component name>/<component version>/``;
  both are copied into the device's component store, so the device never downloads
  them (a component that is not in the folders is fetched from the control plane as
  in any deployment);
* a local deployment targets a group (``LOCAL_DEPLOYMENT`` unless ``--group-id``):
  its root components are the previous local deployment's of that group, plus
  ``--merge NAME=VERSION``, minus ``--remove NAME``; the device runs them together
  with its cloud deployments (the thing's own cloud deployment wins a conflict, then
  thing groups, then local groups);
* ``--update-config`` is ``{"NAME": {"MERGE": {...}, "RESET": ["/pointer"]}}``
  (``MERGE`` and ``RESET`` in capitals) for this deployment only;
* failure handling is ``ROLLBACK`` (default) or ``DO_NOTHING``, as for cloud
  deployments;
* the outcome is reported to the control plane, so it is in the core device's
  ``ListEffectiveDeployments`` (target: the core device's thing), and written under the
  device root for the CLI that waits for it.

The CLI and the device talk through files under ``<device root>/local-deployments/``:
``requests/<id>.json`` (written by the CLI) and ``results/<id>.json`` (written by the
device). `LocalDeploymentsMixin` is the device's side, mixed into the deployments part
of the runtime.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit.errors import ConfigurationError, EdgekitError
from edgekit.files import log_tail, write_json_atomic
from edgekit.local.device.artifacts import stage_local_artifacts
from edgekit.local.device.control import ControlPlaneUnavailable
from edgekit.local.device.failures import DeploymentFailure
from edgekit.local.device.paths import DeviceLayout, path_segment
from edgekit.local.device.recipe import ResolvedRecipe
from edgekit.recipes import parse_recipe

__all__ = [
    "DEFAULT_GROUP",
    "FAILURE_POLICIES",
    "LocalDeploymentsMixin",
    "format_result",
    "local_versions",
    "parse_merge",
    "parse_remove",
    "parse_update_config",
    "submit",
    "wait_result",
]

DEFAULT_GROUP = "LOCAL_DEPLOYMENT"
FAILURE_POLICIES = ("ROLLBACK", "DO_NOTHING")
FINAL = ("SUCCEEDED", "FAILED")
RECIPE_SUFFIXES = (".json", ".yaml", ".yml")
UPDATE_KEYS = ("MERGE", "RESET")


def _folder(root: Path | str) -> Path:
    return Path(root) / "local-deployments"


def _request_file(root: Path | str, deployment_id: str) -> Path:
    return _folder(root) / "requests" / f"{deployment_id}.json"


def _result_file(root: Path | str, deployment_id: str) -> Path:
    return _folder(root) / "results" / f"{deployment_id}.json"


def _registry_file(root: Path | str) -> Path:
    return _folder(root) / "components.json"


# --- arguments (the CLI side) ----------------------------------------------------------------


def parse_merge(values: list[str] | None) -> dict[str, str]:
    """``["NAME=VERSION", ...]`` -> ``{NAME: VERSION}``."""
    merge: dict[str, str] = {}
    for value in values or []:
        name, sep, version = value.partition("=")
        if not sep or not name.strip() or not version.strip():
            raise ConfigurationError(
                f"--merge {value!r} is not NAME=VERSION (e.g. --merge com.example.Hello=1.0.0)"
            )
        merge[name.strip()] = version.strip()
    return merge


def parse_remove(values: list[str] | None) -> list[str]:
    """``--remove A,B --remove C`` -> ``[A, B, C]``."""
    return [n.strip() for v in values or [] for n in v.split(",") if n.strip()]


def parse_update_config(text: str | None) -> dict[str, dict[str, Any]]:
    """The ``--update-config`` JSON (a string or the path of a JSON file), checked."""
    if not text:
        return {}
    source = "--update-config"
    candidate = Path(text).expanduser()
    if not text.lstrip().startswith("{") and candidate.is_file():
        source = f"--update-config file {candidate}"
        text = candidate.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"{source} is not JSON ({exc.msg} at column {exc.colno}); write "
            '\'{"NAME": {"MERGE": {"key": "value"}, "RESET": ["/key"]}}\''
        ) from None
    if not isinstance(data, dict):
        raise ConfigurationError(f'{source} must be a JSON object {{"NAME": {{"MERGE": ...}}}}')
    for name, update in data.items():
        if not isinstance(update, dict) or not set(update) <= set(UPDATE_KEYS):
            raise ConfigurationError(
                f"{source}: {name} must be an object with MERGE (an object) and/or RESET (a "
                f"list of JSON pointers), in capitals; got {json.dumps(update)[:200]}"
            )
        if not isinstance(update.get("MERGE", {}), dict):
            raise ConfigurationError(f"{source}: {name}.MERGE must be an object")
        reset = update.get("RESET", [])
        if not isinstance(reset, list) or not all(isinstance(p, str) for p in reset):
            raise ConfigurationError(f"{source}: {name}.RESET must be a list of JSON pointers")
    return data


# --- requests and results (files under the device root) ------------------------------------


def submit(
    root: Path | str,
    *,
    recipe_dir: str | None = None,
    artifact_dir: str | None = None,
    merge: dict[str, str] | None = None,
    remove: list[str] | None = None,
    update_config: dict[str, dict[str, Any]] | None = None,
    group: str = DEFAULT_GROUP,
    failure_policy: str = "ROLLBACK",
) -> str:
    """Hand a local deployment to the device whose root is ``root``; its deployment id."""
    root = Path(root)
    if not (root / "config").is_dir():
        raise ConfigurationError(
            f"{root} is not a local device root; add the device first "
            "(`edgekit local device add THING`)"
        )
    for what, folder in (("--recipe-dir", recipe_dir), ("--artifact-dir", artifact_dir)):
        if folder is not None and not Path(folder).is_dir():
            raise ConfigurationError(f"{what} {folder} is not a folder")
    policy = failure_policy.upper()
    if policy not in FAILURE_POLICIES:
        raise ConfigurationError(
            f"--failure-handling-policy {failure_policy!r} is not one of "
            f"{', '.join(FAILURE_POLICIES)}"
        )
    path_segment(group, "--group-id")
    for name in [*(merge or {}), *(remove or [])]:
        path_segment(name, "component name")
    deployment_id = str(uuid.uuid4())
    request = {
        "deploymentId": deployment_id,
        "groupName": group,
        "recipeDir": None if recipe_dir is None else str(Path(recipe_dir).absolute()),
        "artifactDir": None if artifact_dir is None else str(Path(artifact_dir).absolute()),
        "merge": dict(merge or {}),
        "remove": list(remove or []),
        "updateConfig": dict(update_config or {}),
        "failureHandlingPolicy": policy,
        "createdAt": time.time(),
    }
    write_json_atomic(_request_file(root, deployment_id), request)
    return deployment_id


def read_result(root: Path | str, deployment_id: str) -> dict[str, Any] | None:
    try:
        result = json.loads(_result_file(root, deployment_id).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return result if isinstance(result, dict) else None


def wait_result(
    root: Path | str,
    deployment_id: str,
    *,
    timeout: float = 600.0,
    pickup_timeout: float = 60.0,
    poll: float = 0.1,
) -> dict[str, Any]:
    """The final result of a local deployment; ConfigurationError if the device does not
    pick it up within ``pickup_timeout`` s or does not finish within ``timeout`` s."""
    start = time.monotonic()
    while True:
        result = read_result(root, deployment_id)
        if result is not None and result.get("executionStatus") in FINAL:
            return result
        waited = time.monotonic() - start
        if result is None and waited > pickup_timeout:
            raise ConfigurationError(
                f"the device at {root} did not pick up local deployment {deployment_id} within "
                f"{pickup_timeout:g} s; is it running (`edgekit local device list`), or busy "
                "with a long deployment? The request stays queued and runs when the device "
                "gets to it"
            )
        if waited > timeout:
            raise ConfigurationError(
                f"local deployment {deployment_id} is not finished after {timeout:g} s "
                f"(status {result.get('executionStatus') if result else 'QUEUED'}); see "
                "`edgekit local device logs THING`"
            )
        time.sleep(poll)


def format_result(result: dict[str, Any]) -> str:
    """What ``edgekit local device deploy`` prints for a final result."""
    status = result.get("executionStatus", "?")
    lines = [f"local deployment {result.get('deploymentId')}: {status}"]
    if status != "SUCCEEDED":
        if result.get("detailedDeploymentStatus"):
            lines.append(f"  {result['detailedDeploymentStatus']}")
        if result.get("errorStack"):
            lines.append(f"  errors: {', '.join(result['errorStack'])}")
        if result.get("reason"):
            lines.append(f"  {result['reason']}")
    return "\n".join(lines) + "\n"


def local_versions(root: Path | str, name: str) -> list[str]:
    """Versions of ``name`` a local deployment put into the component store."""
    try:
        registry = json.loads(_registry_file(root).read_text())
    except (FileNotFoundError, ValueError):
        return []
    versions = registry.get(name) if isinstance(registry, dict) else None
    return [str(v) for v in versions] if isinstance(versions, list) else []


def _register(root: Path, staged: list[tuple[str, str]]) -> None:
    try:
        registry = json.loads(_registry_file(root).read_text())
    except (FileNotFoundError, ValueError):
        registry = {}
    for name, version in staged:
        versions = registry.setdefault(name, [])
        if version not in versions:
            versions.append(version)
    write_json_atomic(_registry_file(root), registry)


# --- the device side -----------------------------------------------------------------------


def _pending(root: Path) -> list[dict[str, Any]]:
    folder = _folder(root) / "requests"
    requests: list[dict[str, Any]] = []
    for path in folder.glob("*.json") if folder.is_dir() else []:
        try:
            request = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being written (never: writes are atomic) or damaged: skip it
        if isinstance(request, dict) and request.get("deploymentId") == path.stem:
            requests.append(request)
    requests.sort(key=lambda r: float(r.get("createdAt") or 0))
    return requests


def _load_recipes(folder: Path) -> dict[tuple[str, str], dict[str, Any]]:
    recipes: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in RECIPE_SUFFIXES:
            continue
        try:
            recipe = parse_recipe(path.read_bytes(), source=str(path))
        except EdgekitError as exc:
            raise DeploymentFailure(
                f"recipe {path} is not valid: {exc}",
                codes=["RECIPE_PARSE_ERROR"],
                types=["COMPONENT_RECIPE_ERROR"],
            ) from exc
        key = (str(recipe["ComponentName"]), str(recipe["ComponentVersion"]))
        recipes[key] = recipe
    return recipes


class LocalDeploymentsMixin:
    """Local deployments for `DeploymentsMixin` (which it is mixed into)."""

    thing_name: str
    layout: DeviceLayout
    planner: Any  # planning.Planner (not imported: planning imports this module)
    state: Any  # store.DeviceState
    log: logging.Logger
    _apply_lock: threading.Lock
    _stopping: threading.Event
    _apply: Callable[[dict[str, Any]], None]
    _finish: Callable[..., None]

    def _handle_local(self) -> None:
        """Apply the local deployments the CLI queued, oldest first."""
        requests = _pending(self.layout.root)
        if not requests:
            return
        with self._apply_lock:
            for request in requests:
                if self._stopping.is_set():
                    return
                self._apply_local(request)

    def _apply_local(self, request: dict[str, Any]) -> None:
        deployment_id = str(request["deploymentId"])
        group = str(request.get("groupName") or DEFAULT_GROUP)
        write_json_atomic(
            _result_file(self.layout.root, deployment_id),
            {"deploymentId": deployment_id, "groupName": group, "executionStatus": "IN_PROGRESS"},
        )
        try:
            doc = self._local_document(request, group)
        except (DeploymentFailure, ControlPlaneUnavailable, EdgekitError, OSError) as exc:
            codes = exc.error_stack if isinstance(exc, DeploymentFailure) else []
            self._finish(
                deployment_id,
                group,
                "FAILED",
                str(exc),
                codes or ["DEPLOYMENT_FAILURE", "COMPONENT_PACKAGE_LOADING_ERROR"],
                exc.types if isinstance(exc, DeploymentFailure) else [],
                "FAILED_NO_STATE_CHANGE",
            )
            return
        try:
            self._apply(doc)
        except ControlPlaneUnavailable as exc:  # a component not in the folders, cloud away
            self._finish(
                deployment_id,
                group,
                "FAILED",
                f"the deployment needs the control plane (a component that is not in the "
                f"recipe folder) and it does not answer: {exc}",
                ["DEPLOYMENT_FAILURE", "CLOUD_SERVICE_ERROR"],
                ["CLOUD_SERVICE_ERROR"],
                "FAILED_NO_STATE_CHANGE",
            )

    def _local_document(self, request: dict[str, Any], group: str) -> dict[str, Any]:
        """Stage recipes and artifacts; the deployment document of the local group."""
        staged: list[tuple[str, str]] = []
        if request.get("recipeDir"):
            recipes = _load_recipes(Path(request["recipeDir"]))
            for (name, version), recipe in recipes.items():
                path_segment(name, "recipe ComponentName")
                path_segment(version, f"{name} ComponentVersion")
                write_json_atomic(self.layout.recipe_file(name, version), recipe)
                self.planner.forget(name, version)
                staged.append((name, version))
            _register(self.layout.root, staged)
        if request.get("artifactDir"):
            for name, version in staged:
                try:
                    resolved: ResolvedRecipe = self.planner.recipe(name, version)
                except EdgekitError as exc:  # e.g. no manifest for this platform
                    self.log.info(
                        "local deployment: artifacts of %s %s skipped: %s", name, version, exc
                    )
                    continue
                stage_local_artifacts(
                    resolved,
                    Path(request["artifactDir"]) / name / version,
                    self.layout.artifacts(name, version),
                )
        previous = self.state.targets.get(group) or {}
        components = {
            n: {"componentVersion": c.get("componentVersion")}
            for n, c in (previous.get("components") or {}).items()
        }
        for name in request.get("remove") or []:
            components.pop(name, None)
        for name, version in (request.get("merge") or {}).items():
            components[name] = {"componentVersion": version}
        for name, update in (request.get("updateConfig") or {}).items():
            if name not in components:
                raise DeploymentFailure(
                    f"--update-config names {name}, which is not a root component of the "
                    f"local deployment group {group}; add --merge {name}=VERSION",
                    codes=["COMPONENT_METADATA_NOT_VALID_IN_DEPLOYMENT"],
                    types=["REQUEST_ERROR"],
                )
            components[name]["configurationUpdate"] = {
                "merge": json.dumps(update.get("MERGE") or {}),
                "reset": list(update.get("RESET") or []),
            }
        return {
            "deploymentId": request["deploymentId"],
            "deploymentName": group,
            "targetArn": group,
            "components": components,
            "deploymentPolicies": {
                "failureHandlingPolicy": request.get("failureHandlingPolicy") or "ROLLBACK",
                # As the nucleus converts a local request (DeploymentDocumentConverter):
                # components are not asked whether they may be updated.
                "componentUpdatePolicy": {
                    "action": "SKIP_NOTIFY_COMPONENTS",
                    "timeoutInSeconds": 0,
                },
            },
            "creationTimestamp": request.get("createdAt"),
        }

    def _local_meta(self, deployment_id: str) -> dict[str, Any] | None:
        """What the control plane needs to list a local deployment (None for cloud ones)."""
        try:
            request = json.loads(_request_file(self.layout.root, deployment_id).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return {
            "deploymentName": request.get("groupName") or DEFAULT_GROUP,
            "creationTimestamp": request.get("createdAt"),
        }

    def _local_finished(self, deployment_id: str, body: dict[str, Any]) -> None:
        """Write a local deployment's outcome for the CLI and retire its request."""
        request_file = _request_file(self.layout.root, deployment_id)
        if not request_file.exists():
            return
        result = {"deploymentId": deployment_id, **body, "finishedAt": time.time()}
        if body.get("executionStatus") != "SUCCEEDED":
            result["runtimeLogTail"] = log_tail(self.layout.runtime_log)
        write_json_atomic(_result_file(self.layout.root, deployment_id), result)
        request_file.unlink(missing_ok=True)
