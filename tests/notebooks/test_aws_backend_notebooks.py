"""Notebooks 01-03 with ``backend="aws"``: the AWS code path, its boto3 calls landing on loopback.

The notebooks run in kernels whose environment is what an AWS user has (credentials and
a region, nothing edgekit-specific), except that botocore's standard endpoint variables
(``AWS_ENDPOINT_URL_<SERVICE>``, ``AWS_ENDPOINT_URL``) send every call to the local
endpoints: moto for S3, IoT, CloudFormation, SageMaker, IAM, STS, and edgekit's
Greengrass v2 emulator. So edgekit takes its AWS strategies (`AwsResolver`, `Ec2Device`,
`AwsProfile`, the IoT Core results transport) and makes the same calls it makes on AWS,
with botocore's parameter validation on.

On AWS the device is the stack's EC2 instance, which moto only records. What its user
data does is played by the test once the stack exists: the Greengrass installer
registers the thing in the stack's thing group, then the nucleus runs. Here the nucleus
is edgekit's device runtime, started with the image's ``python3`` (the project venv's,
first on PATH) and with an MQTT broker standing in for IoT Core: devices publish to it
over MQTT, the notebook side subscribes over MQTT 5 websockets signed with SigV4.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from edgekit.local import endpoints as local_endpoints
from edgekit.local import process
from edgekit.local.endpoints import LocalEndpoints
from edgekit.local.mqtt import Broker

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
VENV_BIN = Path(sys.executable).parent
STACK = "edgekit-device"
RESULTS_WANTED = 5
COMPONENTS = ("com.qualityinspection.model", "com.qualityinspection.agent", "com.qualityinspection")


@dataclass
class AwsWorld:
    """The local endpoints, an "IoT Core" broker, and the environment of an AWS user."""

    home: Path
    endpoints: LocalEndpoints
    broker: Broker
    user_env: dict[str, str]
    run_dir: Path
    things: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def aws_user_env(endpoints: LocalEndpoints, tmp: Path) -> dict[str, str]:
    """This process's environment without AWS or edgekit settings, plus what an AWS user has:
    credentials, a region, and the standard endpoint variables pointing at the local servers.

    No ``EDGEKIT_LOCAL_HOME`` or ``EDGEKIT_MQTT_ENDPOINT``: the aws path must not need them.
    The per-user state folder (signing keys) is a throwaway one, found the default way.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EDGEKIT_"))}
    env.update({k: v for k, v in endpoints.env().items() if k.startswith("AWS_")})
    env.update(
        {
            "AWS_CONFIG_FILE": str(tmp / "aws-config-absent"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "aws-credentials-absent"),
            "XDG_STATE_HOME": str(tmp / "user-state"),
            "EDGEKIT_QUIET": "1",
        }
    )
    return env


@pytest.fixture
def world(tmp_path: Path) -> Iterator[AwsWorld]:
    """Everything started here is stopped at the end: devices (removed with their roots and
    core device records), the endpoints, the broker; no process of the test may survive."""
    from edgekit.local.device import remove_device

    home = tmp_path / "endpoints"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    started = time.monotonic()
    broker = Broker(websocket_port=0).start()
    w: AwsWorld | None = None
    try:
        endpoints = local_endpoints.up(home)
        user_env = aws_user_env(endpoints, tmp_path)
        # moto names a fake IoT Core host: the notebooks' results and health subscriptions
        # (notebook 03 proves inspection) go to the stand-in broker's websocket listener.
        user_env["EDGEKIT_IOT_ENDPOINT"] = f"ws://127.0.0.1:{broker.websocket_port}"
        w = AwsWorld(home, endpoints, broker, user_env, run_dir)
        w.timings["endpoints up"] = time.monotonic() - started
        yield w
    finally:
        problems = []
        for thing in w.things if w is not None else []:
            try:
                remove_device(thing, home, purge=True)
            except Exception as exc:  # keep tearing down; report at the end
                problems.append(f"remove_device({thing}): {exc}")
        local_endpoints.down(home)
        broker.stop()
        left = processes_under(tmp_path)
        assert not left, f"processes left running: {left}"
        assert not problems, problems


