"""The Greengrass Development Kit (GDK) CLI against edgekit's local endpoints.

GDK is installed from ``../shared/tools/aws-greengrass-gdk-cli.tar.gz`` (it is not on
the package index) into a venv made for this session; the module is skipped when the
archive is absent. GDK runs as a user would run it: ``eval "$(edgekit local env)"``,
then ``gdk component build`` and ``gdk component publish`` in a project folder.

- ``com.example.PythonHelloWorld`` (tests/gdk/components/): a component written from
  GDK's HelloWorld template (zip build system, ``NEXT_PATCH``), built and published with
  GDK, deployed with plain boto3 to a local device, whose log shows its output.
- edgekit's own model component (component/com.qualityinspection.model, custom build
  ``edgekit components build --gdk``) published with GDK on top of versions from
  ``edgekit components publish``; ``edgekit deploy --wait`` deploys GDK's version and
  the device proves it inspects with that package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from edgekit.compile.testing import build_tiny_model
from edgekit.components import build_components, publish_components
from edgekit.components.build import signing_keys
from edgekit.files import sha256_file
from edgekit.local import endpoints
from edgekit.local.device import add_device, device_logs
from edgekit.package import build_package
from edgekit.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
GDK_ARCHIVE = REPO.parent / "shared" / "tools" / "aws-greengrass-gdk-cli.tar.gz"
HELLO = Path(__file__).parent / "components" / "com.example.PythonHelloWorld"
# GDK's runtime requirements (its requirements.txt), by import name.
GDK_REQUIREMENTS = {
    "boto3": "boto3",
    "jsonschema": "jsonschema",
    "yaml": "PyYAML",
    "requests": "requests",
    "packaging": "packaging",
    "semver": "semver",
    "aenum": "aenum",
}
# GDK asks GitHub for a newer GDK on every command (no off switch, failure ignored): a
# proxy on a closed loopback port makes that fail at once, NO_PROXY keeps the endpoints.
OFFLINE = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
GROUP = "gdk-group"
THING = "gdk-core"
TIMEOUT = 120

if not GDK_ARCHIVE.is_file():
    pytest.skip(
        f"{GDK_ARCHIVE} is absent: the GDK CLI source comes from ../shared/tools next to "
        "the checkout (it is not on the package index)",
        allow_module_level=True,
    )


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, **kwargs)


def _missing(python: Path) -> list[str]:
    """GDK's requirements ``python`` cannot import (one interpreter start)."""
    probe = (
        "import importlib.util, sys; "
        "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))"
    )
    found = _run([str(python), "-c", probe, *GDK_REQUIREMENTS])
    assert found.returncode == 0, found.stderr
    return [GDK_REQUIREMENTS[m] for m in found.stdout.split()]


