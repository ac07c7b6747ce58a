"""edgekit.deploy.create: the configuration a deployment sends to the inference app."""

from __future__ import annotations

import pytest

from edgekit.deploy import inference_configuration
from edgekit.errors import ConfigurationError
from edgekit.settings import Settings

SETTINGS = Settings(backend="local")
APP = SETTINGS.inference_component


def test_inference_configuration_checks_its_values() -> None:
    assert inference_configuration(SETTINGS, inference_interval=1, score_threshold=0.5) == {
        APP: {"InferenceInterval": 1.0, "ScoreThreshold": 0.5}
    }
    with pytest.raises(ConfigurationError, match="score_threshold"):
        inference_configuration(SETTINGS, score_threshold=1.5)
    with pytest.raises(ConfigurationError, match="inference_interval"):
        inference_configuration(SETTINGS, inference_interval=-1)