def processes_under(folder: Path, grace: float = 5.0) -> list[str]:
    """Command lines of live processes that mention ``folder`` (servers, devices, components)."""
    needle = str(folder).encode()
    deadline = time.monotonic() + grace
    while True:
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
                zombie = ") Z " in (proc / "stat").read_text()
            except OSError:
                continue
            if needle in cmdline and not zombie:
                command = cmdline.replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{proc.name}: {command[:200]}")
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


# --------------------------------------------------------------------------------------
# The EC2 instance's part


def _local_client(service: str, endpoints: LocalEndpoints) -> Any:
    """A client for the test's own stand-in work (what the instance's installer does)."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoints.url_for(service),
        region_name=endpoints.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def start_core_device(w: AwsWorld, thing: str, group: str) -> None:
    """What the instance's user data does once it boots: the Greengrass installer registers
    ``thing`` in ``group`` (``--provision true --thing-group-name``), then the nucleus runs.

    The nucleus is edgekit's device runtime, recorded as ``device-<thing>`` in the home so
    ``edgekit local down`` stops it too. Its PATH starts with the venv's ``bin``: the
    components' ``PythonExecutable`` is ``python3`` on AWS, and on this stand-in image that
    ``python3`` has edgekit's dependencies installed.
    """
    from edgekit.local.device.manager import process_name, register_thing
    from edgekit.local.home import HomeLayout

    register_thing(thing, group, _local_client("iot", w.endpoints))
    w.things.append(thing)
    layout = HomeLayout.of(w.home)
    root = layout.device_root(thing)
    root.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in w.endpoints.env().items() if k.startswith("AWS_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    env["EDGEKIT_LOCAL_HOME"] = str(root / "unused-edgekit-home")  # not the test session's
    argv = process.python_argv(
        "edgekit.local.device",
        "--thing", thing,
        "--root", str(root),
        "--greengrass-endpoint", w.endpoints.greengrass_url,
        "--aws-endpoint", w.endpoints.moto_url,
        "--mqtt", w.broker.endpoint,
        "--region", w.endpoints.region,
        "--account-id", w.endpoints.account_id,
        "--poll", "0.5",
    )  # fmt: skip
    greengrass = _local_client("greengrassv2", w.endpoints)

    def reported() -> bool:
        try:
            greengrass.get_core_device(coreDeviceThingName=thing)
        except Exception:
            return False
        return True

    process.start_process(w.home, process_name(thing), argv, env=env, ready=reported, timeout=60)


class InstanceBoot(threading.Thread):
    """Waits for the device stack to exist, then boots its "instance" (start_core_device)."""

    def __init__(self, w: AwsWorld, timeout: float = 120.0) -> None:
        super().__init__(name="ec2-instance-boot", daemon=True)
        self.w = w
        self.timeout = timeout
        self.error: BaseException | None = None
        self.thing: str | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            cfn = _local_client("cloudformation", self.w.endpoints)
            deadline = time.monotonic() + self.timeout
            while not self.stop.is_set():
                outputs = self._outputs(cfn)
                if outputs is not None:
                    self.thing = outputs["ThingName"]
                    start_core_device(self.w, self.thing, outputs["ThingGroupName"])
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"stack {STACK} was not created in {self.timeout} s")
                self.stop.wait(0.2)
        except BaseException as exc:  # re-raised by the test
            self.error = exc

    @staticmethod
    def _outputs(cfn: Any) -> dict[str, str] | None:
        try:
            stacks = cfn.describe_stacks(StackName=STACK)["Stacks"]
        except Exception as exc:
            if "does not exist" in str(exc):
                return None
            raise
        if not stacks or stacks[0]["StackStatus"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            return None
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs") or []}
        return outputs if {"ThingName", "ThingGroupName"} <= outputs.keys() else None


# --------------------------------------------------------------------------------------
# Running a notebook as an AWS user would (papermill in its own process)


def run_notebook(w: AwsWorld, name: str, **parameters: Any) -> dict[str, Any]:
    """Execute ``notebooks/<name>.ipynb`` with papermill in a process with the AWS user's
    environment; the executed notebook as JSON. A failed cell fails the test with its
    error and the notebook's outputs."""
    import subprocess

    params = {"backend": "aws", "output_dir": str(w.run_dir), "interactive": False, **parameters}
    executed = w.run_dir / f"{name}.ipynb"
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable, "-m", "papermill", str(NOTEBOOKS / f"{name}.ipynb"), str(executed),
            "-y", json.dumps(params), "--cwd", str(w.run_dir), "-k", "python3",
            "--no-progress-bar",
        ],
        env=w.user_env,
        capture_output=True,
        text=True,
        timeout=240,
    )  # fmt: skip
    w.timings[name] = time.monotonic() - started
    notebook = json.loads(executed.read_text()) if executed.is_file() else {}
    if proc.returncode != 0:
        pytest.fail(
            f"{name} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}\n"
            f"--- outputs ---\n{notebook_text(notebook)[-6000:]}"
        )
    return notebook


