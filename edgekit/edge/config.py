"""The inference component's configuration, read from Greengrass and checked field by field.

The keys are the recipe's ``DefaultConfiguration`` keys (see
``component/com.qualityinspection/recipe.yaml``); a deployment may change any of
them with a ``configurationUpdate``. A bad value raises ConfigurationError
naming the key, so the component log says exactly what to fix.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.agent.paths import socket_for_work
from edgekit.errors import ConfigurationError
from edgekit.schemas.capture_band import capture_band
from edgekit.schemas.health_shadow import HEALTH_SHADOW

THING_VARIABLE = "{iot:thingName}"
MODEL_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
"""Model names as the agent API accepts them."""
SHADOW_PACKAGE_EXAMPLE = "com.qualityinspection.model.shadow/package"
SHADOW_NAME = re.compile(r"^[a-zA-Z0-9:_-]{1,64}$")
"""Device shadow names as AWS IoT Core accepts them."""

# Environment variables the recipe's Run step sets (recipe variables interpolated there).
ENV_MODEL_PACKAGE = "EDGEKIT_MODEL_PACKAGE"
ENV_MODEL_NAME = "EDGEKIT_MODEL_NAME"
ENV_AGENT_SOCKET = "EDGEKIT_AGENT_SOCKET"
ENV_AGENT_WORK = "EDGEKIT_AGENT_WORK"
ENV_SAMPLE_IMAGES = "EDGEKIT_SAMPLE_IMAGES"
ENV_SPOOL_DIR = "EDGEKIT_SPOOL_DIR"


@dataclass(frozen=True)
class AppConfig:
    image_directory: Path
    inference_interval: float
    results_topic: str
    health_topic: str
    health_interval: float
    health_window: float
    """Seconds of the sliding window health reports its "window" counts over (HealthWindow)."""
    score_threshold: float | None
    """None: the model package's own threshold."""
    capture_band: tuple[float, float] | None
    """Images whose best score lies in [low, high] go to CaptureData; None disables capture."""
    model_name: str
    model_package: Path
    agent_socket: str
    use_shared_memory: bool
    spool_dir: Path
    spool_max_messages: int
    spool_max_bytes: int
    shadow_package: Path | None = None
    """ShadowPackagePath: the candidate model's unpacked package, None = no shadow. A relative
    path is relative to the nucleus's work folder (resolved by the app)."""
    shadow_model_name: str = ""
    """ShadowModelName: the candidate's name in health; empty = the name in its manifest."""
    health_shadow: str = HEALTH_SHADOW
    """HealthShadow: the named device shadow that gets a summary of each health message
    (edgekit.schemas.health_shadow); empty = no shadow updates."""
    health_shadow_interval: float = 300.0
    """HealthShadowInterval: seconds between shadow updates of an unchanged summary
    (edgekit.edge.health_shadow); 0 = with every health message."""


