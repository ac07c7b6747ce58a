"""edgekit.local.device.local_deployments: greengrass-cli arguments, requests, results."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from edgekit.errors import ConfigurationError
from edgekit.local.device.artifacts import stage_local_artifacts
from edgekit.local.device.failures import DeploymentFailure
from edgekit.local.device.local_deployments import (
    format_result,
    local_versions,
    parse_merge,
    parse_remove,
    parse_update_config,
    submit,
    wait_result,
)
from edgekit.local.device.recipe import resolve_recipe


def test_merge_and_remove_arguments() -> None:
    assert parse_merge(["a.B=1.0.0", " c = 2.0.0 "]) == {"a.B": "1.0.0", "c": "2.0.0"}
    assert parse_remove(["a,b", "c"]) == ["a", "b", "c"]
    for bad in ("a", "a=", "=1.0.0"):
        with pytest.raises(ConfigurationError, match="NAME=VERSION"):
            parse_merge([bad])


def test_update_config_from_a_string_or_a_file(tmp_path: Path) -> None:
    doc = {"com.ex.A": {"MERGE": {"k": 1}, "RESET": ["/old"]}}
    assert parse_update_config(json.dumps(doc)) == doc
    path = tmp_path / "update.json"
    path.write_text(json.dumps(doc))
    assert parse_update_config(str(path)) == doc
    assert parse_update_config(None) == {}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{not json", "not JSON"),
        ("[1]", "JSON object"),
        ('{"a": {"merge": {}}}', "in capitals"),
        ('{"a": {"MERGE": [1]}}', "MERGE must be an object"),
        ('{"a": {"RESET": "/x"}}', "RESET must be a list"),
    ],
)
def test_bad_update_config_says_the_format(text: str, needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        parse_update_config(text)


def test_submit_writes_a_request_the_device_reads(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    deployment_id = submit(tmp_path, merge={"a": "1.0.0"}, remove=["b"])
    request = json.loads(
        (tmp_path / "local-deployments" / "requests" / f"{deployment_id}.json").read_text()
    )
    assert request["groupName"] == "LOCAL_DEPLOYMENT"
    assert request["failureHandlingPolicy"] == "ROLLBACK"
    assert request["merge"] == {"a": "1.0.0"} and request["remove"] == ["b"]


def test_submit_refuses_what_cannot_work(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not a local device root"):
        submit(tmp_path / "nowhere", merge={"a": "1.0.0"})
    (tmp_path / "config").mkdir()
    with pytest.raises(ConfigurationError, match="--recipe-dir"):
        submit(tmp_path, recipe_dir=str(tmp_path / "missing"), merge={"a": "1.0.0"})
    with pytest.raises(ConfigurationError, match="ROLLBACK, DO_NOTHING"):
        submit(tmp_path, merge={"a": "1.0.0"}, failure_policy="IGNORE")


def test_wait_says_when_no_device_picks_the_request_up(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    deployment_id = submit(tmp_path, merge={"a": "1.0.0"})
    with pytest.raises(ConfigurationError, match="is it running"):
        wait_result(tmp_path, deployment_id, pickup_timeout=0.0, poll=0.0)


def test_format_result() -> None:
    assert format_result({"deploymentId": "d", "executionStatus": "SUCCEEDED"}) == (
        "local deployment d: SUCCEEDED\n"
    )
    text = format_result(
        {
            "deploymentId": "d",
            "executionStatus": "FAILED",
            "detailedDeploymentStatus": "FAILED_ROLLBACK_COMPLETE",
            "errorStack": ["DEPLOYMENT_FAILURE", "COMPONENT_BROKEN"],
            "reason": "component x 1.0.0 is BROKEN: install script exited with code 1",
        }
    )
    assert "FAILED_ROLLBACK_COMPLETE" in text and "install script exited" in text


def test_local_versions_of_an_empty_root(tmp_path: Path) -> None:
    assert local_versions(tmp_path, "a") == []


def _recipe(digest: str | None) -> dict:
    artifact = {"URI": "s3://b/a/run.sh"}
    if digest:
        artifact["Digest"] = digest
    return {
        "ComponentName": "a",
        "ComponentVersion": "1.0.0",
        "Manifests": [
            {"Lifecycle": {"Run": "sh {artifacts:path}/run.sh"}, "Artifacts": [artifact]}
        ],
    }


def test_local_artifacts_are_copied_and_marked_verified(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "run.sh").write_text("echo hi")
    (source / "sub" / "data.txt").write_text("x")
    digest = base64.b64encode(hashlib.sha256(b"echo hi").digest()).decode()
    target = tmp_path / "store"
    stage_local_artifacts(resolve_recipe(_recipe(digest), {"os": "linux"}), source, target)
    assert (target / "run.sh").read_text() == "echo hi"
    assert (target / "sub" / "data.txt").read_text() == "x"
    assert (target / ".run.sh.verified").read_text() == digest


def test_a_local_artifact_that_does_not_match_its_digest_fails(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "run.sh").write_text("echo changed")
    recipe = resolve_recipe(_recipe("AAAA"), {"os": "linux"})
    with pytest.raises(DeploymentFailure, match="Digest"):
        stage_local_artifacts(recipe, source, tmp_path / "store")


def test_a_local_deployment_does_not_notify_components_as_on_the_nucleus() -> None:
    """greengrass-cli deployments skip the component-update policy (the nucleus converts a
    local request with SKIP_NOTIFY_COMPONENTS): subscribers are not asked to defer."""
    from types import SimpleNamespace

    from edgekit.local.device.local_deployments import LocalDeploymentsMixin

    device = SimpleNamespace(state=SimpleNamespace(targets={}))
    doc = LocalDeploymentsMixin._local_document(
        device,  # type: ignore[arg-type]
        {"deploymentId": "d-1", "merge": {"com.example.A": "1.0.0"}},
        "LOCAL_DEPLOYMENT",
    )
    policy = doc["deploymentPolicies"]["componentUpdatePolicy"]
    assert policy["action"] == "SKIP_NOTIFY_COMPONENTS"
