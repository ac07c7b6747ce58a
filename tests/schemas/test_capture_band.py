"""CaptureBand: the notebook (deploy) and the device (app configuration) accept the same bands."""

from __future__ import annotations

import pytest

from edgekit.deploy import inference_configuration
from edgekit.edge.config import parse_config
from edgekit.errors import ConfigurationError
from edgekit.schemas.capture_band import capture_band
from edgekit.settings import Settings

SETTINGS = Settings(backend="local")
ENV = {
    "EDGEKIT_MODEL_PACKAGE": "/pkg",
    "EDGEKIT_MODEL_NAME": "m",
    "EDGEKIT_AGENT_SOCKET": "/tmp/edgekit-agent.sock",
    "EDGEKIT_SAMPLE_IMAGES": "/samples",
}


def _device(value):  # type: ignore[no-untyped-def]
    return parse_config({"CaptureBand": value}, ENV).capture_band


GOOD = [([0.2, 0.5], (0.2, 0.5)), ([0, 1], (0.0, 1.0)), (["0.1", "0.3"], (0.1, 0.3)), ([], None)]
BAD = [
    [0.6, 0.2],
    [0.2],
    [0.1, 0.2, 0.3],
    [-0.1, 0.5],
    [0.2, 1.5],
    ["x", 0.5],
    [True, 0.5],
    [float("nan"), 0.5],
    0.3,
]


@pytest.mark.parametrize(("value", "band"), GOOD)
def test_good_bands_read_the_same_on_both_sides(value, band) -> None:
    assert capture_band(value) == band
    assert _device(value) == band
    sent = inference_configuration(SETTINGS, capture_band=value)[SETTINGS.inference_component]
    assert sent["CaptureBand"] == ([] if band is None else list(band))


@pytest.mark.parametrize("value", BAD)
def test_bad_bands_are_refused_on_both_sides_naming_the_field(value) -> None:
    with pytest.raises(ConfigurationError, match="CaptureBand"):
        capture_band(value)
    with pytest.raises(ConfigurationError, match="configuration CaptureBand"):
        _device(value)
    with pytest.raises(ConfigurationError, match="capture_band"):
        inference_configuration(SETTINGS, capture_band=value)
