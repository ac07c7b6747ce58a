"""The inference component's configuration: defaults, overrides, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.edge.config import parse_config
from edgekit.edge.health import Health
from edgekit.edge.messages import ImageCycle, utc_iso
from edgekit.errors import ConfigurationError

ENV = {
    "EDGEKIT_MODEL_PACKAGE": "/pkg",
    "EDGEKIT_MODEL_NAME": "from-model-component",
    "EDGEKIT_AGENT_SOCKET": "/tmp/edgekit-agent-{iot:thingName}.sock",
    "EDGEKIT_SAMPLE_IMAGES": "/samples",
}


def test_defaults_come_from_the_recipe_environment() -> None:
    config = parse_config({}, ENV, thing_name="dev-7")
    assert config.image_directory == Path("/samples")
    assert config.agent_socket == "/tmp/edgekit-agent-dev-7.sock"
    assert config.model_name == "from-model-component"
    assert config.score_threshold is None and config.capture_band is None
    assert config.inference_interval == 1.0
    assert config.results_topic == "qualityinspection/scratch-detection"


def test_empty_socket_path_is_derived_from_the_agent_work_folder(tmp_path: Path) -> None:
    from edgekit.agent.paths import socket_for_work

    work_a, work_b = tmp_path / "home-a" / "agent", tmp_path / "home-b" / "agent"
    work_a.mkdir(parents=True, mode=0o700)
    work_b.mkdir(parents=True, mode=0o700)
    env = {**ENV, "EDGEKIT_AGENT_SOCKET": "", "EDGEKIT_AGENT_WORK": str(work_a)}
    config = parse_config({}, env, thing_name="dev-7")
    assert config.agent_socket == socket_for_work(str(work_a))
    other = parse_config({}, {**env, "EDGEKIT_AGENT_WORK": str(work_b)}, thing_name="dev-7")
    assert other.agent_socket != config.agent_socket  # two device roots never share an agent
    assert len(config.agent_socket) < 108


def test_configuration_overrides() -> None:
    config = parse_config(
        {
            "ImageDirectory": "/camera",
            "InferenceInterval": "0.25",
            "ScoreThreshold": 0.6,
            "CaptureBand": [0.2, 0.5],
            "ModelName": "mine",
            "UseSharedMemory": "false",
        },
        ENV,
    )
    assert config.image_directory == Path("/camera")
    assert config.inference_interval == 0.25
    assert config.score_threshold == 0.6
    assert config.capture_band == (0.2, 0.5)
    assert config.model_name == "mine"
    assert config.use_shared_memory is False


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"InferenceInterval": -1}, "InferenceInterval"),
        ({"InferenceInterval": "fast"}, "InferenceInterval"),
        ({"ScoreThreshold": 1.5}, "ScoreThreshold"),
        ({"CaptureBand": [0.6, 0.2]}, "CaptureBand"),
        ({"CaptureBand": 0.3}, "CaptureBand"),
        ({"PublishResultsOnTopic": "results/#"}, "PublishResultsOnTopic"),
        ({"UseSharedMemory": "maybe"}, "UseSharedMemory"),
        ({"HealthInterval": 0}, "HealthInterval"),
        ({"HealthWindow": 0.5}, "HealthWindow"),
        ({"HealthWindow": "a minute"}, "HealthWindow"),
        ({"ShadowPackagePath": 3}, "ShadowPackagePath"),
        ({"ShadowPackagePath": "p", "ShadowModelName": "bad name"}, "ShadowModelName"),
        ({"ShadowModelName": "candidate"}, "ShadowModelName"),  # without a package
    ],
)
def test_bad_values_name_the_key(config: dict, field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        parse_config(config, ENV)


def test_health_and_shadow_defaults_and_keys() -> None:
    config = parse_config({}, ENV, thing_name="dev-7")
    assert (config.health_interval, config.health_window) == (5.0, 60.0)
    assert (config.shadow_package, config.shadow_model_name) == (None, "")
    config = parse_config(
        {
            "HealthInterval": "2",
            "HealthWindow": 120,
            "ShadowPackagePath": " com.qualityinspection.model.shadow/package ",
            "ShadowModelName": "candidate-2",
        },
        ENV,
        thing_name="dev-7",
    )
    assert (config.health_interval, config.health_window) == (2.0, 120.0)
    assert config.shadow_package == Path("com.qualityinspection.model.shadow/package")
    assert config.shadow_model_name == "candidate-2"
    other = parse_config({"ShadowPackagePath": "/shadows/{iot:thingName}"}, ENV, thing_name="d")
    assert other.shadow_package == Path("/shadows/d")


def test_the_recipe_defaults_parse() -> None:
    """Every key the recipe ships is one the app reads, with the documented defaults."""
    import yaml

    from edgekit.resources import components_dir

    recipe = yaml.safe_load(
        (components_dir() / "com.qualityinspection" / "recipe.yaml").read_text()
    )
    defaults = dict(recipe["ComponentConfiguration"]["DefaultConfiguration"])
    for key in ("PublishResultsOnTopic", "HealthTopic", "ModelName", "PythonExecutable"):
        defaults.pop(key)
    defaults.pop("accessControl")
    config = parse_config(defaults, ENV)
    assert defaults["HealthInterval"] == config.health_interval == 5.0
    assert defaults["HealthWindow"] == config.health_window == 60.0
    assert defaults["ShadowPackagePath"] == "" and config.shadow_package is None


def test_missing_package_environment_is_explained() -> None:
    with pytest.raises(ConfigurationError, match="EDGEKIT_MODEL_PACKAGE"):
        parse_config({}, {k: v for k, v in ENV.items() if k != "EDGEKIT_MODEL_PACKAGE"})


def test_image_cycle_relists_each_round(tmp_path: Path) -> None:
    (tmp_path / "b.jpg").write_bytes(b"")
    (tmp_path / "a.PNG").write_bytes(b"")
    (tmp_path / "readme.txt").write_text("")
    cycle = ImageCycle(tmp_path)
    assert [cycle.next().name for _ in range(2)] == ["a.PNG", "b.jpg"]
    (tmp_path / "c.jpg").write_bytes(b"")
    assert [cycle.next().name for _ in range(3)] == ["a.PNG", "b.jpg", "c.jpg"]
    with pytest.raises(ConfigurationError, match="ImageDirectory"):
        ImageCycle(tmp_path / "missing").next()


def test_health_keeps_the_latest_skips() -> None:
    health = Health(max_skipped=2)
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        health.record_skip(name, "corrupt")
    msg = health.message(
        timestamp=utc_iso(0.5), thing_name="t", spool_pending=1, spool_dropped=2, model=None
    )
    assert msg["images_skipped"] == 3
    assert [s["image_name"] for s in msg["skipped"]] == ["b.jpg", "c.jpg"]
    assert msg["timestamp"] == "1970-01-01T00:00:00.500Z"
    assert msg["spool"] == {"pending": 1, "dropped": 2}
