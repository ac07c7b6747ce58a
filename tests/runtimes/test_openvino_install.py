"""The agent installs OpenVINO only when its model package runs on it.

The build writes the package's manifest runtime into the agent's ``ModelRuntimes``
configuration; the Install step passes it to ``install_env.py --runtimes``, which
adds the module each runtime needs to the ones that must import.
"""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path
from types import ModuleType

import onnx
import pytest

from edgekit.compile.metadata import set_compile_info
from edgekit.compile.testing import build_tiny_model
from edgekit.components import build_components, generated_configuration
from edgekit.components.build import signing_keys
from edgekit.components.templates import shared_file
from edgekit.package import build_package
from edgekit.runtimes import BUILTIN_RUNTIMES
from edgekit.settings import Settings

AGENT_REQUIRE = ["numpy", "onnxruntime", "grpc"]
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


@pytest.fixture(scope="module")
def install_env() -> ModuleType:
    spec = importlib.util.spec_from_file_location("install_env", shared_file("install_env.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_openvino_is_required_only_for_an_openvino_runtime(install_env: ModuleType) -> None:
    requirements = install_env.requirements
    assert requirements(AGENT_REQUIRE, []) == AGENT_REQUIRE
    assert requirements(AGENT_REQUIRE, ["onnxruntime-int8"]) == AGENT_REQUIRE
    assert requirements(AGENT_REQUIRE, [""]) == AGENT_REQUIRE  # an empty configuration value
    assert requirements(AGENT_REQUIRE, ["openvino-int8"]) == [*AGENT_REQUIRE, "openvino"]
    both = requirements(AGENT_REQUIRE, ["onnxruntime openvino-bf16,openvino"])
    assert both == [*AGENT_REQUIRE, "openvino"]
    assert install_env.DISTRIBUTIONS["openvino"].startswith("openvino")


def test_the_installer_knows_every_builtin_runtime_and_refuses_others(
    install_env: ModuleType,
) -> None:
    assert set(install_env.RUNTIME_MODULES) == set(BUILTIN_RUNTIMES)
    with pytest.raises(SystemExit, match="'dlr' names no runtime.*ModelRuntimes"):
        install_env.requirements([], ["dlr"])
    with pytest.raises(SystemExit, match="is not a runtime name"):
        install_env.requirements([], ["openvino;rm -rf /"])


def test_openvino_is_an_extra_that_the_test_environment_installs() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    extras = project["optional-dependencies"]
    assert [r.split(">")[0] for r in extras["openvino"]] == ["openvino"]
    assert f"{project['name']}[openvino]" in extras["dev"]
    assert "openvino" not in " ".join(project["dependencies"])  # never a core dependency


def _agent(settings: Settings, out: Path, package: Path | None) -> dict:
    (agent,) = build_components(
        settings, out_dir=out, model_package=package, names=[settings.agent_component]
    )
    return agent.preview()


def test_the_agent_recipe_carries_the_runtime_of_the_package(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    settings = Settings(local_home=tmp_path_factory.mktemp("home"))
    private, _ = signing_keys(None, settings)
    root = tmp_path_factory.mktemp("model")
    model = build_tiny_model(root / "tiny.onnx")
    proto = onnx.load(str(model))
    set_compile_info(proto, {"target": "openvino-int8", "runtime": "openvino-int8"})
    onnx.save(proto, str(model))
    package = build_package(
        model, name="det", version="1.0.0", key=private, out=root / "det.tar.gz"
    ).path

    recipe = _agent(settings, tmp_path_factory.mktemp("out"), package)
    defaults = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    assert defaults["ModelRuntimes"] == "openvino-int8"
    install = recipe["Manifests"][0]["Lifecycle"]["Install"]["Script"]
    assert "--runtimes '{configuration:/ModelRuntimes}'" in install
    # Every deployment resets it, so a device follows the deployed package's runtime.
    assert "/ModelRuntimes" in generated_configuration(settings)[settings.agent_component]

    shipped = _agent(settings, tmp_path_factory.mktemp("shipped"), None)
    assert shipped["ComponentConfiguration"]["DefaultConfiguration"]["ModelRuntimes"] == (
        "onnxruntime"
    )