def _number(config: Mapping[str, Any], key: str, default: float, *, minimum: float) -> float:
    value = config.get(key, default)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigurationError(
                f"configuration {key}={value!r} is not a number; set it to a number such as "
                f"{default}"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigurationError(f"configuration {key}={value!r} must be a finite number")
    if value < minimum:
        raise ConfigurationError(f"configuration {key}={value!r} must be at least {minimum}")
    return float(value)


def _text(config: Mapping[str, Any], key: str, default: str) -> str:
    value = config.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ConfigurationError(f"configuration {key}={value!r} must be a string")
    return value


def _topic(config: Mapping[str, Any], key: str, default: str) -> str:
    topic = _text(config, key, default).strip()
    if not topic or "+" in topic or "#" in topic:
        raise ConfigurationError(
            f"configuration {key}={topic!r} must be an MQTT topic without wildcards "
            f"(e.g. {default})"
        )
    return topic


def _flag(config: Mapping[str, Any], key: str, default: bool) -> bool:
    value = config.get(key, default)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise ConfigurationError(f"configuration {key}={value!r} must be true or false")
    return value


def _threshold(config: Mapping[str, Any]) -> float | None:
    value = config.get("ScoreThreshold")
    if value is None or value == "":
        return None
    score = _number(config, "ScoreThreshold", 0.3, minimum=0.0)
    if score > 1.0:
        raise ConfigurationError(f"configuration ScoreThreshold={value!r} must be in [0, 1]")
    return score


def _shadow(config: Mapping[str, Any]) -> tuple[Path | None, str]:
    path = _text(config, "ShadowPackagePath", "").strip()
    name = _text(config, "ShadowModelName", "").strip()
    if name and not MODEL_NAME.match(name):
        raise ConfigurationError(
            f"configuration ShadowModelName={name!r} must match {MODEL_NAME.pattern} "
            "(letters, digits and dashes), or be empty to use the name in the package manifest"
        )
    if name and not path:
        raise ConfigurationError(
            f"configuration ShadowModelName={name!r} is set but ShadowPackagePath is empty; set "
            "ShadowPackagePath to the shadow model component's package (e.g. "
            f"{SHADOW_PACKAGE_EXAMPLE}) or clear ShadowModelName"
        )
    return (Path(path) if path else None), name


def _health_shadow(config: Mapping[str, Any]) -> str:
    name = _text(config, "HealthShadow", HEALTH_SHADOW).strip()
    if name and not SHADOW_NAME.match(name):
        raise ConfigurationError(
            f"configuration HealthShadow={name!r} is not a device shadow name (1 to 64 letters, "
            f"digits, ':', '_' or '-'); use {HEALTH_SHADOW!r}, or \"\" to turn the shadow off"
        )
    return name


def expand_thing(text: str, thing_name: str) -> str:
    """Replace a ``{iot:thingName}`` the nucleus left in a configuration value.

    Greengrass interpolates recipe variables in configuration values only when
    the nucleus option ``interpolateComponentConfiguration`` is on; the app
    does it itself so the default socket path works either way.
    """
    return text.replace(THING_VARIABLE, thing_name)


def parse_config(
    config: Mapping[str, Any], env: Mapping[str, str] | None = None, *, thing_name: str = ""
) -> AppConfig:
    """An AppConfig from the component configuration and the Run step's environment."""
    env = os.environ if env is None else env
    if not isinstance(config, Mapping):
        raise ConfigurationError(f"component configuration must be an object, got {config!r}")
    image_dir = _text(config, "ImageDirectory", "").strip()
    if not image_dir:
        image_dir = env.get(ENV_SAMPLE_IMAGES, "")
        if not image_dir:
            raise ConfigurationError(
                f"configuration ImageDirectory is empty and {ENV_SAMPLE_IMAGES} is not set; "
                "set ImageDirectory to the camera's image folder"
            )
    package = env.get(ENV_MODEL_PACKAGE, "")
    if not package:
        raise ConfigurationError(
            f"{ENV_MODEL_PACKAGE} is not set: the recipe's Run step must point it at the model "
            "component's unpacked package"
        )
    model_name = _text(config, "ModelName", "").strip() or env.get(ENV_MODEL_NAME, "")
    if not model_name:
        raise ConfigurationError("configuration ModelName is empty; set the model's name")
    socket = _text(config, "AgentSocket", "").strip() or env.get(ENV_AGENT_SOCKET, "")
    if not socket and env.get(ENV_AGENT_WORK):
        socket = socket_for_work(env[ENV_AGENT_WORK])
    if not socket:
        raise ConfigurationError(
            f"configuration AgentSocket is empty and neither {ENV_AGENT_SOCKET} nor "
            f"{ENV_AGENT_WORK} is set; set the model agent's unix socket path"
        )
    spool_dir = env.get(ENV_SPOOL_DIR, "") or "spool"
    shadow_package, shadow_name = _shadow(config)
    return AppConfig(
        image_directory=Path(expand_thing(image_dir, thing_name)),
        inference_interval=_number(config, "InferenceInterval", 1.0, minimum=0.0),
        results_topic=_topic(
            config, "PublishResultsOnTopic", "qualityinspection/scratch-detection"
        ),
        health_topic=_topic(config, "HealthTopic", "qualityinspection/health"),
        health_interval=_number(config, "HealthInterval", 5.0, minimum=0.1),
        health_window=_number(config, "HealthWindow", 60.0, minimum=1.0),
        score_threshold=_threshold(config),
        capture_band=capture_band(config.get("CaptureBand"), what="configuration CaptureBand"),
        model_name=model_name,
        model_package=Path(package),
        agent_socket=expand_thing(socket, thing_name),
        use_shared_memory=_flag(config, "UseSharedMemory", True),
        spool_dir=Path(spool_dir),
        spool_max_messages=int(_number(config, "SpoolMaxMessages", 10_000, minimum=1)),
        spool_max_bytes=int(_number(config, "SpoolMaxBytes", 50 * 1024 * 1024, minimum=1024)),
        shadow_package=(
            Path(expand_thing(str(shadow_package), thing_name)) if shadow_package else None
        ),
        shadow_model_name=shadow_name,
        health_shadow=_health_shadow(config),
        health_shadow_interval=_number(config, "HealthShadowInterval", 300.0, minimum=0.0),
    )
