"""edgekit.deploy.record: a deployment as the JSON record notebook 03 writes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from edgekit.deploy import (
    DeploymentResult,
    DeviceProof,
    Failure,
    ProofCriteria,
    deployment_record,
    inference_configuration,
)
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


def test_deployment_record_keeps_the_proof_of_every_device(
    deployment_result: DeploymentResult,
) -> None:
    sha = "d" * 64
    deployment_result.criteria = ProofCriteria(
        sha, "tag-scratch-detector", "1.0.0", "0123456789abcdef", since=datetime.now(UTC)
    )
    deployment_result.proofs = {
        "core-1": DeviceProof("core-1", "SUCCEEDED", sha, results=5, state="PROVEN"),
        "core-2": DeviceProof("core-2", "FAILED", state="FAILED", reason="agent broke"),
    }
    record = deployment_record(SETTINGS, deployment_result, thing_group="g")
    assert json.loads(json.dumps(record)) == record
    assert record["proof"]["package_sha256"] == sha and record["proof"]["failed"] == ["core-2"]
    assert record["proof"]["min_results"] == 3
    devices = {d["thing"]: d["proof"] for d in record["devices"]}
    assert devices["core-1"]["state"] == "PROVEN" and devices["core-1"]["results"] == 5
    assert devices["core-2"]["reason"] == "agent broke"
    assert (
        deployment_record(SETTINGS, DeploymentResult("d", "arn", {}), thing_group="g")["proof"]
        is None
    )
