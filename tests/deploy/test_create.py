"""edgekit.deploy.create: the configuration a deployment sends to the inference app, pinned
versions, and the thing group's errors."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from edgekit.components import generated_configuration
from edgekit.deploy import inference_configuration, parse_component_args, thing_group_arn
from edgekit.deploy.create import _component_spec
from edgekit.errors import AccessDeniedError, AwsServiceError, ConfigurationError
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


def test_inference_configuration_sends_a_capture_band_only_when_given() -> None:
    assert "CaptureBand" not in inference_configuration(SETTINGS)[APP]
    assert inference_configuration(SETTINGS, capture_band=(0, 1))[APP]["CaptureBand"] == [0.0, 1.0]
    assert inference_configuration(SETTINGS, capture_band=())[APP]["CaptureBand"] == []
    for bad in ((0.6, 0.2), (0.1, 1.5), (0.1,)):
        with pytest.raises(ConfigurationError, match="capture_band"):
            inference_configuration(SETTINGS, capture_band=bad)


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (None, {}),
        ([f"{APP}=1.0.2"], {APP: "1.0.2"}),
        ([f" {APP} = 1.0.2 ", "b=2.0.0"], {APP: "1.0.2", "b": "2.0.0"}),
    ],
)
def test_parse_component_args(items: list[str] | None, expected: dict[str, str]) -> None:
    assert parse_component_args(items) == expected


@pytest.mark.parametrize("item", ["no-version", "=1.0.0", f"{APP}="])
def test_parse_component_args_names_the_bad_item(item: str) -> None:
    with pytest.raises(ConfigurationError, match=f"--components '{item}': write NAME=VERSION"):
        parse_component_args([item])


@pytest.mark.parametrize(
    ("code", "error", "message"),
    [
        ("ResourceNotFoundException", ConfigurationError, "thing group g does not exist"),
        ("AccessDeniedException", AccessDeniedError, "thing group g: cannot describe it"),
        ("ThrottlingException", AwsServiceError, "thing group g: cannot describe it"),
    ],
)
def test_thing_group_arn_maps_service_errors(
    code: str, error: type[Exception], message: str
) -> None:
    iot = boto3.client(
        "iot", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(iot) as stubber:
        stubber.add_client_error("describe_thing_group", service_error_code=code)
        with pytest.raises(error, match=message):
            thing_group_arn(iot, "g")


def test_every_component_resets_what_the_build_generates_before_the_merge() -> None:
    """Issue 11: the agent kept an older deployment's PublicKey. Greengrass keeps a device's
    configuration across versions and runs reset before merge, so the build's keys are reset
    and the caller's merge still wins."""
    reset = generated_configuration(SETTINGS)
    assert "/PublicKey" in reset[SETTINGS.agent_component]
    assert {"/ModelName", "/ModelVersion"} <= set(reset[SETTINGS.model_component])
    assert "/HealthTopic" in reset[SETTINGS.inference_component]
    assert "/InferenceInterval" not in reset[SETTINGS.inference_component]  # the user's
    agent = _component_spec(
        SETTINGS.agent_component, "1.0.3", {SETTINGS.agent_component: {"LogLevel": "DEBUG"}}, reset
    )
    assert agent["componentVersion"] == "1.0.3"
    assert agent["configurationUpdate"]["reset"] == reset[SETTINGS.agent_component]
    assert json.loads(agent["configurationUpdate"]["merge"]) == {"LogLevel": "DEBUG"}
    assert "configurationUpdate" not in _component_spec("other", "1.0.0", {}, reset)
