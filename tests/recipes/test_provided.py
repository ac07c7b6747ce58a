"""edgekit.recipes.provided: the catalog of AWS-provided public components."""

from __future__ import annotations

import pytest

from edgekit.recipes import provided
from edgekit.recipes.provided import (
    BUILT_IN,
    PUBLIC_COMPONENTS,
    STAND_IN,
    ProvidedComponent,
    is_public,
    public_component,
)
from edgekit.recipes.semver import parse_version


@pytest.mark.parametrize(
    "name",
    [
        "aws.greengrass.Nucleus",
        "aws.greengrass.NucleusLite",
        "aws.greengrass.Cli",
        "aws.greengrass.TokenExchangeService",
        "aws.greengrass.LogManager",
        "aws.greengrass.StreamManager",
        "aws.greengrass.SecretManager",
        "aws.greengrass.ShadowManager",
        "aws.greengrass.DockerApplicationManager",
        "aws.greengrass.clientdevices.Auth",
        "aws.greengrass.clientdevices.mqtt.Bridge",
        "aws.greengrass.clientdevices.mqtt.Moquette",
        "aws.greengrass.clientdevices.mqtt.EMQX",
        "aws.greengrass.clientdevices.IPDetector",
        "aws.greengrass.LambdaLauncher",
        "aws.greengrass.LambdaManager",
        "aws.greengrass.LambdaRuntimes",
        "aws.greengrass.LocalDebugConsole",
        "aws.greengrass.SageMakerEdgeManager",
        "aws.greengrass.DLRImageClassification",
        "variant.DLR.ImageClassification.ModelStore",
        "aws.greengrass.TensorFlowLiteObjectDetection",
        "aws.greengrass.SecureTunneling",
        "aws.greengrass.SystemsManagerAgent",
        "aws.greengrass.DiskSpooler",
        "aws.greengrass.telemetry.NucleusEmitter",
        "aws.greengrass.KinesisFirehose",
        "aws.greengrass.SNS",
        "aws.greengrass.Cloudwatch",
        "aws.iot.SiteWiseEdgePublisher",
    ],
)
def test_the_public_components_are_listed(name: str) -> None:
    component = public_component(name)
    assert component is not None and component.kind in (STAND_IN, BUILT_IN)
    assert component.versions and component.local


@pytest.mark.parametrize(
    "name",
    [
        "aws.greengrass.labs.database.InfluxDB",
        "aws.greengrass.labs.dashboard.Grafana",
        "aws.greengrass.Nucleus.Extra",
        "aws.greengrass.ipc.pubsub",  # an IPC service name, not a component
        "com.example.HelloWorld",
    ],
)
def test_every_other_name_is_an_ordinary_component(name: str) -> None:
    assert not is_public(name)


def test_versions_are_semantic_and_oldest_first() -> None:
    for component in PUBLIC_COMPONENTS.values():
        parsed = [parse_version(v) for v in component.versions]
        assert parsed == sorted(parsed), component.name
        assert len(set(component.versions)) == len(component.versions), component.name


def test_publishes_listed_versions_and_patches_of_listed_lines() -> None:
    nucleus = PUBLIC_COMPONENTS["aws.greengrass.Nucleus"]
    assert nucleus.publishes("2.12.0") and nucleus.publishes("2.12.9")
    assert not nucleus.publishes("9.0.0") and not nucleus.publishes("2.99.0")
    assert not nucleus.publishes("latest")


def test_a_built_in_entry_wins_over_a_stand_in_of_the_same_name() -> None:
    stand_in = ProvidedComponent("aws.greengrass.X", STAND_IN, ("1.0.0",), "nothing")
    built_in = ProvidedComponent("aws.greengrass.X", BUILT_IN, ("1.0.0",), "runs")
    assert provided._index((built_in, stand_in))["aws.greengrass.X"] is built_in
    assert provided._index((stand_in, built_in))["aws.greengrass.X"] is built_in
