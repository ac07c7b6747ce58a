"""Building the components: recipes valid for Greengrass, artifacts with the right contents."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from edgekit.compile.testing import build_tiny_model
from edgekit.components import build_components
from edgekit.components.build import signing_keys
from edgekit.components.publish import next_version
from edgekit.components.templates import PLACEHOLDER, ROLES, Template
from edgekit.errors import PackageError
from edgekit.files import sha256_file
from edgekit.package import build_package, generate_keypair, verify_package
from edgekit.package.keys import fingerprint
from edgekit.recipes import normalize_recipe, validate_recipe
from edgekit.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(local_home=tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def model_package(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    private, _public = signing_keys(None, settings)
    root = tmp_path_factory.mktemp("model")
    model = build_tiny_model(root / "tiny.onnx")
    return build_package(
        model, name="tag-scratch-detector", version="3.1.4", key=private, out=root / "m.tar.gz"
    ).path


@pytest.fixture(scope="module")
def built(settings: Settings, model_package: Path, tmp_path_factory: pytest.TempPathFactory):
    return {
        b.role: b
        for b in build_components(
            settings, out_dir=tmp_path_factory.mktemp("out"), model_package=model_package
        )
    }


def test_templates_are_files_named_after_the_components() -> None:
    for role, folder in (
        ("model", "com.qualityinspection.model"),
        ("agent", "com.qualityinspection.agent"),
        ("inference", "com.qualityinspection"),
    ):
        template = Template.load(role)
        # Installed as package data (edgekit/_resources/component links to component/).
        assert template.path.resolve() == (REPO / "component" / folder / "recipe.yaml").resolve()
        assert "COMPONENT_VERSION" in template.placeholders()


def test_built_recipes_validate_and_are_filled(built: dict) -> None:
    for role in ROLES:
        recipe = built[role].preview()
        validate_recipe(recipe)
        validate_recipe(normalize_recipe(json.loads(json.dumps(recipe))))
        assert not PLACEHOLDER.search(json.dumps(recipe)), f"{role}: placeholder left"


def test_model_component(built: dict, settings: Settings, model_package: Path) -> None:
    comp = built["model"]
    recipe = comp.preview()
    assert recipe["ComponentName"] == settings.model_component
    defaults = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    assert defaults == {
        "ModelName": "tag-scratch-detector",
        "ModelVersion": "3.1.4",
        "PackagePath": "package",
    }
    lifecycle = recipe["Manifests"][0]["Lifecycle"]
    assert set(lifecycle) == {"Install"}  # nothing runs: the component ends FINISHED
    (package,) = comp.artifacts
    assert package.read_bytes() == model_package.read_bytes()
    assert recipe["Manifests"][0]["Artifacts"][0]["URI"].endswith("/" + package.name)


def test_agent_component_carries_the_public_key(
    built: dict, settings: Settings, model_package: Path, tmp_path: Path
) -> None:
    recipe = built["agent"].preview()
    defaults = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    assert defaults["SocketPath"] == ""  # derived per device root: edgekit/agent/paths.py
    key = tmp_path / "key.pem"
    key.write_text(defaults["PublicKey"] + "\n")
    assert verify_package(model_package, key).version == "3.1.4"
    assert "ComponentDependencies" not in recipe
    run = recipe["Manifests"][0]["Lifecycle"]["Run"]["Script"]
    assert "-m edgekit agent serve" in run
    assert "{iot:thingName}" not in run  # the sed pattern must not be a recipe variable


def test_inference_component(built: dict, settings: Settings) -> None:
    recipe = built["inference"].preview()
    deps = recipe["ComponentDependencies"]
    assert deps[settings.model_component]["DependencyType"] == "HARD"
    assert deps[settings.agent_component]["DependencyType"] == "HARD"
    defaults = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    for key in (
        "ImageDirectory",
        "InferenceInterval",
        "PublishResultsOnTopic",
        "HealthTopic",
        "ScoreThreshold",
        "CaptureBand",
        "ModelName",
        "AgentSocket",
    ):
        assert key in defaults
    assert defaults["PublishResultsOnTopic"] == settings.results_topic
    policy = defaults["accessControl"]["aws.greengrass.ipc.mqttproxy"]
    (entry,) = policy.values()
    assert entry["operations"] == ["aws.greengrass#PublishToIoTCore"]
    shadow_update = "$aws/things/+/shadow/name/edgekit-health/update"  # the health shadow
    assert entry["resources"] == [settings.results_topic, settings.health_topic, shadow_update]
    run = recipe["Manifests"][0]["Lifecycle"]["Run"]
    assert "-m edgekit.edge.app" in run["Script"]
    assert run["Setenv"]["EDGEKIT_MODEL_PACKAGE"] == (
        f"{{{settings.model_component}:work:path}}/"
        f"{{{settings.model_component}:configuration:/PackagePath}}"
    )
    images = [a for a in recipe["Manifests"][0]["Artifacts"] if a.get("Unarchive") == "ZIP"]
    assert len(images) == 1


def test_wheel_and_images(built: dict) -> None:
    files = {p.name: p for p in built["inference"].artifacts}
    wheel = next(p for n, p in files.items() if n.endswith(".whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert "edgekit/edge/app.py" in names and "edgekit/agent/protos/agent_pb2.py" in names
        assert "edgekit/schemas/result.schema.json" in names
        assert not any("__pycache__" in n or n.startswith("edgekit/model/shipped/") for n in names)
        record = zf.read("edgekit-0.1.0.dist-info/RECORD").decode()
        assert "edgekit/edge/app.py,sha256=" in record
    with zipfile.ZipFile(files["sample-images.zip"]) as zf:
        jpgs = [n for n in zf.namelist() if n.endswith(".jpg")]
        assert len(jpgs) == 12 and all("/" not in n for n in jpgs)
    assert (built["agent"].artifacts[0]).read_bytes() == wheel.read_bytes()


def test_build_is_reproducible(settings: Settings, model_package: Path, tmp_path: Path) -> None:
    one = build_components(settings, out_dir=tmp_path / "a", model_package=model_package)
    two = build_components(settings, out_dir=tmp_path / "b", model_package=model_package)
    for a, b in zip(one, two, strict=True):
        assert [p.read_bytes() for p in a.artifacts] == [p.read_bytes() for p in b.artifacts]


def test_package_signed_with_another_key_is_refused(settings: Settings, tmp_path: Path) -> None:
    other = generate_keypair(tmp_path / "other")
    model = build_tiny_model(tmp_path / "tiny.onnx")
    package = build_package(
        model, name="tag-scratch-detector", version="1.0.0", key=other.private_key,
        out=tmp_path / "x.tar.gz",
    )  # fmt: skip
    with pytest.raises(PackageError, match="--key-dir"):
        build_components(settings, out_dir=tmp_path / "out", model_package=package.path)


def test_only_named_components(settings: Settings, tmp_path: Path) -> None:
    built = build_components(settings, out_dir=tmp_path, names=[settings.agent_component])
    assert [b.name for b in built] == [settings.agent_component]


def test_next_version() -> None:
    assert next_version([]) == "1.0.0"
    assert next_version(["1.0.0", "1.0.9", "1.0.10"]) == "1.0.11"
    assert next_version(["2.0.0-rc.1"]) == "2.0.0"


def test_model_install_script_unpacks_once(built: dict, tmp_path: Path) -> None:
    """Run the model component's Install step with its variables filled in, twice."""
    comp = built["model"]
    (package,) = comp.artifacts
    script = comp.preview()["Manifests"][0]["Lifecycle"]["Install"]["Script"]
    script = (
        script.replace("{artifacts:path}", str(package.parent))
        .replace("{work:path}", str(tmp_path))
        .replace("{configuration:/PackagePath}", "package")
    )
    first = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=True)
    assert "unpacked" in first.stdout
    with tarfile.open(package) as tf:
        assert sorted(p.name for p in (tmp_path / "package").iterdir()) == sorted(tf.getnames())
    second = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=True)
    assert "already unpacked" in second.stdout


