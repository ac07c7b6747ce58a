"""edgekit.deploy.create: the configuration a deployment sends to the inference app, pinned
versions, and the thing group's errors."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from edgekit.deploy import inference_configuration, parse_component_args, thing_group_arn
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