def notebook_text(notebook: dict[str, Any]) -> str:
    """Every text output of an executed notebook (streams, results, errors)."""
    parts = []
    for cell in notebook.get("cells", []):
        for out in cell.get("outputs", []):
            if "text" in out:
                parts.append("".join(out["text"]))
            for mime in ("text/plain", "text/markdown"):
                if mime in out.get("data", {}):
                    parts.append("".join(out["data"][mime]))
            if out.get("output_type") == "error":
                parts.append(f"{out.get('ename')}: {out.get('evalue')}")
    return "\n".join(parts)


def device_diagnostics(w: AwsWorld, thing: str, lines: int = 25) -> str:
    """The last lines of the device runtime's log and of each component's log."""
    from edgekit.local.device import device_logs

    parts = []
    for component in (None, *COMPONENTS):
        try:
            parts.append(
                f"--- {component or 'greengrass'}.log\n"
                + device_logs(thing, component, w.home, tail=lines)
            )
        except Exception as exc:
            parts.append(f"--- {component or 'greengrass'}.log: {exc}")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------
# The test


def test_notebooks_01_to_03_on_the_aws_backend(
    world: AwsWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world
    started = time.monotonic()

    # 01: the stack (moto runs CloudFormation); the "instance" boots once it exists, and
    # provision() waits for it as a HEALTHY core device in the thing group, as on AWS.
    # 02 (compile and package, no AWS calls) runs meanwhile, as a user would while the
    # instance boots; it needs nothing from 01.
    boot = InstanceBoot(w)
    boot.start()
    with ThreadPoolExecutor(1, thread_name_prefix="notebook-02") as pool:
        nb02 = pool.submit(run_notebook, w, "02_compile_and_package", latency_iterations=3)
        try:
            nb01 = run_notebook(w, "01_provision_device", device_count=1)
        finally:
            boot.stop.set()
            boot.join(30)
        nb02.result()  # re-raises its failure
    assert boot.error is None, f"booting the stand-in instance failed: {boot.error!r}"
    text01 = notebook_text(nb01)
    assert "backend=aws" in text01
    assert "AWS account 123456789012" in text01  # sts.get_caller_identity went to moto

    provisioned = json.loads((w.run_dir / "provisioned.json").read_text())
    assert provisioned["backend"] == "aws"
    assert provisioned["stack_name"] == STACK
    outputs = provisioned["outputs"]
    for key in ("ThingName", "ThingGroupName", "ThingGroupArn", "ArtifactBucket", "InstanceId"):
        assert outputs.get(key), f"stack output {key} missing: {outputs}"
    thing = outputs["ThingName"]
    assert provisioned["things"] == [thing] == [boot.thing]
    assert provisioned["bucket"] == outputs["ArtifactBucket"]

    cfn = _local_client("cloudformation", w.endpoints)
    stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    ec2 = _local_client("ec2", w.endpoints)
    reservations = ec2.describe_instances(InstanceIds=[outputs["InstanceId"]])["Reservations"]
    assert reservations, "the stack's EC2 instance is not recorded in moto"

    assert "backend=aws" in notebook_text(nb02.result())
    package = json.loads((w.run_dir / "model_package.json").read_text())
    assert Path(package["package"]).is_file()

    # 03: upload, register in the model registry, publish, deploy to the thing group
    # Every image goes to CaptureData: the upload below must not hang on how sure the
    # shipped model is about the sample images (the default band [0.2, 0.5] may catch none).
    nb03 = run_notebook(
        w, "03_deploy_components", inference_interval=0.2, timeout=150, capture_band=[0.0, 1.0]
    )
    record = json.loads((w.run_dir / "deployment.json").read_text())
    assert record["backend"] == "aws"
    assert record["status"] == "SUCCEEDED", (
        notebook_text(nb03)[-3000:] + "\n" + device_diagnostics(w, thing)
    )
    assert record["thing_group"] == outputs["ThingGroupName"]
    assert [d["thing"] for d in record["devices"]] == [thing]
    assert record["devices"][0]["status"] == "SUCCEEDED"
    assert record["model"] and record["model"]["approval_status"] == "Approved"

    # Nothing local (endpoints, devices) was started for the AWS user: their edgekit
    # state folder holds only the signing keys of notebook 02.
    user_state = Path(w.user_env["XDG_STATE_HOME"]) / "edgekit"
    assert sorted(p.name for p in user_state.iterdir()) == ["keys"], list(user_state.iterdir())

    greengrass = _local_client("greengrassv2", w.endpoints)
    deployment = greengrass.get_deployment(deploymentId=record["deployment_id"])
    assert deployment["targetArn"] == outputs["ThingGroupArn"]
    effective = greengrass.list_effective_deployments(coreDeviceThingName=thing)
    statuses = {
        d["deploymentId"]: d["coreDeviceExecutionStatus"] for d in effective["effectiveDeployments"]
    }
    assert statuses.get(record["deployment_id"]) == "SUCCEEDED", statuses
    installed = {
        c["componentName"]: c
        for c in greengrass.list_installed_components(coreDeviceThingName=thing)[
            "installedComponents"
        ]
    }
    for name, version in record["components"].items():
        assert installed[name]["componentVersion"] == version
        assert installed[name]["lifecycleState"] in ("RUNNING", "FINISHED"), installed[name]

    # What the aws profile published: artifacts in the stack's bucket, python3 on the device.
    for name, version in record["components"].items():
        arn = f"arn:aws:greengrass:us-east-1:123456789012:components:{name}:versions:{version}"
        recipe = json.loads(greengrass.get_component(arn=arn, recipeOutputFormat="JSON")["recipe"])
        for artifact in recipe["Manifests"][0].get("Artifacts", []):
            assert artifact["URI"].startswith(f"s3://{outputs['ArtifactBucket']}/"), artifact
        python = recipe["ComponentConfiguration"]["DefaultConfiguration"].get("PythonExecutable")
        if python is not None:
            assert python == "python3", (name, python)
    sagemaker = _local_client("sagemaker", w.endpoints)
    registered = sagemaker.list_model_packages(ModelPackageGroupName="tag-scratch-detector")
    assert registered["ModelPackageSummaryList"], "no model version registered"

    # Results: the aws transport (MQTT 5 over websockets, SigV4 handshake) in this process,
    # with the AWS user's environment; moto names a fake IoT Core host, so the transport is
    # pointed at the stand-in broker's websocket listener, without TLS.
    for key in [k for k in os.environ if k.startswith(("AWS_", "EDGEKIT_"))]:
        monkeypatch.delenv(key)
    for key, value in w.user_env.items():
        if key.startswith(("AWS_", "EDGEKIT_", "XDG_STATE_HOME")):
            monkeypatch.setenv(key, value)
    from edgekit import clients
    from edgekit.local.endpoints import ENDPOINT_ENV
    from edgekit.results import collect, subscriber_for
    from edgekit.results.aws import IotCoreSubscriber, credentials_provider, iot_data_endpoint
    from edgekit.schemas import validate_result
    from edgekit.settings import Settings

    monkeypatch.setattr(clients, "_sessions", {})  # no session cached under another env
    settings = Settings.from_env(backend="aws")
    assert isinstance(clients.resolver(settings), clients.AwsResolver)
    # The clients the notebooks made: the standard endpoint variables honoured, and
    # botocore's parameter validation on (so every call they made passed it).
    for service in ENDPOINT_ENV:
        client = clients.client(service, settings)
        assert client.meta.config.parameter_validation is True, service
        assert client.meta.endpoint_url == w.endpoints.url_for(service), service

    # The aws transport as the factory makes it: IoT Core's data endpoint, 443, TLS; with
    # EDGEKIT_IOT_ENDPOINT (as the notebooks had it), the stand-in broker, without TLS.
    with monkeypatch.context() as m:
        m.delenv("EDGEKIT_IOT_ENDPOINT")
        factory_made = subscriber_for(settings)
    assert isinstance(factory_made, IotCoreSubscriber)
    assert factory_made.host.endswith(".amazonaws.com"), factory_made.host
    assert (factory_made.port, factory_made.tls) == (443, True)
    redirected = subscriber_for(settings)
    assert (redirected.host, redirected.port, redirected.tls) == (
        "127.0.0.1",
        w.broker.websocket_port,
        False,
    )
    discovered = iot_data_endpoint(clients.client("iot", settings))
    assert "-ats.iot.us-east-1." in discovered, discovered
    subscriber = IotCoreSubscriber(
        "127.0.0.1",
        settings.region,
        credentials_provider(clients.session(settings)),
        port=w.broker.websocket_port,
        tls=False,
    )
    collect_started = time.monotonic()
    try:
        table = collect(settings, max_messages=RESULTS_WANTED, timeout=45, subscriber=subscriber)
    finally:
        subscriber.close()
    w.timings["collect"] = time.monotonic() - collect_started
    assert len(table) >= RESULTS_WANTED, (
        f"{len(table)} results, invalid: {[i.reason for i in table.invalid][:3]}\n"
        + device_diagnostics(w, thing)
    )
    for result in table.results:
        validate_result(result)
        assert result["thing_name"] == thing
    query = w.broker.websocket_handshakes()[-1].query_string
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in query, query
    assert "%2Fus-east-1%2Fiotdevicegateway%2Faws4_request" in query, query

    # The agent's CaptureData uploads (EDGEKIT_BACKEND=aws on the device, credentials and
    # endpoint from the environment, as from the token exchange service) land in the bucket.
    s3 = _local_client("s3", w.endpoints)
    deadline = time.monotonic() + 30
    while True:
        listing = s3.list_objects_v2(Bucket=outputs["ArtifactBucket"], Prefix="captures/")
        captures = [o["Key"] for o in listing.get("Contents", [])]
        if captures or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert any(k.endswith("/capture.json") for k in captures), (
        f"no capture uploaded to s3://{outputs['ArtifactBucket']}/captures/: {captures}\n"
        + device_diagnostics(w, thing)
    )

    w.timings["total"] = time.monotonic() - started
    print("timings (s):", json.dumps({k: round(v, 1) for k, v in w.timings.items()}))
