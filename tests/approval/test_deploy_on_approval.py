"""Deploy on approval on the local backend: approve with plain boto3, the device runs it.

Nothing runs but the local endpoints and one device: the stack's EventBridge rule starts
the state machine when SageMaker (moto) reports the approval, moto executes it, its
greengrassv2 calls reach edgekit's control plane, and the device deploys the new model
component version. The execution's history is read with plain boto3.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

pytest.importorskip("awsiot.greengrasscoreipc")

from edgekit.compile.testing import build_tiny_model  # noqa: E402
from edgekit.components import build_components, publish_components  # noqa: E402
from edgekit.components.build import signing_keys  # noqa: E402
from edgekit.files import sha256_file  # noqa: E402
from edgekit.local import endpoints  # noqa: E402
from edgekit.local.device import add_device  # noqa: E402
from edgekit.package import build_package  # noqa: E402
from edgekit.registry import customer_metadata  # noqa: E402
from edgekit.settings import Settings  # noqa: E402
from edgekit.workflow.approval import (  # noqa: E402
    deploy_approval_stack,
    executions,
    follow_execution,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
GROUP = "edgekit-approval"
THING = "approval-device-1"
MODEL_GROUP = "approval-model"


def boto(settings: Settings, service: str) -> Any:
    """A plain boto3 client on the local endpoints, as a user would make one."""
    local = endpoints.LocalEndpoints.load(settings.home)
    return boto3.client(
        service,
        region_name=local.region,
        endpoint_url=local.url_for(service),
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, str, Path]]:
    """One device of GROUP, the three components published, the approval stack deployed."""
    home = tmp_path_factory.mktemp("home")
    work = tmp_path_factory.mktemp("approval")
    endpoints.up(home)
    try:
        settings = Settings(local_home=home, thing_group=GROUP)
        add_device(THING, GROUP, home)
        private, _ = signing_keys(None, settings)
        first = build_package(
            build_tiny_model(work / "m1.onnx"),
            name=settings.model_name,
            version="1.0.0",
            key=private,
            out=work / "m1.tar.gz",
        ).path
        publish_components(
            settings, build_components(settings, out_dir=work / "b", model_package=first)
        )
        result = deploy_approval_stack(
            settings, model_package_group=MODEL_GROUP, poll_seconds=1, max_polls=90, progress=False
        )
        yield settings, result.outputs["StateMachineArn"], work
    finally:
        endpoints.down(home)


def test_approval_deploys_the_new_model_to_the_device(stack: tuple[Settings, str, Path]) -> None:
    settings, machine, work = stack
    private, _ = signing_keys(None, settings)
    built = build_package(
        build_tiny_model(work / "m2.onnx", heatmap_bias=-6),
        name=settings.model_name,
        version="1.1.0",
        key=private,
        out=work / "m2.tar.gz",
    )
    sha = sha256_file(built.path)
    s3, sm = boto(settings, "s3"), boto(settings, "sagemaker")
    bucket = "approval-packages"
    s3.create_bucket(Bucket=bucket)
    key = f"packages/{sha[:16]}/{built.path.name}"
    s3.upload_file(str(built.path), bucket, key)
    uri = f"s3://{bucket}/{key}"
    sm.create_model_package_group(ModelPackageGroupName=MODEL_GROUP)
    arn = sm.create_model_package(
        ModelPackageGroupName=MODEL_GROUP,
        ModelApprovalStatus="PendingManualApproval",
        SourceUri=uri,
        CustomerMetadataProperties=customer_metadata(built, sha256=sha, package_s3_uri=uri),
    )["ModelPackageArn"]
    assert executions(settings, machine) == []  # pending: nothing started
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")

    started = executions(settings, machine)
    assert len(started) == 1, started  # the rule started it, during the approval call
    outcome = follow_execution(settings, started[0]["executionArn"], timeout=120, poll=0.5)
    assert outcome.output is not None
    assert outcome.output["sha256"] == sha and outcome.output["componentVersion"] == "1.0.1"
    assert outcome.output["devices"] == [{"thing": THING, "state": "SUCCEEDED"}]

    gg = boto(settings, "greengrassv2")
    effective = gg.list_effective_deployments(coreDeviceThingName=THING)["effectiveDeployments"]
    mine = [d for d in effective if d["deploymentId"] == outcome.output["deploymentId"]]
    assert mine and mine[0]["coreDeviceExecutionStatus"] == "SUCCEEDED"
    installed = {
        c["componentName"]: c["componentVersion"]
        for c in gg.list_installed_components(coreDeviceThingName=THING)["installedComponents"]
    }
    assert installed[settings.model_component] == "1.0.1"

    sfn = boto(settings, "stepfunctions")
    events = sfn.get_execution_history(executionArn=started[0]["executionArn"])["events"]
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e
    ]
    assert "CreateModelComponentVersion" in entered and entered[-1] == "Deployed"
    assert events[-1]["type"] == "ExecutionSucceeded"