@pytest.mark.integration
def test_install_env_builds_an_offline_venv_once(built: dict, tmp_path: Path) -> None:
    files = {p.name: p for p in built["inference"].artifacts}
    wheel = next(p for n, p in files.items() if n.endswith(".whl"))
    argv = [
        sys.executable, str(files["install_env.py"]), "--venv", str(tmp_path / "venv"),
        "--wheel", str(wheel), "--require", "numpy", "PIL", "grpc",
    ]  # fmt: skip
    first = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stdout + first.stderr
    python = tmp_path / "venv" / "bin" / "python"
    check = subprocess.run(
        [str(python), "-c", "import edgekit.edge.app, numpy; print(edgekit.__file__)"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert str(tmp_path / "venv") in check.stdout  # the wheel's copy, not the source checkout
    second = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0 and "up to date" in second.stdout


def test_the_model_component_says_which_package_it_carries(
    built: dict, settings: Settings, model_package: Path, tmp_path: Path
) -> None:
    """Issue 11: `components publish` without --model-package deployed the shipped model
    while the user had built one, and nothing said so."""
    _private, public = signing_keys(None, settings)
    words = built["model"].describe()
    assert str(model_package) in words and sha256_file(model_package) in words
    assert fingerprint(public) in words and "3.1.4" in words
    assert built["agent"].describe() == ""
    (shipped,) = build_components(settings, out_dir=tmp_path, names=[settings.model_component])
    assert "the model shipped with edgekit" in shipped.describe()
