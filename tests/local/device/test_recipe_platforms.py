"""One recipe semantics on both sides: the control-plane emulator and the device runtime.

The platform table of ``tests/recipes/test_platforms.py`` (recipe reference, "Manifests"
> "Platform") runs through the emulator's CreateComponentVersion +
ResolveComponentCandidates and through the device's ``resolve_recipe``; both must give
the table's answer. Then a recipe written for Greengrass with ``os: all`` (and one with a
global lifecycle and ``Selections``) deploys and runs on a local device: before issue 10
the device refused it with "no manifest for this device's platform".
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from edgekit.errors import DeploymentError
from edgekit.local.device.recipe import resolve_recipe
from edgekit.local.greengrass.errors import ResourceNotFoundException, ValidationException
from edgekit.local.greengrass.models import GreengrassBackend

REGION = "us-east-1"
ACCOUNT = "123456789012"


def _platform_tests() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "recipes" / "test_platforms.py"
    spec = importlib.util.spec_from_file_location("recipes_platform_table", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TABLE = _platform_tests().PLATFORM_TABLE
# Rows whose Platform the service's recipe schema refuses (values must be strings that
# start with a letter or digit, '*', '//' or a valid /regex/): CreateComponentVersion
# rejects them, so a device only meets them in recipes that reach it another way.
REJECTED_BY_THE_SERVICE = {
    "list-match",
    "list-no-match",
    "list-with-wildcard",
    "list-nested-never",
    "bad-regex-matches-nothing",
    "reserved",
    "null-missing",
    "null-present",
}


def _recipe(name: str, platform: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = {"Lifecycle": {"Run": "echo chosen"}}
    if platform is not None:
        manifest["Platform"] = platform
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": "1.0.0",
        "Manifests": [manifest],
    }


def _device_answer(recipe: dict[str, Any], device: dict[str, str]) -> bool:
    try:
        resolved = resolve_recipe(recipe, device)
    except DeploymentError as exc:
        assert "no manifest for this device's platform" in str(exc)
        return False
    assert resolved.step("run") is not None and resolved.step("run").script == "echo chosen"
    return True


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> GreengrassBackend:
    return GreengrassBackend(tmp_path_factory.mktemp("gg-parity"), None, REGION, ACCOUNT)


@pytest.mark.parametrize("case", TABLE, ids=[c.id for c in TABLE])
def test_emulator_and_device_agree_on_the_platform_table(
    case: Any, backend: GreengrassBackend
) -> None:
    name = f"com.example.Parity{uuid.uuid4().hex[:8]}"
    recipe = _recipe(name, case.platform)
    device = _device_answer(recipe, case.device)
    assert device is case.matches, "device runtime"
    try:
        backend.create_component_version(inline_recipe=json.dumps(recipe).encode())
    except ValidationException as exc:
        # Platform values must be strings starting with a letter or digit, '*' or a
        # /regex/ (the service's recipe schema); the device still reads such recipes as
        # the nucleus does when they reach it another way.
        assert case.id in REJECTED_BY_THE_SERVICE, exc
        assert any(f["name"].startswith("Manifests[0].Platform") for f in exc.fields["fields"])
        return
    assert case.id not in REJECTED_BY_THE_SERVICE
    request = {"componentName": name, "componentVersion": "1.0.0", "versionRequirements": {}}
    try:
        answer = backend.resolve_component_candidates(
            platform={"attributes": case.device}, component_candidates=[request]
        )
    except ResourceNotFoundException:
        emulator = False
    else:
        emulator = True
        resolved = answer["resolvedComponentVersions"][0]
        assert resolved["componentVersion"] == "1.0.0"
    assert emulator is device, "emulator (ResolveComponentCandidates) vs device"


def test_emulator_and_device_pick_the_same_version_under_requirements(
    backend: GreengrassBackend,
) -> None:
    """Recipe reference "ComponentDependencies": the newest version meeting every
    VersionRequirement with a manifest for the platform, on both sides."""
    from edgekit.local.device.resolver import resolve

    dep = f"com.example.Dep{uuid.uuid4().hex[:8]}"
    platforms = {"1.0.0": {"os": "all"}, "1.5.0": {"os": "linux"}, "2.0.0": {"os": "linux"}}
    for version, platform in platforms.items():
        recipe = _recipe(dep, platform) | {"ComponentVersion": version}
        backend.create_component_version(inline_recipe=json.dumps(recipe).encode())
    linux = {"os": "linux", "architecture": "amd64"}
    answer = backend.resolve_component_candidates(
        platform={"attributes": linux},
        component_candidates=[
            {"componentName": dep, "versionRequirements": {"app": "^1.0.0"}},
        ],
    )
    emulator = answer["resolvedComponentVersions"][0]["componentVersion"]

    app = _recipe("app", None) | {"ComponentDependencies": {dep: {"VersionRequirement": "^1.0.0"}}}

    def recipe_for(name: str, version: str) -> Any:
        raw = app if name == "app" else backend.get_recipe(name, version)
        return resolve_recipe(raw, linux)

    recipes, _ = resolve({"app": "1.0.0"}, recipe_for, lambda n: list(platforms), {})
    assert emulator == recipes[dep].version == "1.5.0"


# --- a real deployment on a local device ----------------------------------------------------


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, moto_url: str) -> Iterator[dict[str, Any]]:
    import boto3

    from edgekit.local.greengrass.server import GreengrassServer

    server = GreengrassServer(tmp_path_factory.mktemp("gg"), moto_url, REGION).start()
    kw = {"region_name": REGION, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    try:
        yield {
            "moto_url": moto_url,
            "greengrass_url": server.url,
            "iot": boto3.client("iot", endpoint_url=moto_url, **kw),
            "gg": boto3.client("greengrassv2", endpoint_url=server.url, **kw),
        }
    finally:
        server.stop()


@pytest.mark.integration
def test_recipe_with_os_all_deploys_and_runs_on_a_local_device(
    cloud: dict[str, Any], tmp_path: Path
) -> None:
    from edgekit.local.device.runtime import DeviceRuntime

    suffix = uuid.uuid4().hex[:6]
    everywhere, selected = f"com.test.OsAll{suffix}", f"com.test.Selected{suffix}"
    recipes = [
        {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": everywhere,
            "ComponentVersion": "1.0.0",
            "Manifests": [
                {
                    "Platform": {"os": "all", "architecture": "all"},
                    "Lifecycle": {"Run": "echo os-all > {work:path}/out.txt; exec sleep 60"},
                }
            ],
        },
        {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": selected,
            "ComponentVersion": "1.0.0",
            "Lifecycle": {
                "posix": {"Run": "echo posix > {work:path}/out.txt; exec sleep 60"},
                "all": {"Run": "echo fallback > {work:path}/out.txt; exec sleep 60"},
            },
            "Manifests": [
                {"Platform": {"os": "windows"}, "Selections": ["windows"]},
                {"Platform": {"os": "/linux|darwin/"}, "Selections": ["posix"]},
            ],
        },
    ]
    for recipe in recipes:
        cloud["gg"].create_component_version(inlineRecipe=json.dumps(recipe).encode())
    thing = f"thing-os-all-{suffix}"
    with contextlib.suppress(cloud["iot"].exceptions.ResourceAlreadyExistsException):
        cloud["iot"].create_thing(thingName=thing)
    device = DeviceRuntime(
        thing,
        tmp_path / thing,
        cloud["greengrass_url"],
        cloud["moto_url"],
        None,
        REGION,
        poll=0.1,
        settle=0.3,
        group_refresh=0.5,
    ).start()
    try:
        deployment = cloud["gg"].create_deployment(
            targetArn=f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/{thing}",
            deploymentName=f"os-all-{suffix}",
            components={
                everywhere: {"componentVersion": "1.0.0"},
                selected: {"componentVersion": "1.0.0"},
            },
        )["deploymentId"]
        row: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = cloud["gg"].list_effective_deployments(coreDeviceThingName=thing)
            row = next(
                (
                    r
                    for r in rows.get("effectiveDeployments", [])
                    if r["deploymentId"] == deployment
                ),
                {},
            )
            if row.get("coreDeviceExecutionStatus") not in (None, "QUEUED", "IN_PROGRESS"):
                break
            time.sleep(0.1)
        assert row.get("coreDeviceExecutionStatus") == "SUCCEEDED", row
        assert device.states() == {everywhere: "RUNNING", selected: "RUNNING"}
        work = device.layout.root / "work"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not all(
            (work / c / "out.txt").exists() and (work / c / "out.txt").read_text()
            for c in (everywhere, selected)
        ):
            time.sleep(0.05)
        assert (work / everywhere / "out.txt").read_text().strip() == "os-all"
        assert (work / selected / "out.txt").read_text().strip() == "posix"
    finally:
        device.stop()
