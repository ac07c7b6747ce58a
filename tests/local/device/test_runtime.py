"""Integration tests of the device runtime against the real control-plane emulator and moto.

Runtimes run in-process (threads, fast polling) except where the point is a
separate process: the runtime killed with SIGKILL mid-deployment, and the
`edgekit local device` manager/CLI on top of `edgekit local up`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REGION = "us-east-1"
ACCOUNT = "123456789012"
FINAL = ("SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "CANCELED", "COMPLETED")


@dataclass
class Cloud:
    moto_url: str
    greengrass_url: str
    s3: Any
    iot: Any
    gg: Any
    bucket: str


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, moto_url: str) -> Iterator[Cloud]:
    import boto3

    from edgekit.local.greengrass.server import GreengrassServer

    server = GreengrassServer(tmp_path_factory.mktemp("gg"), moto_url, REGION).start()
    kw = {"region_name": REGION, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    s3 = boto3.client("s3", endpoint_url=moto_url, **kw)
    bucket = f"edgekit-device-tests-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    try:
        yield Cloud(
            moto_url,
            server.url,
            s3,
            boto3.client("iot", endpoint_url=moto_url, **kw),
            boto3.client("greengrassv2", endpoint_url=server.url, **kw),
            bucket,
        )
    finally:
        server.stop()


def uniq(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def thing_arn(thing: str) -> str:
    return f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/{thing}"


def group_arn(group: str) -> str:
    return f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/{group}"


def publish(
    cloud: Cloud,
    name: str,
    version: str,
    lifecycle: dict[str, Any],
    *,
    deps: dict[str, str] | None = None,
    defaults: dict[str, Any] | None = None,
    artifacts: list[dict[str, Any]] | None = None,
) -> None:
    recipe: dict[str, Any] = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": version,
        "ComponentPublisher": "edgekit tests",
        "Manifests": [
            {"Platform": {"os": "linux"}, "Lifecycle": lifecycle, "Artifacts": artifacts or []}
        ],
    }
    if deps:
        recipe["ComponentDependencies"] = {
            d: {"VersionRequirement": r, "DependencyType": "HARD"} for d, r in deps.items()
        }
    if defaults is not None:
        recipe["ComponentConfiguration"] = {"DefaultConfiguration": defaults}
    cloud.gg.create_component_version(inlineRecipe=json.dumps(recipe).encode())


def deploy(
    cloud: Cloud,
    target: str,
    components: dict[str, Any],
    policy: str = "ROLLBACK",
) -> str:
    comps = {}
    for name, spec in components.items():
        if isinstance(spec, str):
            comps[name] = {"componentVersion": spec}
        else:
            comps[name] = spec
    return cloud.gg.create_deployment(
        targetArn=target,
        deploymentName=uniq("dep-"),
        components=comps,
        deploymentPolicies={"failureHandlingPolicy": policy},
    )["deploymentId"]


def wait_deployment(cloud: Cloud, thing: str, deployment_id: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    row: dict[str, Any] = {}
    while time.monotonic() < deadline:
        rows = cloud.gg.list_effective_deployments(coreDeviceThingName=thing).get(
            "effectiveDeployments", []
        )
        row = next((r for r in rows if r["deploymentId"] == deployment_id), {})
        if row.get("coreDeviceExecutionStatus") in FINAL:
            return row
        time.sleep(0.05)
    raise AssertionError(f"deployment {deployment_id} not final after {timeout} s: {row}")


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def read(path: Path) -> str:
    return path.read_text().strip() if path.exists() else ""


def zip_bytes(members: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def make_device(cloud: Cloud, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    from edgekit.local.device.runtime import DeviceRuntime

    started: list[DeviceRuntime] = []

    def make(
        thing: str | None = None,
        group: str | None = None,
        root: Path | None = None,
        mqtt: str | None = None,
    ):
        thing = thing or uniq("thing-")
        exists = cloud.iot.exceptions.ResourceAlreadyExistsException
        with contextlib.suppress(exists):
            cloud.iot.create_thing(thingName=thing)
        if group:
            with contextlib.suppress(exists):
                cloud.iot.create_thing_group(thingGroupName=group)
            cloud.iot.add_thing_to_thing_group(thingGroupName=group, thingName=thing)
        runtime = DeviceRuntime(
            thing,
            root or tmp_path / thing,
            cloud.greengrass_url,
            cloud.moto_url,
            mqtt,
            REGION,
            poll=0.1,
            settle=0.3,
            group_refresh=0.5,
        ).start()
        started.append(runtime)
        return runtime

    yield make
    for runtime in started:
        runtime.stop()


# --- the happy path ------------------------------------------------------------------------


def test_two_component_deployment_with_zip_artifact_and_interpolation(
    cloud: Cloud, make_device: Callable[..., Any]
) -> None:
    lib, app = uniq("com.test.Lib"), uniq("com.test.App")
    key = f"{lib}/libdata.zip"
    cloud.s3.put_object(
        Bucket=cloud.bucket, Key=key, Body=zip_bytes({"data/greeting.txt": "hello from zip\n"})
    )
    publish(
        cloud,
        lib,
        "1.0.0",
        {
            "Run": "cat {artifacts:decompressedPath}/libdata/data/greeting.txt > "
            "{work:path}/lib-out.txt; "
            'echo "$AWS_IOT_THING_NAME|$SVCUID|$AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT'
            '|$AWS_REGION|$AWS_DEFAULT_REGION|$EDGEKIT_MQTT_ENDPOINT|$PWD" > {work:path}/env.txt; '
            "exec sleep 60"
        },
        defaults={"port": "8080"},
        artifacts=[
            {
                "URI": f"s3://{cloud.bucket}/{key}",
                "Unarchive": "ZIP",
                "Permission": {"Read": "ALL"},
            }
        ],
    )
    publish(
        cloud,
        app,
        "1.0.0",
        {
            "Setenv": {"GREETING": "{configuration:/msg}"},
            "Install": "echo installed >> {work:path}/installed.txt",
            "Run": 'echo "$GREETING {' + lib + ':configuration:/port} {iot:thingName}" > '
            "{work:path}/app-out.txt; cp {"
            + lib
            + ":artifacts:decompressedPath}/libdata/data/greeting.txt {work:path}/copied.txt; "
            "exec sleep 60",
        },
        deps={lib: "^1.0.0"},
        defaults={"msg": "default"},
    )
    device = make_device(mqtt="127.0.0.1:9")
    thing = device.thing_name
    started = time.monotonic()
    dep = deploy(
        cloud,
        thing_arn(thing),
        {app: {"componentVersion": "1.0.0", "configurationUpdate": {"merge": '{"msg":"merged"}'}}},
    )
    row = wait_deployment(cloud, thing, dep)
    assert row["coreDeviceExecutionStatus"] == "SUCCEEDED", row
    assert time.monotonic() - started < 10
    assert device.states() == {lib: "RUNNING", app: "RUNNING"}

    root = device.layout.root
    work_app, work_lib = root / "work" / app, root / "work" / lib
    wait_until(lambda: read(work_app / "copied.txt"), what="app output")
    assert read(work_lib / "lib-out.txt") == "hello from zip"
    assert read(work_app / "app-out.txt") == f"merged 8080 {thing}"
    assert read(work_app / "copied.txt") == "hello from zip"
    assert read(work_app / "installed.txt") == "installed"
    env = read(work_lib / "env.txt").split("|")
    assert env[0] == thing and len(env[1]) >= 16
    assert env[2] == str(device.layout.socket_path)
    assert env[3:6] == [REGION, REGION, "127.0.0.1:9"]
    assert env[6] == str(work_lib)
    unpacked = root / "packages" / "artifacts-unarchived" / lib / "1.0.0" / "libdata"
    assert (unpacked / "data" / "greeting.txt").stat().st_mode & 0o444 == 0o444
    assert (root / "packages" / "artifacts" / lib / "1.0.0" / "libdata.zip").is_file()
    assert (root / "logs" / f"{app}.log").is_file() and (root / "logs" / "greengrass.log").is_file()

    core = cloud.gg.get_core_device(coreDeviceThingName=thing)
    assert core["status"] == "HEALTHY" and core["coreVersion"]
    installed = cloud.gg.list_installed_components(coreDeviceThingName=thing)["installedComponents"]
    by_name = {c["componentName"]: c for c in installed}
    assert by_name[app]["lifecycleState"] == "RUNNING" and by_name[app]["isRoot"]
    # The token authenticates the component (IpcHost contract).
    assert device.authenticate(env[1]) == lib
    assert device.get_configuration(app, ["msg"]) == "merged"


def test_group_and_thing_deployments_combine(cloud: Cloud, make_device: Callable[..., Any]) -> None:
    a, b = uniq("com.test.A"), uniq("com.test.B")
    for name in (a, b):
        for version in ("1.0.0", "1.1.0"):
            publish(cloud, name, version, {"Run": f"echo {version} > {{work:path}}/v.txt"})
    group = uniq("group-")
    device = make_device(group=group)
    thing = device.thing_name
    d1 = deploy(cloud, group_arn(group), {a: "1.0.0", b: "1.0.0"})
    assert wait_deployment(cloud, thing, d1)["coreDeviceExecutionStatus"] == "SUCCEEDED"
    d2 = deploy(cloud, thing_arn(thing), {b: "1.1.0"})
    assert wait_deployment(cloud, thing, d2)["coreDeviceExecutionStatus"] == "SUCCEEDED"
    assert {n: s.spec.version for n, s in device.services.items()} == {a: "1.0.0", b: "1.1.0"}
    assert device.states() == {a: "FINISHED", b: "FINISHED"}
    # Leaving the group removes the group's components, keeps the thing's.
    cloud.iot.remove_thing_from_thing_group(thingGroupName=group, thingName=thing)
    assert device.wait_for(lambda rt: set(rt.services) == {b}, timeout=15)


IPC_SCRIPT = """
import datetime, json, sys
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