@pytest.fixture(scope="session")
def gdk_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with GDK from the archive on top of this interpreter's packages (a .pth
    file), so only what the test venv lacks (semver, aenum) comes from the index."""
    venv = tmp_path_factory.mktemp("gdk-venv")
    made = _run([sys.executable, "-m", "venv", "--without-pip", "--clear", str(venv)])
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    parents = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (Path(purelib.stdout.strip()) / "_edgekit_parent.pth").write_text("\n".join(parents) + "\n")
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    installed = _run([*pip, "--no-deps", "--no-build-isolation", str(GDK_ARCHIVE)])
    assert installed.returncode == 0, installed.stderr
    missing = _missing(python)
    if missing:
        fetched = _run([*pip, *missing])
        if fetched.returncode != 0:
            pytest.skip(
                f"GDK needs {', '.join(missing)}; pip could not install them: "
                + fetched.stderr[-500:]
            )
    gdk = venv / "bin" / "gdk"
    assert gdk.is_file(), f"{gdk}: pip installed no gdk command"
    return gdk


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Settings]]:
    home = tmp_path_factory.mktemp("gdk-home")
    endpoints.up(home)
    try:
        add_device(THING, GROUP, home)
        yield home, Settings(local_home=home, thing_group=GROUP)
    finally:
        endpoints.down(home)


@pytest.fixture(scope="module")
def user_env(local: tuple[Path, Settings], gdk_bin: Path) -> dict[str, str]:
    """The environment of a shell after ``eval "$(edgekit local env)"``, with gdk and
    edgekit on PATH (GDK's custom build command runs ``edgekit``)."""
    home, _ = local
    edgekit = Path(sys.executable).parent / "edgekit"
    assert edgekit.is_file(), f"{edgekit}: the edgekit command of the test venv is missing"
    printed = _run([str(edgekit), "local", "env", "--home", str(home), "--format", "json"])
    assert printed.returncode == 0, printed.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EDGEKIT_"))}
    env.update(json.loads(printed.stdout))
    env.update(OFFLINE, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    env["PATH"] = os.pathsep.join([str(gdk_bin.parent), str(edgekit.parent), env["PATH"]])
    return env


def gdk(env: dict[str, str], project: Path, *args: str) -> str:
    done = _run(["gdk", "component", *args], cwd=project, env=env)
    assert done.returncode == 0, f"gdk component {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout + done.stderr


def client(env: dict[str, str], service: str) -> Any:
    """A plain boto3 client from the variables `edgekit local env` printed."""
    endpoint = env.get(f"AWS_ENDPOINT_URL_{service.upper()}") or env["AWS_ENDPOINT_URL"]
    return boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_REGION"],
    ).client(service, endpoint_url=endpoint)


def wait_deployment(greengrass: Any, deployment_id: str) -> str:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        rows = greengrass.list_effective_deployments(coreDeviceThingName=THING)
        for row in rows["effectiveDeployments"]:
            if row["deploymentId"] == deployment_id and row["coreDeviceExecutionStatus"] in (
                "SUCCEEDED",
                "FAILED",
                "COMPLETED",
                "REJECTED",
            ):
                return str(row["coreDeviceExecutionStatus"])
        time.sleep(0.2)
    raise AssertionError(f"deployment {deployment_id} not done on {THING} in {TIMEOUT} s")


def test_gdk_config_files_follow_gdk_schema(gdk_bin: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    found = list(gdk_bin.parent.parent.glob("lib/python*/site-packages/gdk/static"))
    assert found, "GDK's static folder (config_schema.json) not found in its venv"
    schema = json.loads((found[0] / "config_schema.json").read_text())
    projects = sorted((REPO / "component").glob("*/gdk-config.json")) + [HELLO / "gdk-config.json"]
    assert len(projects) == 4
    for path in projects:
        jsonschema.validate(json.loads(path.read_text()), schema)


def test_hello_world_build_publish_and_deploy(
    user_env: dict[str, str], local: tuple[Path, Settings], tmp_path: Path
) -> None:
    home, _ = local
    name = HELLO.name
    project = tmp_path / name
    shutil.copytree(HELLO, project)
    gdk(user_env, project, "build")
    assert (
        project / "greengrass-build" / "artifacts" / name / "NEXT_PATCH" / f"{name}.zip"
    ).is_file()
    out = gdk(user_env, project, "publish")  # NEXT_PATCH of a new component: 1.0.0
    assert f"Created private version '1.0.0' of the component '{name}'" in out

    s3 = client(user_env, "s3")
    account = client(user_env, "sts").get_caller_identity()["Account"]
    bucket = f"greengrass-component-artifacts-us-east-1-{account}"  # GDK's naming rule
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert f"{name}/1.0.0/{name}.zip" in keys

    greengrass = client(user_env, "greengrassv2")
    group_arn = client(user_env, "iot").describe_thing_group(thingGroupName=GROUP)["thingGroupArn"]
    deployment = greengrass.create_deployment(
        targetArn=group_arn,
        deploymentName="gdk-hello",
        components={name: {"componentVersion": "1.0.0"}},
    )
    assert wait_deployment(greengrass, deployment["deploymentId"]) == "SUCCEEDED"
    assert "Hello, World!" in device_logs(THING, name, home)


def test_edgekit_deploy_uses_the_model_gdk_published(
    user_env: dict[str, str], local: tuple[Path, Settings], tmp_path: Path
) -> None:
    home, settings = local
    # The existing flow first: 1.0.0 of all three components.
    published = publish_components(settings, build_components(settings, out_dir=tmp_path / "b"))
    model = settings.model_component
    assert published[model] == "1.0.0"

    # A model package of our own, signed with the key the agent was published with,
    # handed to the GDK build through the environment.
    private, _ = signing_keys(None, settings)
    package = build_package(
        build_tiny_model(tmp_path / "tiny.onnx"),
        name=settings.model_name,
        version="2.3.0",
        key=private,
        out=tmp_path / "tiny-2.3.0.tar.gz",
    ).path
    shutil.copytree(REPO / "component", tmp_path / "component")
    project = tmp_path / "component" / model
    env = {**user_env, "EDGEKIT_MODEL_PACKAGE": str(package)}
    out = gdk(env, project, "build")
    assert "built com.qualityinspection.model (local backend)" in out
    out = gdk(env, project, "publish")
    assert f"Created private version '1.0.1' of the component '{model}'" in out

    edgekit = Path(sys.executable).parent / "edgekit"
    done = _run(
        [str(edgekit), "deploy", "--thing-group", GROUP, "--wait", "--timeout", str(TIMEOUT)],
        env=user_env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PROVEN" in done.stdout and "1.0.1 FINISHED" in done.stdout, done.stdout
    assert f"{settings.model_name} 2.3.0, package sha256 {sha256_file(package)}" in done.stdout
