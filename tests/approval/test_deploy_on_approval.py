"""Deploy on approval on the local backend: approve with plain boto3, the device runs it.

Nothing runs but the local endpoints and one device: the stack's EventBridge rule starts
the state machine when SageMaker (moto) reports the approval, moto executes it, its
greengrassv2 calls reach edgekit's control plane, and the device deploys the new model
component version, whose recipe is the one `components publish` renders, and its app
inspects with the approved package (its health names the package's sha256): the workflow
ends on that proof, read from the device's edgekit-health shadow, and fails NotProven when
Greengrass succeeded but the device cannot inspect with the package. The execution's history
is read with plain boto3. `edgekit pipeline deploy-approved --wait`
runs it by hand, and exits 1 naming the failed state and its cause.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

pytest.importorskip("awsiot.greengrasscoreipc")

from edgekit.cli import main  # noqa: E402
from edgekit.compile.testing import build_tiny_model  # noqa: E402
from edgekit.components import build_components, publish_components  # noqa: E402
from edgekit.components.build import signing_keys  # noqa: E402
from edgekit.deploy.proof import current_model  # noqa: E402
from edgekit.errors import WorkflowExecutionError  # noqa: E402
from edgekit.files import sha256_file  # noqa: E402
from edgekit.local import endpoints  # noqa: E402
from edgekit.local.device import add_device  # noqa: E402
from edgekit.package import build_package  # noqa: E402
from edgekit.registry import customer_metadata  # noqa: E402
from edgekit.results import subscriber_for  # noqa: E402
from edgekit.settings import Settings  # noqa: E402
from edgekit.workflow.approval import (  # noqa: E402
    default_stack_name,
    deploy_approval_stack,
    executions,
    follow_execution,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
GROUP = "edgekit-approval"
THING = "appr-1"  # short: the agent socket path must stay under 108 characters
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


def package_version(settings: Settings, work: Path, name: str, version: str, bias: float) -> Any:
    """A tiny model packaged as ``version``, signed with the key the devices trust."""
    private, _ = signing_keys(None, settings)
    return build_package(
        build_tiny_model(work / f"{name}.onnx", heatmap_bias=bias),
        name=settings.model_name,
        version=version,
        key=private,
        out=work / f"{name}.tar.gz",
    )


def register(
    settings: Settings, built: Any, sha: str, *, bucket: str, group: str, status: str
) -> tuple[str, str]:
    """Upload the package and register it in ``group`` with plain boto3, as a user would:
    (the version's ARN, the package's S3 URI)."""
    s3, sm = boto(settings, "s3"), boto(settings, "sagemaker")
    s3.create_bucket(Bucket=bucket)
    key = f"packages/{sha[:16]}/{built.path.name}"
    s3.upload_file(str(built.path), bucket, key)
    uri = f"s3://{bucket}/{key}"
    sm.create_model_package_group(ModelPackageGroupName=group)
    arn = sm.create_model_package(
        ModelPackageGroupName=group,
        ModelApprovalStatus=status,
        SourceUri=uri,
        CustomerMetadataProperties=customer_metadata(built, sha256=sha, package_s3_uri=uri),
    )["ModelPackageArn"]
    return str(arn), uri


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
    built = package_version(settings, work, "m2", "1.1.0", -6)
    sha = sha256_file(built.path)
    sm = boto(settings, "sagemaker")
    arn, uri = register(
        settings, built, sha, bucket="approval-packages", group=MODEL_GROUP,
        status="PendingManualApproval",
    )  # fmt: skip
    assert executions(settings, machine) == []  # pending: nothing started
    inspecting = threading.Event()
    seen: list[Any] = []

    def health(message: Any) -> None:
        if not message.topic.startswith(settings.health_topic):
            return
        body = json.loads(message.payload)
        seen.append(body)
        model = current_model(body) or {}
        if body.get("thing_name") == THING and model.get("package_sha256") == sha:
            inspecting.set()

    with subscriber_for(settings) as subscriber:
        subscriber.subscribe("#", health)
        sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
        started = executions(settings, machine)
        assert len(started) == 1, started  # the rule started it, during the approval call
        outcome = follow_execution(settings, started[0]["executionArn"], timeout=120, poll=0.5)
        assert inspecting.wait(60), (
            f"{THING} never reported inspecting with package {sha}; last health: {seen[-1:]}"
        )
    assert outcome.output is not None
    assert outcome.output["sha256"] == sha and outcome.output["componentVersion"] == "1.0.1"
    assert outcome.output["devices"] == [{"thing": THING, "state": "SUCCEEDED"}]
    # Ended on the device's proof, read from its edgekit-health shadow.
    [proof] = outcome.output["proofs"]
    assert proof["thing"] == THING and proof["state"] == "PROVEN", proof
    assert proof["results"] >= 3
    shadow = json.loads(
        boto(settings, "iot-data")
        .get_thing_shadow(thingName=THING, shadowName="edgekit-health")["payload"]
        .read()
    )
    assert shadow["state"]["reported"]["package_sha256"] == sha

    gg = boto(settings, "greengrassv2")
    # The agent installs the runtime the approved package needs (its ModelRuntimes merged
    # from the registry's edgekit:runtime after the generated keys are reset).
    deployment = gg.get_deployment(deploymentId=outcome.output["deploymentId"])
    agent = deployment["components"][settings.agent_component]["configurationUpdate"]
    runtime = customer_metadata(built, sha256=sha, package_s3_uri=uri)["edgekit:runtime"]
    assert json.loads(agent["merge"]) == {"ModelRuntimes": runtime}
    assert "/ModelRuntimes" in agent["reset"]
    effective = gg.list_effective_deployments(coreDeviceThingName=THING)["effectiveDeployments"]
    mine = [d for d in effective if d["deploymentId"] == outcome.output["deploymentId"]]
    assert mine and mine[0]["coreDeviceExecutionStatus"] == "SUCCEEDED"
    installed = {
        c["componentName"]: c["componentVersion"]
        for c in gg.list_installed_components(coreDeviceThingName=THING)["installedComponents"]
    }
    assert installed[settings.model_component] == "1.0.1"
    # The recipe is the one `edgekit components publish` renders for this package, with the
    # artifact where the registry points.
    [model] = build_components(
        settings,
        out_dir=work / "expected",
        model_package=built.path,
        names=[settings.model_component],
    )
    expected = model.render(
        {"COMPONENT_VERSION": "1.0.1", "ARTIFACT_PREFIX": uri.rsplit("/", 1)[0]}
    )
    stored = gg.get_component(
        arn=f"arn:aws:greengrass:{settings.region}:123456789012:components:"
        f"{settings.model_component}:versions:1.0.1",
        recipeOutputFormat="JSON",
    )["recipe"]
    recipe = json.loads(stored)
    # What Greengrass adds when it stores a version: the artifacts' digests, the type.
    assert recipe.pop("ComponentType") == "aws.greengrass.generic"
    for manifest in recipe["Manifests"]:
        for artifact in manifest["Artifacts"]:
            assert artifact.pop("Algorithm") == "SHA-256" and artifact.pop("Digest")
    assert recipe == expected

    sfn = boto(settings, "stepfunctions")
    events = sfn.get_execution_history(executionArn=started[0]["executionArn"])["events"]
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e
    ]
    assert "CreateModelComponentVersion" in entered and entered[-1] == "Deployed"
    assert entered.index("DeviceProofs") > entered.index("AllDone")
    assert events[-1]["type"] == "ExecutionSucceeded"


def test_cli_deploy_approved_waits_and_shows_the_devices(
    stack: tuple[Settings, str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, machine, _ = stack
    monkeypatch.setenv("EDGEKIT_LOCAL_HOME", str(settings.home))
    code = main(["pipeline", "deploy-approved", "--backend", "local", "--wait", "--timeout", "120"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "SUCCEEDED" in captured.out and f"{THING}  SUCCEEDED  PROVEN: " in captured.out
    assert executions(settings, machine)[0]["status"] == "SUCCEEDED"


def test_cli_names_the_failed_state_and_its_cause(
    stack: tuple[Settings, str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, _, _ = stack
    monkeypatch.setenv("EDGEKIT_LOCAL_HOME", str(settings.home))
    monkeypatch.setenv("EDGEKIT_THING_GROUP", GROUP)
    code = main(
        ["stack", "deploy-approval", "--name", "empty-approval", "--group", "never-approved"]
    )
    printed = capsys.readouterr().out
    assert code == 0 and "stack empty-approval: CREATE_COMPLETE" in printed, printed
    assert "StateMachineArn" in printed
    boto(settings, "sagemaker").create_model_package_group(ModelPackageGroupName="never-approved")
    code = main(
        ["pipeline", "deploy-approved", "--backend", "local", "--stack", "empty-approval", "--wait"]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "FAILED in state NoApprovedVersion" in captured.err, captured.err
    assert "never-approved has no Approved version" in captured.err
    assert default_stack_name(settings) != "empty-approval"  # the other stack was not used


def test_greengrass_success_without_the_devices_proof_is_not_proven(
    stack: tuple[Settings, str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Greengrass deploys the approved version everywhere (SUCCEEDED), but no device gets to
    the proof the stack asks for (MinResults far above what a device publishes in the
    test): the workflow fails NotProven naming the device, the approved sha256 and what its
    health shadow says. The old workflow ended SUCCEEDED here."""
    settings, _, work = stack
    built = package_version(settings, work, "m3", "1.2.0", -5)
    sha = sha256_file(built.path)
    group = "unproven-model"
    result = deploy_approval_stack(
        settings,
        name="unproven-approval",
        model_package_group=group,
        poll_seconds=1,
        max_polls=15,  # the Greengrass wait, then the proof: 15 s each at most
        min_results=1_000_000,
        progress=False,
    )
    machine = result.outputs["StateMachineArn"]
    register(settings, built, sha, bucket="unproven-packages", group=group, status="Approved")
    [started] = executions(settings, machine)
    with pytest.raises(WorkflowExecutionError) as failed:
        follow_execution(settings, started["executionArn"], timeout=120, poll=0.5)
    error = failed.value
    assert error.state == "NotProven", str(error)
    cause = str(error.cause)
    assert "SUCCEEDED in Greengrass" in cause and sha in cause
    assert THING in cause and "PENDING" in cause and "of 1000000 results published" in cause