client = GreengrassCoreIPCClientV2()
config = client.get_configuration(key_path=[]).value
client.update_configuration(
    key_path=["seen"], value_to_merge={"by": "component"},
    timestamp=datetime.datetime.now(datetime.timezone.utc),
)
client.update_state(state="RUNNING")
with open(sys.argv[1], "w") as fh:
    json.dump(config, fh)
client.close()
"""


def test_component_talks_to_the_runtime_over_ipc(
    cloud: Cloud, make_device: Callable[..., Any]
) -> None:
    pytest.importorskip("awsiot.greengrasscoreipc.clientv2")
    import sys

    comp = uniq("com.test.Ipc")
    key = f"{comp}/ipc_check.py"
    cloud.s3.put_object(Bucket=cloud.bucket, Key=key, Body=IPC_SCRIPT.encode())
    publish(
        cloud,
        comp,
        "1.0.0",
        {"Run": f"{sys.executable} {{artifacts:path}}/ipc_check.py {{work:path}}/config.json"},
        defaults={"msg": "over ipc", "seen": {}},
        artifacts=[{"URI": f"s3://{cloud.bucket}/{key}"}],
    )
    device = make_device()
    if device._ipc_server is None:
        pytest.skip("the IPC server did not start (edgekit.local.ipc missing)")
    thing = device.thing_name
    d = deploy(cloud, thing_arn(thing), {comp: "1.0.0"})
    assert wait_deployment(cloud, thing, d)["coreDeviceExecutionStatus"] == "SUCCEEDED"
    out = device.layout.root / "work" / comp / "config.json"
    wait_until(lambda: out.exists() and out.read_text(), timeout=15, what="ipc output")
    assert json.loads(out.read_text()) == {"msg": "over ipc", "seen": {}}
    assert device.get_configuration(comp, ["seen"]) == {"by": "component"}
    saved = json.loads(device.layout.state_file.read_text())
    assert saved["components"][comp]["configuration"]["seen"] == {"by": "component"}
    # config.json is written before the script closes its client and exits: wait for the exit.
    assert device.wait_for(lambda rt: rt.states().get(comp) == "FINISHED", 10)


def test_dependency_update_restarts_hard_dependents_only(
    cloud: Cloud, make_device: Callable[..., Any]
) -> None:
    lib, hard, soft = uniq("com.test.DLib"), uniq("com.test.Hard"), uniq("com.test.Soft")
    for version in ("1.0.0", "1.1.0"):
        publish(
            cloud, lib, version, {"Run": f"echo {version} > {{work:path}}/v.txt; exec sleep 60"}
        )
    run = {"Run": "echo start >> {work:path}/starts.txt; exec sleep 60"}
    publish(cloud, hard, "1.0.0", run, deps={lib: "^1.0.0"})
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": soft,
        "ComponentVersion": "1.0.0",
        "ComponentDependencies": {lib: {"VersionRequirement": "^1.0.0", "DependencyType": "SOFT"}},
        "Manifests": [{"Lifecycle": run}],
    }
    cloud.gg.create_component_version(inlineRecipe=json.dumps(recipe).encode())
    device = make_device()
    thing = device.thing_name
    work = device.layout.root / "work"
    d1 = deploy(cloud, thing_arn(thing), {hard: "1.0.0", soft: "1.0.0", lib: "1.0.0"})
    assert wait_deployment(cloud, thing, d1)["coreDeviceExecutionStatus"] == "SUCCEEDED"
    wait_until(lambda: read(work / soft / "starts.txt") and read(work / hard / "starts.txt"))

    d2 = deploy(cloud, thing_arn(thing), {hard: "1.0.0", soft: "1.0.0", lib: "1.1.0"})
    assert wait_deployment(cloud, thing, d2)["coreDeviceExecutionStatus"] == "SUCCEEDED"
    wait_until(lambda: read(work / lib / "v.txt") == "1.1.0", what="lib 1.1.0")
    wait_until(lambda: read(work / hard / "starts.txt").count("start") == 2, what="hard restart")
    assert read(work / soft / "starts.txt").count("start") == 1

    # Only the roots of the deployment and what they need stay.
    d3 = deploy(cloud, thing_arn(thing), {soft: "1.0.0"})
    assert wait_deployment(cloud, thing, d3)["coreDeviceExecutionStatus"] == "SUCCEEDED"
    assert device.states() == {soft: "RUNNING", lib: "RUNNING"}


# --- configuration -------------------------------------------------------------------------


def test_configuration_merge_reset_and_restarts(
    cloud: Cloud, make_device: Callable[..., Any]
) -> None:
    comp = uniq("com.test.Cfg")
    defaults = {"msg": "default", "other": {"a": 1}}
    publish(
        cloud,
        comp,
        "1.0.0",
        {
            "Run": "echo start >> {work:path}/starts.txt; echo '{configuration:/msg}' > "
            "{work:path}/msg.txt; exec sleep 60"
        },
        defaults=defaults,
    )
    device = make_device()
    thing = device.thing_name
    heard: list[tuple[str, list[str]]] = []
    device.add_configuration_listener(lambda c, p: heard.append((c, p)))
    work = device.layout.root / "work" / comp

    def step(update: dict[str, Any]) -> None:
        components = {comp: {"componentVersion": "1.0.0", "configurationUpdate": update}}
        dep = deploy(cloud, thing_arn(thing), components)
        assert wait_deployment(cloud, thing, dep)["coreDeviceExecutionStatus"] == "SUCCEEDED"

    def config() -> dict[str, Any]:
        return device.get_configuration(comp, [])

    step({"merge": json.dumps({"msg": "one", "other": {"b": 2}})})
    assert config() == {"msg": "one", "other": {"a": 1, "b": 2}}
    wait_until(lambda: read(work / "msg.txt") == "one", what="msg one")
    assert read(work / "starts.txt").count("start") == 1

    # A change the lifecycle does not interpolate: no restart, subscribers are told.
    step({"merge": json.dumps({"other": {"c": 3}})})
    assert config() == {"msg": "one", "other": {"a": 1, "b": 2, "c": 3}}
    assert (comp, ["other", "c"]) in heard
    time.sleep(0.3)
    assert read(work / "starts.txt").count("start") == 1

    # Reset before merge: /msg back to its default (interpolated -> restart), /other/b removed.
    step({"reset": ["/msg", "/other/b"], "merge": json.dumps({"other": {"d": 4}})})
    assert config() == {"msg": "default", "other": {"a": 1, "c": 3, "d": 4}}
    wait_until(lambda: read(work / "msg.txt") == "default", what="msg default")
    assert read(work / "starts.txt").count("start") == 2

    # "" resets everything to DefaultConfiguration.
    step({"reset": [""]})
    assert config() == defaults
    saved = json.loads((device.layout.state_file).read_text())
    assert saved["components"][comp]["configuration"] == defaults


# --- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["ROLLBACK", "DO_NOTHING"])
def test_failing_run_is_restarted_then_broken_and_rolled_back(
    cloud: Cloud, make_device: Callable[..., Any], policy: str
) -> None:
    comp = uniq("com.test.Svc")
    publish(cloud, comp, "1.0.0", {"Run": "echo v1 > {work:path}/version.txt; exec sleep 60"})
    publish(
        cloud,
        comp,
        "2.0.0",
        {
            "Run": "echo attempt >> {work:path}/attempts.txt; "
            'for i in 1 2 3 4 5; do echo "line $i of v2"; done; echo "fatal: boom" >&2; exit 3'
        },
    )
    device = make_device()
    thing = device.thing_name
    work = device.layout.root / "work" / comp
    d1 = deploy(cloud, thing_arn(thing), {comp: "1.0.0"})
    assert wait_deployment(cloud, thing, d1)["coreDeviceExecutionStatus"] == "SUCCEEDED"
    (work / "version.txt").unlink()

    d2 = deploy(cloud, thing_arn(thing), {comp: "2.0.0"}, policy=policy)
    row = wait_deployment(cloud, thing, d2)
    assert row["coreDeviceExecutionStatus"] == "FAILED"
    reason = row.get("reason", "")
    assert f"{comp} 2.0.0 is BROKEN" in reason
    assert "exited with code 3" in reason
    assert "fatal: boom" in reason and "line 5 of v2" in reason
    assert "COMPONENT_BROKEN" in row.get("statusDetails", {}).get("errorStack", [])
    assert read(work / "attempts.txt").count("attempt") == 3  # ERRORED 3 times -> BROKEN

    if policy == "ROLLBACK":
        assert "rolled back" in reason
        svc = device.services[comp]
        assert svc.spec.version == "1.0.0"
        assert device.wait_for(lambda rt: rt.states().get(comp) == "RUNNING")
        wait_until(lambda: read(work / "version.txt") == "v1", what="v1 running again")
        saved = json.loads(device.layout.state_file.read_text())
        assert saved["components"][comp]["version"] == "1.0.0"
        core = cloud.gg.get_core_device(coreDeviceThingName=thing)
        assert core["status"] == "HEALTHY"
    else:
        assert device.services[comp].spec.version == "2.0.0"
        assert device.states()[comp] == "BROKEN"
        assert not (work / "version.txt").exists()
        assert cloud.gg.get_core_device(coreDeviceThingName=thing)["status"] == "UNHEALTHY"


def test_bad_digest_and_missing_artifact_fail_without_changes(
    cloud: Cloud, make_device: Callable[..., Any]
) -> None:
    keep = uniq("com.test.Keep")
    publish(cloud, keep, "1.0.0", {"Run": "exec sleep 60"})
    tampered, missing = uniq("com.test.Tampered"), uniq("com.test.Missing")
    key_t, key_m = f"{tampered}/blob.bin", f"{missing}/blob.bin"
    cloud.s3.put_object(Bucket=cloud.bucket, Key=key_t, Body=b"original")
    cloud.s3.put_object(Bucket=cloud.bucket, Key=key_m, Body=b"original")
    for name, key in ((tampered, key_t), (missing, key_m)):
        publish(
            cloud,
            name,
            "1.0.0",
            {"Run": "exec sleep 60"},
            artifacts=[{"URI": f"s3://{cloud.bucket}/{key}"}],
        )
    cloud.s3.put_object(Bucket=cloud.bucket, Key=key_t, Body=b"tampered!")
    cloud.s3.delete_object(Bucket=cloud.bucket, Key=key_m)

    device = make_device()
    thing = device.thing_name
    d0 = deploy(cloud, thing_arn(thing), {keep: "1.0.0"})
    assert wait_deployment(cloud, thing, d0)["coreDeviceExecutionStatus"] == "SUCCEEDED"

    d1 = deploy(cloud, thing_arn(thing), {keep: "1.0.0", tampered: "1.0.0"})
    row = wait_deployment(cloud, thing, d1)
    assert row["coreDeviceExecutionStatus"] == "FAILED"
    assert "SHA-256" in row["reason"] and tampered in row["reason"]
    assert "ARTIFACT_CHECKSUM_MISMATCH" in row["statusDetails"]["errorStack"]
    assert not list((device.layout.root / "packages" / "artifacts" / tampered).rglob("blob.bin"))

    d2 = deploy(cloud, thing_arn(thing), {keep: "1.0.0", missing: "1.0.0"})
    row = wait_deployment(cloud, thing, d2)
    assert row["coreDeviceExecutionStatus"] == "FAILED"
    assert missing in row["reason"] and "download" in row["reason"]
    assert device.states() == {keep: "RUNNING"}


def test_dependency_version_conflict_names_both_requirers(
    cloud: Cloud, make_device: Callable[..., Any]
) -> None:
    dep, a, b = uniq("com.test.Dep"), uniq("com.test.NeedsOne"), uniq("com.test.NeedsTwo")
    publish(cloud, dep, "1.0.0", {"Run": "true"})
    publish(cloud, dep, "2.0.0", {"Run": "true"})
    publish(cloud, a, "1.0.0", {"Run": "true"}, deps={dep: "^1.0.0"})
    publish(cloud, b, "1.0.0", {"Run": "true"}, deps={dep: "^2.0.0"})
    device = make_device()
    thing = device.thing_name
    d = deploy(cloud, thing_arn(thing), {a: "1.0.0", b: "1.0.0"})
    row = wait_deployment(cloud, thing, d)
    assert row["coreDeviceExecutionStatus"] == "FAILED"
    assert f"{a} 1.0.0 requires {dep} '^1.0.0'" in row["reason"]
    assert f"{b} 1.0.0 requires {dep} '^2.0.0'" in row["reason"]
    assert device.states() == {}


# --- a deployment the device cannot apply fails; the next one still runs (issue 12, item 6) ---


def _assert_failed_then_next_succeeds(
    cloud: Cloud, device: Any, failing: str, comp: str, keep: str
) -> dict[str, Any]:
    thing = device.thing_name
    row = wait_deployment(cloud, thing, failing)
    assert row["coreDeviceExecutionStatus"] == "FAILED", row
    assert comp in row.get("reason", ""), row
    assert device.states() == {keep: "RUNNING"}
    assert device.state.pending is None
    after = deploy(cloud, thing_arn(thing), {keep: "1.0.0"})
    assert wait_deployment(cloud, thing, after)["coreDeviceExecutionStatus"] == "SUCCEEDED"
    return row


def test_docker_artifact_fails_the_deployment_and_the_next_one_runs(
    cloud: Cloud, make_device: Callable[..., Any]
) -> None:
    keep, comp = uniq("com.test.Keep"), uniq("com.test.Docker")
    publish(cloud, keep, "1.0.0", {"Run": "exec sleep 60"})
    image = f"docker:{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/inspection:latest"
    publish(cloud, comp, "1.0.0", {"Run": "exec sleep 60"}, artifacts=[{"URI": image}])
    device = make_device()
    thing = device.thing_name
    d0 = deploy(cloud, thing_arn(thing), {keep: "1.0.0"})
    assert wait_deployment(cloud, thing, d0)["coreDeviceExecutionStatus"] == "SUCCEEDED"

    d1 = deploy(cloud, thing_arn(thing), {keep: "1.0.0", comp: "1.0.0"})
    row = _assert_failed_then_next_succeeds(cloud, device, d1, comp, keep)
    assert image in row["reason"]
    assert "does not pull Docker images" in row["reason"]
    assert "docs/compatibility.md" in row["reason"]
    assert "DOCKER_ERROR" in row["statusDetails"]["errorStack"]


def test_deeply_nested_merge_fails_the_deployment_and_the_next_one_runs(
    cloud: Cloud, make_device: Callable[..., Any]
) -> None:
    keep, comp = uniq("com.test.Keep"), uniq("com.test.Deep")
    publish(cloud, keep, "1.0.0", {"Run": "exec sleep 60"})
    publish(cloud, comp, "1.0.0", {"Run": "exec sleep 60"})
    device = make_device()
    thing = device.thing_name
    d0 = deploy(cloud, thing_arn(thing), {keep: "1.0.0"})
    assert wait_deployment(cloud, thing, d0)["coreDeviceExecutionStatus"] == "SUCCEEDED"

    deep: Any = "leaf"
    for _ in range(600):
        deep = {"k": deep}
    update = {"merge": json.dumps(deep)}
    # The control plane may refuse such a deployment at CreateDeployment; the device must not
    # rely on that: create a harmless one and hand the device the nested update in its place.
    real = device.cloud.deployments
    holder: dict[str, str] = {}

    def deployments(groups: list[str]) -> list[dict[str, Any]]:
        docs = real(groups)
        for doc in docs:
            if doc.get("deploymentId") == holder.get("id"):
                doc["components"][comp]["configurationUpdate"] = update
        return docs

    device.cloud.deployments = deployments
    holder["id"] = deploy(cloud, thing_arn(thing), {keep: "1.0.0", comp: "1.0.0"})
    row = _assert_failed_then_next_succeeds(cloud, device, holder["id"], comp, keep)
    assert "nested" in row["reason"] and "levels" in row["reason"]
    saved = json.loads(device.layout.state_file.read_text())
    assert comp not in saved["components"]
    # The same limit for a component's own UpdateConfiguration over IPC.
    from edgekit.local.ipc.modeled_errors import InvalidArgumentsError

    with pytest.raises(InvalidArgumentsError, match="levels deep"):
        device.update_configuration(keep, ["a"], deep, time.time())
    assert device.get_configuration(keep, []) == {}


@pytest.mark.parametrize("stage", ["plan", "switch"])
def test_unexpected_error_fails_only_that_deployment(
    cloud: Cloud, make_device: Callable[..., Any], stage: str
) -> None:
    keep, comp = uniq("com.test.Keep"), uniq("com.test.Bug")
    publish(cloud, keep, "1.0.0", {"Run": "exec sleep 60"})
    publish(cloud, comp, "1.0.0", {"Run": "exec sleep 60"})
    device = make_device()
    thing = device.thing_name
    d0 = deploy(cloud, thing_arn(thing), {keep: "1.0.0"})
    assert wait_deployment(cloud, thing, d0)["coreDeviceExecutionStatus"] == "SUCCEEDED"

    # An error no handler foresaw (a bug), once, while the deployment that adds comp runs.
    owner = device.planner if stage == "plan" else device
    real = getattr(owner, stage if stage == "plan" else "_switch")
    raised: list[bool] = []

    def buggy(plan_or_targets: Any, *args: Any, **kwargs: Any) -> Any:
        names = plan_or_targets.records if stage == "switch" else args[0]
        if comp in str(names) and not raised:
            raised.append(True)
            raise KeyError("injected bug")
        return real(plan_or_targets, *args, **kwargs)

    setattr(owner, stage if stage == "plan" else "_switch", buggy)
    d1 = deploy(cloud, thing_arn(thing), {keep: "1.0.0", comp: "1.0.0"})
    row = wait_deployment(cloud, thing, d1)
    assert row["coreDeviceExecutionStatus"] == "FAILED", row
    assert "KeyError: 'injected bug'" in row["reason"]
    assert f"edgekit local device logs {thing}" in row["reason"]
    assert "UNKNOWN_ERROR" in row["statusDetails"]["errorStack"]
    if stage == "switch":
        assert "rolled back" in row["reason"]
    assert device.state.pending is None
    assert device.states() == {keep: "RUNNING"}
    d2 = deploy(cloud, thing_arn(thing), {keep: "1.0.0", comp: "1.0.0"})
    assert wait_deployment(cloud, thing, d2)["coreDeviceExecutionStatus"] == "SUCCEEDED"
    assert device.wait_for(lambda rt: rt.states() == {keep: "RUNNING", comp: "RUNNING"}, 10)


@pytest.mark.parametrize("name", [".", ".."])
def test_dot_component_names_fail_the_deployment_and_the_next_one_runs(
    cloud: Cloud, make_device: Callable[..., Any], name: str
) -> None:
    keep = uniq("com.test.Keep")
    publish(cloud, keep, "1.0.0", {"Run": "exec sleep 60"})
    device = make_device()
    thing = device.thing_name
    d0 = deploy(cloud, thing_arn(thing), {keep: "1.0.0"})
    assert wait_deployment(cloud, thing, d0)["coreDeviceExecutionStatus"] == "SUCCEEDED"
    # The control plane should refuse such a name (issue 12, item 11); the device must not
    # rely on it: publish it if the control plane still takes it, and hand the device a
    # deployment that names the component "." or "..".
    with contextlib.suppress(cloud.gg.exceptions.ValidationException):
        publish(cloud, name, "1.0.0", {"Run": "echo escaped > {work:path}/escaped.txt"})
    real = device.cloud.deployments
    holder: dict[str, str] = {}

    def deployments(groups: list[str]) -> list[dict[str, Any]]:
        docs = real(groups)
        for doc in docs:
            if doc.get("deploymentId") == holder.get("id"):
                doc["components"][name] = {"componentVersion": "1.0.0"}
        return docs

    device.cloud.deployments = deployments
    holder["id"] = deploy(cloud, thing_arn(thing), {keep: "1.0.0"})
    row = _assert_failed_then_next_succeeds(cloud, device, holder["id"], repr(name), keep)
    assert "cannot be a folder name" in row["reason"]
    assert sorted(p.name for p in (device.layout.root / "work").iterdir()) == [keep]
    assert not list(device.layout.root.parent.rglob("escaped.txt"))


def test_failed_group_removal_does_not_block_later_deployments(
    cloud: Cloud, make_device: Callable[..., Any]
) -> None:
    a, b = uniq("com.test.A"), uniq("com.test.B")
    publish(cloud, a, "1.0.0", {"Run": "exec sleep 60"})
    publish(cloud, b, "1.0.0", {"Run": "exec sleep 60"})
    group = uniq("group-")
    device = make_device(group=group)
    thing = device.thing_name
    d1 = deploy(cloud, group_arn(group), {a: "1.0.0"})
    assert wait_deployment(cloud, thing, d1)["coreDeviceExecutionStatus"] == "SUCCEEDED"
    real = device.planner.plan

    def buggy(targets: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if group_arn(group) not in targets:  # only the plan that removes the group's components
            raise KeyError("injected bug")
        return real(targets, *args, **kwargs)

    device.planner.plan = buggy
    cloud.iot.remove_thing_from_thing_group(thingGroupName=group, thingName=thing)
    wait_until(lambda: group not in device.groups, what="the device to notice it left")
    time.sleep(0.3)  # a few polls that try (and fail) to remove the group's components
    d2 = deploy(cloud, thing_arn(thing), {b: "1.0.0"})
    assert wait_deployment(cloud, thing, d2)["coreDeviceExecutionStatus"] == "SUCCEEDED"
    device.planner.plan = real  # the removal is tried again at the next poll
    assert device.wait_for(lambda rt: set(rt.services) == {b}, timeout=15)


# --- persistence -------------------------------------------------------------------------------


def test_restarted_runtime_restores_its_components(
    cloud: Cloud, make_device: Callable[..., Any], tmp_path: Path
) -> None:
    lib, app = uniq("com.test.RLib"), uniq("com.test.RApp")
    key = f"{lib}/data.txt"
    cloud.s3.put_object(Bucket=cloud.bucket, Key=key, Body=b"payload")
    publish(
        cloud,
        lib,
        "1.0.0",
        {"Install": "echo i >> {work:path}/installs.txt", "Run": "true"},
        artifacts=[{"URI": f"s3://{cloud.bucket}/{key}"}],
    )
    publish(
        cloud,
        app,
        "1.0.0",
        {"Run": "echo run >> {work:path}/runs.txt; exec sleep 60"},
        deps={lib: "1.0.0"},
    )
    device = make_device()
    thing = device.thing_name
    d = deploy(cloud, thing_arn(thing), {app: "1.0.0"})
    assert wait_deployment(cloud, thing, d)["coreDeviceExecutionStatus"] == "SUCCEEDED"
    artifact = device.layout.root / "packages" / "artifacts" / lib / "1.0.0" / "data.txt"
    before = artifact.stat()
    from edgekit.errors import LocalBackendError
    from edgekit.local.device.runtime import DeviceRuntime

    with pytest.raises(LocalBackendError, match="in use by another device runtime"):
        DeviceRuntime(thing, device.layout.root, cloud.greengrass_url, cloud.moto_url).start()
    device.stop()
    assert device.states() == {lib: "INSTALLED", app: "INSTALLED"}

    again = make_device(thing=thing, root=device.layout.root)
    assert again.wait_for(lambda rt: rt.states() == {lib: "FINISHED", app: "RUNNING"}, 10)
    after = artifact.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    work = again.layout.root / "work"
    wait_until(lambda: read(work / app / "runs.txt").count("run") == 2, what="second run")
    # As on Greengrass, Install runs again at every start of the runtime.
    assert read(work / lib / "installs.txt").count("i") == 2
    time.sleep(0.5)  # a few polls: the applied deployment is not applied again
    rows = cloud.gg.list_effective_deployments(coreDeviceThingName=thing)["effectiveDeployments"]
    assert [r["coreDeviceExecutionStatus"] for r in rows] == ["SUCCEEDED"]


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_runtime_killed_mid_deployment_recovers(cloud: Cloud, tmp_path: Path) -> None:
    from edgekit.local import process

    comp = uniq("com.test.Kill")
    publish(cloud, comp, "1.0.0", {"Run": "echo $$ > {work:path}/v1.pid; exec sleep 60"})
    publish(
        cloud,
        comp,
        "2.0.0",
        {
            "Install": "echo $$ > {work:path}/install.pid; sleep 1.5; "
            "echo ok > {work:path}/installed",
            "Run": "echo v2 > {work:path}/version.txt; exec sleep 60",
        },
    )
    thing = uniq("thing-")
    cloud.iot.create_thing(thingName=thing)
    home = tmp_path / "home"
    root = tmp_path / "root"
    name = f"device-{thing}"
    argv = process.python_argv(
        "edgekit.local.device",
        "--thing", thing, "--root", str(root),
        "--greengrass-endpoint", cloud.greengrass_url, "--aws-endpoint", cloud.moto_url,
        "--region", REGION, "--poll", "0.1", "--settle", "0.3",
    )  # fmt: skip

    def reported() -> bool:
        try:
            cloud.gg.get_core_device(coreDeviceThingName=thing)
            return True
        except cloud.gg.exceptions.ResourceNotFoundException:
            return False

    pid = process.start_process(home, name, argv, ready=reported, timeout=30)
    try:
        d1 = deploy(cloud, thing_arn(thing), {comp: "1.0.0"})
        assert wait_deployment(cloud, thing, d1)["coreDeviceExecutionStatus"] == "SUCCEEDED"
        work = root / "work" / comp
        v1_pid = int(wait_until(lambda: read(work / "v1.pid"), what="v1 pid"))

        d2 = deploy(cloud, thing_arn(thing), {comp: "2.0.0"})
        install_pid = int(wait_until(lambda: read(work / "install.pid"), what="install started"))
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not process.is_running(home, name), what="runtime dead")
        assert _pid_alive(install_pid)  # the component outlived its runtime
        saved = json.loads((root / "config" / "state.json").read_text())
        assert saved["pending"]["deploymentId"] == d2
        assert saved["components"][comp]["version"] == "1.0.0"

        process.start_process(home, name, argv, ready=lambda: True, timeout=30)
        row = wait_deployment(cloud, thing, d2, timeout=30)
        assert row["coreDeviceExecutionStatus"] == "SUCCEEDED", row
        assert not _pid_alive(install_pid) and not _pid_alive(v1_pid)
        assert read(work / "installed") == "ok"
        wait_until(lambda: read(work / "version.txt") == "v2", what="v2 running")
        saved = json.loads((root / "config" / "state.json").read_text())
        assert saved["pending"] is None
        assert saved["components"][comp]["version"] == "2.0.0"
        installed = cloud.gg.list_installed_components(coreDeviceThingName=thing)
        versions = {c["componentName"]: c for c in installed["installedComponents"]}
        assert versions[comp]["componentVersion"] == "2.0.0"
        assert versions[comp]["lifecycleState"] == "RUNNING"
    finally:
        process.stop_process(home, name)
    run_pid = int(read(root / "work" / comp / "install.pid") or 0)
    assert run_pid == 0 or not _pid_alive(run_pid)


# --- manager and CLI on top of `edgekit local up` ------------------------------------------------


@pytest.mark.slow
def test_manager_and_cli_run_a_detached_device(tmp_path: Path, capsys: Any) -> None:
    from edgekit import clients
    from edgekit.cli import main
    from edgekit.local import endpoints
    from edgekit.local.device.manager import add_device, device_logs, list_devices, remove_device
    from edgekit.settings import Settings

    if not endpoints.greengrass_available():
        pytest.skip("the Greengrass emulator is not importable")
    home = tmp_path / "home"
    endpoints.up(home, region=REGION, timeout=60)
    try:
        thing, group = uniq("cli-thing-"), uniq("cli-group-")
        info = add_device(thing, group, home, poll=0.1)
        assert info.running and info.root == home / "devices" / thing
        again = add_device(thing, group, home)  # idempotent
        assert again.pid == info.pid

        settings = Settings(backend="local", region=REGION, local_home=home)
        iot = clients.client("iot", settings)
        groups = iot.list_thing_groups_for_thing(thingName=thing)["thingGroups"]
        assert [g["groupName"] for g in groups] == [group]
        gg = clients.client("greengrassv2", settings)
        comp = uniq("com.test.Cli")
        recipe = {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": comp,
            "ComponentVersion": "1.0.0",
            "Manifests": [{"Lifecycle": {"Run": "echo hello-from-component; exec sleep 60"}}],
        }
        gg.create_component_version(inlineRecipe=json.dumps(recipe).encode())
        dep = gg.create_deployment(
            targetArn=group_arn(group), components={comp: {"componentVersion": "1.0.0"}}
        )["deploymentId"]
        deadline = time.monotonic() + 30
        status = ""
        while time.monotonic() < deadline and status not in FINAL:
            rows = gg.list_effective_deployments(coreDeviceThingName=thing)["effectiveDeployments"]
            status = next(
                (r["coreDeviceExecutionStatus"] for r in rows if r["deploymentId"] == dep), ""
            )
            time.sleep(0.1)
        assert status == "SUCCEEDED"

        [listed] = [d for d in list_devices(home) if d.thing == thing]
        assert listed.running and listed.components == {comp: "1.0.0"}
        assert "hello-from-component" in device_logs(thing, comp, home)
        assert "SUCCEEDED" in device_logs(thing, None, home, tail=5)

        assert main(["local", "device", "list", "--home", str(home)]) == 0
        assert thing in capsys.readouterr().out
        argv = ["local", "device", "logs", thing, comp, "--tail", "3", "--home", str(home)]
        assert main(argv) == 0
        assert "hello-from-component" in capsys.readouterr().out

        assert remove_device(thing, home, purge=True)
        assert not (home / "devices" / thing).exists()
        with pytest.raises(gg.exceptions.ResourceNotFoundException):
            gg.get_core_device(coreDeviceThingName=thing)
    finally:
        endpoints.down(home)
