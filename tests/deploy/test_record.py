"""edgekit.deploy.record: a deployment as the JSON record notebook 03 writes."""

from __future__ import annotations

import json

from edgekit.deploy import DeploymentResult, Failure, deployment_record, inference_configuration
from edgekit.settings import Settings

SETTINGS = Settings(backend="local")
AWS = Settings(backend="aws", region="eu-west-1")
MODEL, AGENT, APP = SETTINGS.model_component, SETTINGS.agent_component, SETTINGS.inference_component


def test_deployment_record_is_json_and_keeps_the_failure(
    deployment_result: DeploymentResult,
) -> None:
    from edgekit.registry import ModelVersion

    version = ModelVersion("arn:v1", "tag-scratch-detector", 1, "Approved", None, semver="1.0.0")
    failure = Failure("core-2", "FAILED", "agent broke", AGENT, "the log", "tail", [{"a": "b"}])
    record = deployment_record(
        SETTINGS,
        deployment_result,
        thing_group="g",
        model=version,
        configuration=inference_configuration(SETTINGS),
        failure=failure,
    )
    assert json.loads(json.dumps(record)) == record
    assert record["status"] == "FAILED" and record["failure"]["component"] == AGENT
    assert record["model"]["version"] == 1
    assert record["devices"][0]["components"][MODEL] == {"version": "1.0.2", "state": "FINISHED"}
    assert record["configuration"][APP] == {"InferenceInterval": 0.2, "ScoreThreshold": None}
